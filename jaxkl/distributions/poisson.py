"""PLACEHOLDER — being written; replace this whole file."""

from jaxkl.distributions.base import Distribution

__all__ = ["Poisson"]


class Poisson(Distribution):
    pass
