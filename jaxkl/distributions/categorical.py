"""PLACEHOLDER — being written; replace this whole file."""

from jaxkl.distributions.base import Distribution

__all__ = ["Categorical"]


class Categorical(Distribution):
    pass
