"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["laplace_normal", "normal_laplace", "uniform_normal", "exponential_normal", "gamma_normal", "beta_uniform"]


def laplace_normal(*args, **kwargs):
    raise NotImplementedError


def normal_laplace(*args, **kwargs):
    raise NotImplementedError


def uniform_normal(*args, **kwargs):
    raise NotImplementedError


def exponential_normal(*args, **kwargs):
    raise NotImplementedError


def gamma_normal(*args, **kwargs):
    raise NotImplementedError


def beta_uniform(*args, **kwargs):
    raise NotImplementedError
