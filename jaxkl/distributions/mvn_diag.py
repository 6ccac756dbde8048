"""Multivariate normal with diagonal covariance: N(loc, diag(scale_diag²))."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl._checks import FINITE, POSITIVE_FINITE
from jaxkl.distributions.base import Distribution

__all__ = ["MultivariateNormalDiag"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MultivariateNormalDiag(Distribution):
    """Multivariate normal with mean ``loc`` and covariance ``diag(scale_diag²)``.

    log p(x) = −½ Σᵢ ((xᵢ − locᵢ)/sᵢ)² − Σᵢ log sᵢ − (d/2) log 2π, with s = scale_diag.
    The coordinates are independent, so this is ``Independent(Normal(loc, scale_diag), 1)``
    with a d-dimensional event.

    Args:
      loc: mean, ``[..., d]``, finite.
      scale_diag: per-coordinate standard deviations, ``[..., d]``, > 0 and finite. The batch
        dimensions broadcast with ``loc``'s; the event size d must be the same.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> d = jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
      >>> d.batch_shape, d.event_shape, d.sample(0, (5,)).shape
      ((), (3,), (5, 3))
    """

    loc: jax.Array
    scale_diag: jax.Array

    reparameterized = True
    _param_event_ndims = {"loc": 1, "scale_diag": 1}
    _constraints = {"loc": FINITE, "scale_diag": POSITIVE_FINITE}

    def _check_values(self):
        d_loc, d_scale = self.loc.shape[-1], self.scale_diag.shape[-1]
        if d_loc != d_scale:
            raise ValueError(
                "MultivariateNormalDiag: loc and scale_diag must have the same event size d; "
                f"got loc [..., {d_loc}] and scale_diag [..., {d_scale}]"
            )
        super()._check_values()

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape + self.event_shape
        return self._from_standard_normal(jax.random.normal(key, shape, self.dtype))

    def _from_standard_normal(self, eps):
        """Pathwise map of standard normals ``[..., *batch_shape, d]`` to draws."""
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale_diag)
        return loc + scale * eps

    def log_prob(self, x):
        x = self._check_event(jnp.asarray(x, self.dtype))
        x, loc, scale = jnp.broadcast_arrays(x, self.loc, self.scale_diag)
        z = (x - loc) / scale
        d = self.event_shape[0]
        return -0.5 * jnp.sum(jnp.square(z), -1) - jnp.sum(jnp.log(scale), -1) - 0.5 * d * _LOG_2PI

    def entropy(self):
        d = self.event_shape[0]
        return jnp.sum(jnp.log(self.scale_diag), -1) + 0.5 * d * (1.0 + _LOG_2PI)

    def mean(self):
        return self.loc

    def variance(self):
        return jnp.square(self.scale_diag)

    def covariance(self):
        """Covariance matrix ``diag(scale_diag²)``, ``[..., d, d]``."""
        var = self.variance()
        eye = jnp.eye(var.shape[-1], dtype=var.dtype)
        return var[..., :, None] * jnp.broadcast_to(eye, var.shape + var.shape[-1:])
