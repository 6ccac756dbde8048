"""PLACEHOLDER — being written; replace this whole file."""

from jaxkl.distributions.base import Distribution

__all__ = ["Dirichlet"]


class Dirichlet(Distribution):
    pass
