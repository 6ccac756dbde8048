"""Gumbel (type-I extreme value, maximum) distribution."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl.distributions._location_scale import LocationScaleMethods
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive, real

__all__ = ["Gumbel"]

_EULER_GAMMA = 0.57721566490153286061
_PI2_OVER_6 = math.pi**2 / 6.0


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Gumbel(LocationScaleMethods, Distribution):
    """Gumbel distribution (of maxima) with location ``loc`` and scale ``scale``.

    With z = (x − loc)/scale, p(x) = exp(−z − e^{−z}) / scale. Mean loc + γ·scale,
    variance π² scale² / 6, entropy log scale + γ + 1 (γ: Euler's constant). Sampling:
    x = loc − scale · log(−log u) for u ~ U(tiny, 1), differentiable in loc and scale.

    Args:
      loc: location (the mode), ``[...]``, finite.
      scale: scale β > 0 and finite, ``[...]``. Broadcasts with ``loc``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Gumbel(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> round(float(d.log_prob(0.0)), 6)
      -1.0
    """

    loc: jax.Array
    scale: jax.Array

    reparameterized = True
    parameters = {"loc": real(), "scale": positive()}

    def _sample(self, key, sample_shape):
        dtype = self.dtype
        # u = 0 would give log(-log 0) = +inf; minval = tiny keeps every sample finite.
        u = _random.uniform(
            key, sample_shape + self.batch_shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0
        )
        eps = -jnp.log(-jnp.log(u))
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return loc + scale * eps

    def log_prob(self, x):
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        z = (x - loc) / scale
        lp = -z - jnp.exp(-z) - jnp.log(scale)
        # At x = -inf the two terms are inf - inf; the density's limit there is 0.
        return jnp.where(z == -jnp.inf, -jnp.inf, lp)

    def entropy(self):
        return jnp.log(self.scale) + (_EULER_GAMMA + 1.0)

    def mean(self):
        return self.loc + _EULER_GAMMA * self.scale

    def variance(self):
        return _PI2_OVER_6 * jnp.square(self.scale)

    def cdf(self, x):
        """exp(−e^(−z)), z = (x − loc)/scale, ``[..., *batch_shape]``."""
        return jnp.exp(-jnp.exp(-self._standardise(x)))

    def log_cdf(self, x):
        """−e^(−z): exact, in both tails."""
        return -jnp.exp(-self._standardise(x))

    def icdf(self, p):
        """loc − scale·log(−log p), ``[..., *batch_shape]``."""
        p, loc, scale = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.loc, self.scale)
        return loc - scale * jnp.log(-jnp.log(p))
