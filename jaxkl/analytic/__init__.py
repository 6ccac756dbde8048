"""Closed-form KL divergences: the registry and kernels on raw arrays.

``jaxkl.kl(a, b)`` dispatches on the pair of distribution types; the kernels below take
raw parameter arrays and are what the registered pairs call.
"""

# Importing the table of pairs registers every pair with the registry.
from jaxkl.analytic import pairs as _pairs  # noqa: F401
from jaxkl.analytic.cross_family import (
    beta_uniform,
    exponential_normal,
    gamma_normal,
    laplace_normal,
    normal_laplace,
    uniform_normal,
)
from jaxkl.analytic.discrete import bernoulli, bernoulli_poisson, categorical, poisson
from jaxkl.analytic.gamma_family import (
    beta,
    dirichlet,
    exponential,
    exponential_gamma,
    gamma,
    gamma_exponential,
)
from jaxkl.analytic.gaussian import (
    lognormal,
    mvn_diag,
    mvn_tril,
    normal,
    residual_normal,
)
from jaxkl.analytic.location_scale import gumbel, laplace, uniform
from jaxkl.analytic.registry import NoAnalyticKL, kl, register_kl, registered_pairs

__all__ = [
    "NoAnalyticKL",
    "bernoulli",
    "bernoulli_poisson",
    "beta",
    "beta_uniform",
    "categorical",
    "dirichlet",
    "exponential",
    "exponential_gamma",
    "exponential_normal",
    "gamma",
    "gamma_exponential",
    "gamma_normal",
    "gumbel",
    "kl",
    "laplace",
    "laplace_normal",
    "lognormal",
    "mvn_diag",
    "mvn_tril",
    "normal",
    "normal_laplace",
    "poisson",
    "register_kl",
    "registered_pairs",
    "residual_normal",
    "uniform",
    "uniform_normal",
]
