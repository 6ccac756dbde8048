"""Fitting distributions with optax: objectives, gradient estimators and a fit loop.

Example:
  >>> import jax.numpy as jnp, optax, jaxkl
  >>> from jaxkl import fit as jf
  >>> p = jaxkl.MultivariateNormalTriL(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.0],
  ...                                                                     [0.5, 0.5]]))
  >>> loss = lambda prm, key: jf.reverse_kl(key, jf.gaussian_from_params(prm), p, 32,
  ...                                       gradient="stl")
  >>> res = jf.make_fit(loss, optax.adam(0.05), 1000)(jf.gaussian_params(jnp.zeros(2),
  ...                                                                     jnp.eye(2)), 0)
  >>> bool(jaxkl.kl(jf.gaussian_from_params(res.params), p) < 1e-3)
  True
"""

from jaxkl.fit.diagnostics import GradientStats, gradient_stats
from jaxkl.fit.loop import FitResult, fit, make_fit, make_step
from jaxkl.fit.objectives import (
    REVERSE_KL_GRADIENTS,
    forward_kl,
    forward_kl_snis,
    reverse_kl,
    sampled_kl_penalty,
)
from jaxkl.fit.params import (
    GaussianParams,
    gaussian_from_params,
    gaussian_params,
    scale_tril_from_raw,
)

__all__ = [
    "REVERSE_KL_GRADIENTS",
    "FitResult",
    "GaussianParams",
    "GradientStats",
    "fit",
    "forward_kl",
    "forward_kl_snis",
    "gaussian_from_params",
    "gaussian_params",
    "gradient_stats",
    "make_fit",
    "make_step",
    "reverse_kl",
    "sampled_kl_penalty",
    "scale_tril_from_raw",
]
