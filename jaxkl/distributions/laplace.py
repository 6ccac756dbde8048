"""PLACEHOLDER — being written; replace this whole file."""

from jaxkl.distributions.base import Distribution

__all__ = ["Laplace"]


class Laplace(Distribution):
    pass
