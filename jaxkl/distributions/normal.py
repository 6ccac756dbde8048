"""Univariate normal distribution N(loc, scale²)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl._checks import FINITE, POSITIVE_FINITE
from jaxkl.distributions.base import Distribution

__all__ = ["Normal"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Normal(Distribution):
    """Normal distribution with mean ``loc`` and standard deviation ``scale``.

    p(x) = exp(-(x - loc)² / (2 scale²)) / (scale √(2π)).

    Args:
      loc: mean, ``[...]``, finite.
      scale: standard deviation, ``[...]``, > 0 and finite. Broadcasts with ``loc``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Normal(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
    """

    loc: jax.Array
    scale: jax.Array

    reparameterized = True
    _param_event_ndims = {"loc": 0, "scale": 0}
    _constraints = {"loc": FINITE, "scale": POSITIVE_FINITE}

    def _sample(self, key, sample_shape):
        eps = jax.random.normal(key, sample_shape + self.batch_shape, self.dtype)
        return self._from_standard_normal(eps)

    def _from_standard_normal(self, eps):
        """Pathwise map of standard normals ``[..., *batch_shape]`` to draws."""
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return loc + scale * eps

    def log_prob(self, x):
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        z = (x - loc) / scale
        return -0.5 * jnp.square(z) - jnp.log(scale) - _HALF_LOG_2PI

    def entropy(self):
        return 0.5 + _HALF_LOG_2PI + jnp.log(self.scale)

    def mean(self):
        return self.loc

    def variance(self):
        return jnp.square(self.scale)
