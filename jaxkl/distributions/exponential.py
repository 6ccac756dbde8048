"""Exponential distribution Exponential(rate) on [0, ∞)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive
from jaxkl.special import log1mexp

__all__ = ["Exponential"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Exponential(Distribution):
    """Exponential distribution with inverse scale ``rate`` λ.

    p(x) = λ e^(−λx) for x ≥ 0, and 0 for x < 0. Samples are E / λ with E a standard
    exponential (−log1p(−u), u uniform on [0, 1)), so they are reparameterised in λ.

    Args:
      rate: λ > 0 and finite, ``[...]``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Exponential(2.0)
      >>> float(d.mean()), d.sample(0, (3,)).shape
      (0.5, (3,))
      >>> round(float(d.cdf(d.icdf(0.25))), 6)
      0.25
    """

    rate: jax.Array

    reparameterized = True
    parameters = {"rate": positive()}

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape
        e = _random.exponential(key, shape, self.dtype)
        return e / jnp.broadcast_to(self.rate, shape)

    def log_prob(self, x):
        """log p(x) = log λ − λx, ``[..., *batch_shape]``; −inf for x < 0."""
        x, rate = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.rate)
        return jnp.where(x >= 0, jnp.log(rate) - rate * x, -jnp.inf)

    def entropy(self):
        """H = 1 − log λ, ``batch_shape``."""
        return 1.0 - jnp.log(self.rate)

    def mean(self):
        """1 / λ, ``batch_shape``."""
        return 1.0 / self.rate

    def variance(self):
        """1 / λ², ``batch_shape``."""
        return 1.0 / jnp.square(self.rate)

    def mode(self):
        """0, ``batch_shape``."""
        return jnp.zeros_like(self.rate)

    def _scaled(self, x):
        x, rate = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.rate)
        return x, rate * jnp.maximum(x, 0.0)

    def cdf(self, x):
        """1 − e^(−λx) as −expm1(−λx) (exact for small λx) for x ≥ 0, 0 below."""
        x, u = self._scaled(x)
        return jnp.where(x >= 0, -jnp.expm1(-u), 0.0)

    def log_cdf(self, x):
        """log(1 − e^(−λx)) by log1mexp, accurate for λx → 0 and λx → ∞; −inf at x ≤ 0."""
        x, u = self._scaled(x)
        return jnp.where(x > 0, log1mexp(-u), -jnp.inf)

    def icdf(self, p):
        """−log1p(−p) / λ, ``[..., *batch_shape]``; +inf at p = 1."""
        p, rate = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.rate)
        return -jnp.log1p(-p) / rate
