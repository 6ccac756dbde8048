"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["gamma", "exponential", "beta", "dirichlet", "exponential_gamma", "gamma_exponential"]


def gamma(*args, **kwargs):
    raise NotImplementedError


def exponential(*args, **kwargs):
    raise NotImplementedError


def beta(*args, **kwargs):
    raise NotImplementedError


def dirichlet(*args, **kwargs):
    raise NotImplementedError


def exponential_gamma(*args, **kwargs):
    raise NotImplementedError


def gamma_exponential(*args, **kwargs):
    raise NotImplementedError
