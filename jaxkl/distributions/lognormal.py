"""Log-normal distribution: exp(X) with X ~ N(loc, scale²), from its scale or log-scale."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr, ndtri

from jaxkl import _random
from jaxkl.distributions.base import NOT_GIVEN, Distribution, init_location_scale, scale_properties
from jaxkl.distributions.parameters import positive, real

__all__ = ["LogNormal"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
class LogNormal(Distribution):
    """Log-normal distribution: the law of exp(X) for X ~ N(loc, scale²).

    p(x) = exp(-(log x − loc)² / (2 scale²)) / (x · scale · √(2π)) for x > 0, and 0 for
    x ≤ 0. Mean exp(loc + scale²/2); variance expm1(scale²)·exp(2 loc + scale²); entropy
    loc + ½ + log(scale √(2π)); mode exp(loc − scale²).

    As for :class:`jaxkl.Normal`, the scale may be given as ``log_scale``; the form given
    is the stored pytree leaf and the KL uses the log-ratio of the scales directly.

    Args:
      loc: mean of the underlying normal, ``[...]``, finite.
      scale: standard deviation of the underlying normal, ``[...]``, > 0 and finite.
        Broadcasts with ``loc``.
      log_scale: log of that standard deviation, ``[...]``, finite; instead of ``scale``
        (exactly one of the two).
      validate: check parameter values (default True); ``validate=False`` skips the value
        checks, not the dtype and shape handling.

    Raises:
      ValueError: both or neither of ``scale`` and ``log_scale`` are given, or a value is
        invalid.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.LogNormal(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> float(d.log_prob(-1.0)), float(d.icdf(0.5)), float(d.cdf(1.0))
      (-inf, 1.0, 0.5)
    """

    loc: jax.Array
    _scale: jax.Array | None = None
    _log_scale: jax.Array | None = None

    reparameterized = True
    parameters = {"loc": real(), "_scale": positive(), "_log_scale": real()}

    def __init__(self, loc, scale=NOT_GIVEN, *, log_scale=None, validate=True):
        init_location_scale(self, loc, scale, log_scale, validate)

    scale, log_scale = scale_properties("scale", "log_scale")

    def _sample(self, key, sample_shape):
        eps = _random.normal(key, sample_shape + self.batch_shape, self.dtype)
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return jnp.exp(loc + scale * eps)

    def _standardised_log(self, x):
        """(log x − loc)/scale where x > 0, and the mask x > 0."""
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        inside = x > 0
        # Double where: log(x) at x <= 0 would put NaN into the gradient of the masked branch.
        log_x = jnp.log(jnp.where(inside, x, 1.0))
        return (log_x - loc) / scale, log_x, inside

    def log_prob(self, x):
        z, log_x, inside = self._standardised_log(x)
        log_scale = jnp.broadcast_to(self.log_scale, z.shape)
        lp = -0.5 * jnp.square(z) - log_scale - _HALF_LOG_2PI - log_x
        return jnp.where(inside, lp, -jnp.inf)

    def entropy(self):
        return self.loc + 0.5 + _HALF_LOG_2PI + self.log_scale

    def mean(self):
        return jnp.exp(self.loc + 0.5 * jnp.square(self.scale))

    def mode(self):
        """exp(loc − scale²), ``batch_shape``."""
        return jnp.exp(self.loc - jnp.square(self.scale))

    def variance(self):
        s2 = jnp.square(self.scale)
        # expm1 keeps the relative precision of e^{σ²} − 1 for small σ.
        return jnp.expm1(s2) * jnp.exp(2.0 * self.loc + s2)

    def cdf(self, x):
        """P(X ≤ x) = Φ((log x − loc)/scale) for x > 0, 0 for x ≤ 0; ``[..., *batch]``."""
        z, _, inside = self._standardised_log(x)
        return jnp.where(inside, ndtr(z), 0.0)

    def log_cdf(self, x):
        """log Φ((log x − loc)/scale) by ``log_ndtr`` (accurate in the left tail); −inf at x ≤ 0."""
        z, _, inside = self._standardised_log(x)
        return jnp.where(inside, log_ndtr(z), -jnp.inf)

    def icdf(self, p):
        """The quantile exp(loc + scale·Φ⁻¹(p)), ``[..., *batch_shape]``."""
        p, loc, scale = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.loc, self.scale)
        return jnp.exp(loc + scale * ndtri(p))
