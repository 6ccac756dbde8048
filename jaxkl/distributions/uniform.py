"""Continuous uniform distribution on [low, high]."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl._checks import require_values
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import real

__all__ = ["Uniform"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Uniform(Distribution):
    """Uniform distribution on the interval [low, high].

    p(x) = 1 / (high − low) for low ≤ x ≤ high, and 0 elsewhere (log_prob −inf). Mean
    (low + high)/2, variance (high − low)²/12, entropy log(high − low). Sampling:
    x = low + (high − low)·u with u ~ U[0, 1), differentiable in low and high.

    Args:
      low: lower end, ``[...]``, finite.
      high: upper end, ``[...]``, finite and > low. Broadcasts with ``low``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Uniform(0.0, 2.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> round(float(d.log_prob(1.0)), 6), float(d.log_prob(3.0))
      (-0.693147, -inf)
    """

    low: jax.Array
    high: jax.Array

    reparameterized = True
    parameters = {"low": real(), "high": real()}

    def _check_values(self):
        super()._check_values()
        require_values(
            "Uniform",
            "high",
            self.high,
            self.high > self.low,
            rule="be > low",
            also={"low": self.low},
        )

    def _sample(self, key, sample_shape):
        u = _random.uniform(key, sample_shape + self.batch_shape, self.dtype)
        u, low, high = jnp.broadcast_arrays(u, self.low, self.high)
        return low + (high - low) * u

    def log_prob(self, x):
        x, low, high = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.low, self.high)
        inside = (x >= low) & (x <= high)
        return jnp.where(inside, -jnp.log(high - low), -jnp.inf)

    def entropy(self):
        return jnp.log(self.high - self.low)

    def mean(self):
        return self.low + 0.5 * (self.high - self.low)

    def variance(self):
        return jnp.square(self.high - self.low) / 12.0

    def mode(self):
        """Not unique (the density is constant on [low, high]): raises NotImplementedError."""
        raise NotImplementedError(
            "Uniform has no unique mode: every point of [low, high] is one (use mean())"
        )

    def cdf(self, x):
        """(x − low)/(high − low) clipped to [0, 1], ``[..., *batch_shape]``."""
        x, low, high = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.low, self.high)
        return jnp.clip((x - low) / (high - low), 0.0, 1.0)

    def log_cdf(self, x):
        """log of :meth:`cdf`; −inf below low."""
        return jnp.log(self.cdf(x))

    def icdf(self, p):
        """low + p·(high − low), ``[..., *batch_shape]``."""
        p, low, high = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.low, self.high)
        return low + p * (high - low)
