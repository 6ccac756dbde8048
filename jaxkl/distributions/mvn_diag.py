"""Multivariate normal with diagonal covariance: N(loc, diag(scale_diag²))."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl._shapes import as_float
from jaxkl.distributions.base import NOT_GIVEN, Distribution, exactly_one, scale_properties
from jaxkl.distributions.parameters import positive, real

__all__ = ["MultivariateNormalDiag"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
class MultivariateNormalDiag(Distribution):
    """Multivariate normal with mean ``loc`` and covariance ``diag(scale_diag²)``.

    log p(x) = −½ Σᵢ ((xᵢ − locᵢ)/sᵢ)² − Σᵢ log sᵢ − (d/2) log 2π, with s = scale_diag.
    The coordinates are independent, so this is ``Independent(Normal(loc, scale_diag), 1)``
    with a d-dimensional event.

    ``loc`` and the scales broadcast as numpy arrays do, event axis included, so a scalar
    scale gives an isotropic Gaussian: ``MultivariateNormalDiag(jnp.zeros(d), 1.0)``. The
    scales may be given as ``log_scale_diag`` instead; the form given is the stored pytree
    leaf and the KL uses the log-ratio of the scales directly (see :class:`jaxkl.Normal`).

    Args:
      loc: mean, ``[..., d]`` (or broadcastable to it), finite.
      scale_diag: per-coordinate standard deviations, ``[..., d]`` or broadcastable to
        ``loc`` (a scalar, ``[..., 1]``), > 0 and finite. At least one of ``loc`` and the
        scales has the event axis d.
      log_scale_diag: their logs, same shapes, finite; instead of ``scale_diag`` (exactly
        one of the two).
      validate: check parameter values (default True); ``validate=False`` skips the value
        checks, not the dtype and shape handling.

    Raises:
      ValueError: the event sizes d differ, both or neither of ``scale_diag`` and
        ``log_scale_diag`` are given, or a value is invalid.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> d = jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
      >>> d.batch_shape, d.event_shape, d.sample(0, (5,)).shape
      ((), (3,), (5, 3))
      >>> jaxkl.MultivariateNormalDiag(jnp.zeros(3), log_scale_diag=0.0).scale_diag.tolist()
      [1.0, 1.0, 1.0]
    """

    loc: jax.Array
    _scale_diag: jax.Array | None = None
    _log_scale_diag: jax.Array | None = None

    reparameterized = True
    parameters = {"loc": real(1), "_scale_diag": positive(1), "_log_scale_diag": real(1)}

    def __init__(self, loc, scale_diag=NOT_GIVEN, *, log_scale_diag=None, validate=True):
        where = "MultivariateNormalDiag"
        scale_diag, log_scale_diag = exactly_one(
            where, "scale_diag", scale_diag, "log_scale_diag", log_scale_diag
        )
        name, scale = (
            ("scale_diag", scale_diag)
            if log_scale_diag is None
            else ("log_scale_diag", log_scale_diag)
        )
        loc, scale = as_float(loc, scale, names=["loc", name], where=where)
        loc, scale = _broadcast_event(loc, scale, name)
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "_scale_diag", scale if log_scale_diag is None else None)
        object.__setattr__(self, "_log_scale_diag", None if log_scale_diag is None else scale)
        self.__post_init__(validate)

    scale_diag, log_scale_diag = scale_properties("scale_diag", "log_scale_diag")

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape + self.event_shape
        return self._from_standard_normal(_random.normal(key, shape, self.dtype))

    def _from_standard_normal(self, eps):
        """Pathwise map of standard normals ``[..., *batch_shape, d]`` to draws."""
        eps, loc, scale = jnp.broadcast_arrays(eps, self.loc, self.scale_diag)
        return loc + scale * eps

    def log_prob(self, x):
        x = self._check_event(jnp.asarray(x, self.dtype))
        x, loc, scale, log_scale = jnp.broadcast_arrays(
            x, self.loc, self.scale_diag, self.log_scale_diag
        )
        z = (x - loc) / scale
        d = self.event_shape[0]
        return -0.5 * jnp.sum(jnp.square(z), -1) - jnp.sum(log_scale, -1) - 0.5 * d * _LOG_2PI

    def entropy(self):
        d = self.event_shape[0]
        return jnp.sum(self.log_scale_diag, -1) + 0.5 * d * (1.0 + _LOG_2PI)

    def mean(self):
        return self.loc

    def mode(self):
        """loc, ``[..., d]``."""
        return self.loc

    def variance(self):
        return jnp.square(self.scale_diag)

    def covariance(self):
        """Covariance matrix ``diag(scale_diag²)``, ``[..., d, d]``."""
        var = self.variance()
        eye = jnp.eye(var.shape[-1], dtype=var.dtype)
        return var[..., :, None] * jnp.broadcast_to(eye, var.shape + var.shape[-1:])


def _broadcast_event(loc, scale, name):
    """Give ``loc`` and the scales one event size d: a size-1 or missing axis broadcasts."""
    where = "MultivariateNormalDiag"
    if loc.ndim == 0 and scale.ndim == 0:
        raise ValueError(
            f"{where}: loc or {name} must have at least 1 dimension (the event axis, shape "
            f"[..., d]); got two scalars"
        )
    sizes = [x.shape[-1] for x in (loc, scale) if x.ndim > 0]
    d = max(sizes)
    if any(s not in (1, d) for s in sizes):
        raise ValueError(
            f"{where}: loc and {name} must have the same event size d; got loc "
            f"[..., {loc.shape[-1] if loc.ndim else ''}] and {name} [..., {scale.shape[-1]}]"
        )

    def widened(x):
        shape = (*x.shape[:-1], d) if x.ndim else (d,)
        return x if x.shape == shape else jnp.broadcast_to(x, shape)

    # The batch axes are broadcast by the base class, which names them in its errors.
    return widened(loc), widened(scale)
