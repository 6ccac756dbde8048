"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["bernoulli", "categorical", "poisson", "bernoulli_poisson"]


def bernoulli(*args, **kwargs):
    raise NotImplementedError


def categorical(*args, **kwargs):
    raise NotImplementedError


def poisson(*args, **kwargs):
    raise NotImplementedError


def bernoulli_poisson(*args, **kwargs):
    raise NotImplementedError
