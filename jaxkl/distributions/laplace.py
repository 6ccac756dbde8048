"""Laplace (double-exponential) distribution."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl import _random
from jaxkl.distributions._location_scale import LocationScaleMethods
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive, real

__all__ = ["Laplace"]

_LOG_2 = math.log(2.0)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Laplace(LocationScaleMethods, Distribution):
    """Laplace distribution with location ``loc`` and scale ``scale``.

    p(x) = exp(−|x − loc| / scale) / (2 scale). Mean loc, variance 2 scale², entropy
    1 + log(2 scale). Sampling inverts the CDF: for u ~ U(−1, 1),
    x = loc − scale · sign(u) · log1p(−|u|), which is differentiable in loc and scale.

    Args:
      loc: location (mean and median), ``[...]``, finite.
      scale: scale b > 0 and finite, ``[...]``. Broadcasts with ``loc``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Laplace(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> round(float(d.log_prob(0.0)), 6)
      -0.693147
    """

    loc: jax.Array
    scale: jax.Array

    reparameterized = True
    parameters = {"loc": real(), "scale": positive()}

    def _sample(self, key, sample_shape):
        dtype = self.dtype
        # u = -1 exactly would give log1p(-1) = -inf; the open interval keeps samples finite.
        lo = np.nextafter(np.asarray(-1.0, dtype), np.asarray(0.0, dtype))
        u = _random.uniform(key, sample_shape + self.batch_shape, dtype, minval=lo, maxval=1.0)
        # log1p(-|u|) keeps the tails accurate where |u| is close to 1.
        eps = -jnp.sign(u) * jnp.log1p(-jnp.abs(u))
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return loc + scale * eps

    def log_prob(self, x):
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        return -jnp.abs(x - loc) / scale - jnp.log(scale) - _LOG_2

    def entropy(self):
        return 1.0 + _LOG_2 + jnp.log(self.scale)

    def mean(self):
        return self.loc

    def variance(self):
        return 2.0 * jnp.square(self.scale)

    def cdf(self, x):
        """½e^z below loc, 1 − ½e^(−z) above (z = (x − loc)/scale): no cancellation."""
        z = self._standardise(x)
        below = z < 0
        return jnp.where(
            below, 0.5 * jnp.exp(jnp.minimum(z, 0.0)), 1.0 - 0.5 * jnp.exp(-jnp.maximum(z, 0.0))
        )

    def log_cdf(self, x):
        """z − log 2 below loc (exact in the left tail), log1p(−½e^(−z)) above."""
        z = self._standardise(x)
        below = z < 0
        return jnp.where(below, z - _LOG_2, jnp.log1p(-0.5 * jnp.exp(-jnp.maximum(z, 0.0))))

    def icdf(self, p):
        """loc + scale·log(2p) for p < ½, loc − scale·log(2(1 − p)) above (1 − p exact)."""
        p, loc, scale = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.loc, self.scale)
        below = p < 0.5
        # One log per branch on its own half, so that neither sees a log of a negative.
        x = jnp.where(
            below,
            jnp.log(2.0 * jnp.where(below, p, 0.25)),
            -jnp.log(2.0 * jnp.where(below, 0.25, 1.0 - p)),
        )
        return loc + scale * x
