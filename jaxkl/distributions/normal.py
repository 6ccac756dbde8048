"""Univariate normal distribution N(loc, scale²), from its scale or its log-scale."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr, ndtri

from jaxkl import _random
from jaxkl.distributions.base import NOT_GIVEN, Distribution, init_location_scale, scale_properties
from jaxkl.distributions.parameters import positive, real

__all__ = ["Normal"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
class Normal(Distribution):
    """Normal distribution with mean ``loc`` and standard deviation ``scale``.

    p(x) = exp(-(x - loc)² / (2 scale²)) / (scale √(2π)).

    Give the standard deviation either as ``scale`` or as ``log_scale`` = log(scale), the
    form encoders output. The form given is the stored pytree leaf (``grad`` differentiates
    with respect to it); the other is derived on access. From ``log_scale`` the Gaussian
    KL uses the log-ratio log_scale_a − log_scale_b itself, so KL(N(0, e^a) ‖ N(0, e^b))
    keeps float32's relative precision when a − b is tiny, where exponentiating first
    rounds e^a/e^b to within an ulp of 1 and loses every digit.

    Args:
      loc: mean, ``[...]``, finite.
      scale: standard deviation, ``[...]``, > 0 and finite. Broadcasts with ``loc``.
      log_scale: log of the standard deviation, ``[...]``, finite; instead of ``scale``
        (exactly one of the two).
      validate: check parameter values (default True). ``validate=False`` skips the value
        checks (not the dtype and shape handling) for hot loops with known-valid input.

    Raises:
      ValueError: both or neither of ``scale`` and ``log_scale`` are given, or a value is
        invalid (the message names the parameter and shows the offending entries).

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Normal(0.0, 1.0)
      >>> d.sample(0, (3,)).shape
      (3,)
      >>> e = jaxkl.Normal(0.0, log_scale=0.0)  # the same law
      >>> float(e.scale), round(float(e.cdf(1.0)), 4), float(e.icdf(0.5))
      (1.0, 0.8413, 0.0)
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
        return self._from_standard_normal(eps)

    def _from_standard_normal(self, eps):
        """Pathwise map of standard normals ``[..., *batch_shape]`` to draws."""
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale)
        return loc + scale * eps

    def _standardise(self, x):
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        return (x - loc) / scale

    def log_prob(self, x):
        z = self._standardise(x)
        return -0.5 * jnp.square(z) - jnp.broadcast_to(self.log_scale, z.shape) - _HALF_LOG_2PI

    def entropy(self):
        return 0.5 + _HALF_LOG_2PI + self.log_scale

    def mean(self):
        return self.loc

    def mode(self):
        """loc, ``batch_shape``."""
        return self.loc

    def variance(self):
        return jnp.square(self.scale)

    def cdf(self, x):
        """P(X ≤ x) = Φ((x − loc)/scale), ``[..., *batch_shape]``."""
        return ndtr(self._standardise(x))

    def log_cdf(self, x):
        """log Φ(z) by ``log_ndtr``: finite and accurate far into the left tail (z = −30)."""
        return log_ndtr(self._standardise(x))

    def icdf(self, p):
        """The quantile loc + scale·Φ⁻¹(p), ``[..., *batch_shape]``; ∓inf at p = 0, 1."""
        p, loc, scale = jnp.broadcast_arrays(jnp.asarray(p, self.dtype), self.loc, self.scale)
        return loc + scale * ndtri(p)
