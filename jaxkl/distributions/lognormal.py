"""Log-normal distribution: exp(X) with X ~ N(loc, scale²)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl._checks import FINITE, POSITIVE_FINITE
from jaxkl.distributions.base import Distribution

__all__ = ["LogNormal"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LogNormal(Distribution):
    """Log-normal distribution: the law of exp(X) for X ~ N(loc, scale²).

    p(x) = exp(-(log x − loc)² / (2 scale²)) / (x · scale · √(2π)) for x > 0, and 0 for
    x ≤ 0. Mean exp(loc + scale²/2); variance expm1(scale²)·exp(2 loc + scale²); entropy
    loc + ½ + log(scale √(2π)).

    Args:
      loc: mean of the underlying normal, ``[...]``, finite.
      scale: standard deviation of the underlying normal, ``[...]``, > 0 and finite. Broadcasts with
        ``loc``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.LogNormal(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> float(d.log_prob(-1.0))
      -inf
    """

    loc: jax.Array
    scale: jax.Array

    reparameterized = True
    _param_event_ndims = {"loc": 0, "scale": 0}
    _constraints = {"loc": FINITE, "scale": POSITIVE_FINITE}

    def _sample(self, key, sample_shape):
        eps = jax.random.normal(key, sample_shape + self.batch_shape, self.dtype)
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return jnp.exp(loc + scale * eps)

    def log_prob(self, x):
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        inside = x > 0
        # Double where: log(x) at x <= 0 would put NaN into the gradient of the masked branch.
        log_x = jnp.log(jnp.where(inside, x, 1.0))
        z = (log_x - loc) / scale
        lp = -0.5 * jnp.square(z) - jnp.log(scale) - _HALF_LOG_2PI - log_x
        return jnp.where(inside, lp, -jnp.inf)

    def entropy(self):
        return self.loc + 0.5 + _HALF_LOG_2PI + jnp.log(self.scale)

    def mean(self):
        return jnp.exp(self.loc + 0.5 * jnp.square(self.scale))

    def variance(self):
        s2 = jnp.square(self.scale)
        # expm1 keeps the relative precision of e^{σ²} − 1 for small σ.
        return jnp.expm1(s2) * jnp.exp(2.0 * self.loc + s2)
