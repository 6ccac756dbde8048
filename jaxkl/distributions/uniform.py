"""PLACEHOLDER — being written; replace this whole file."""

from jaxkl.distributions.base import Distribution

__all__ = ["Uniform"]


class Uniform(Distribution):
    pass
