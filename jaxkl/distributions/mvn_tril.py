"""Multivariate normal with full covariance given by its lower Cholesky factor."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import lower_cholesky, real
from jaxkl.special import solve_lower

__all__ = ["MultivariateNormalTriL"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MultivariateNormalTriL(Distribution):
    """Multivariate normal N(loc, L Lᵀ) with L = ``scale_tril`` lower triangular.

    log p(x) = −½‖L⁻¹(x − loc)‖² − Σᵢ log Lᵢᵢ − (d/2) log 2π, where L⁻¹(x − loc) is a
    triangular solve (no inverse is formed). Samples are loc + L ε with ε ~ N(0, I).

    Args:
      loc: mean, ``[..., d]``, finite.
      scale_tril: lower Cholesky factor of the covariance, ``[..., d, d]``, finite: positive
        diagonal, entries above the diagonal exactly zero. Its batch dimensions broadcast
        with ``loc``'s; d must match.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> L = jnp.array([[1.0, 0.0], [0.5, 2.0]])
      >>> d = jaxkl.MultivariateNormalTriL(jnp.zeros(2), L)
      >>> d.event_shape, d.variance().tolist()
      ((2,), [1.0, 4.25])
    """

    loc: jax.Array
    scale_tril: jax.Array

    reparameterized = True
    parameters = {"loc": real(1), "scale_tril": lower_cholesky()}

    def _check_shapes(self):
        d = self.loc.shape[-1]
        rows, cols = self.scale_tril.shape[-2:]
        if rows != cols:
            raise ValueError(
                "MultivariateNormalTriL: scale_tril must be square, [..., d, d]; "
                f"got [..., {rows}, {cols}]"
            )
        if rows != d:
            raise ValueError(
                "MultivariateNormalTriL: loc and scale_tril must have the same event size d; "
                f"got loc [..., {d}] and scale_tril [..., {rows}, {cols}]"
            )

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape + self.event_shape
        return self._from_standard_normal(_random.normal(key, shape, self.dtype))

    def _from_standard_normal(self, eps):
        """Pathwise map of standard normals ``[..., *batch_shape, d]`` to draws."""
        # Only the lower triangle is a parameter: masking keeps the pathwise gradient of the
        # (zero) upper entries at zero, so gradient steps keep scale_tril triangular.
        L = jnp.broadcast_to(jnp.tril(self.scale_tril), eps.shape + eps.shape[-1:])
        loc = jnp.broadcast_to(self.loc, eps.shape)
        return loc + jnp.matmul(L, eps[..., None])[..., 0]

    def log_prob(self, x):
        x = self._check_event(jnp.asarray(x, self.dtype))
        return _log_prob(self.loc, self.scale_tril, x)

    def entropy(self):
        d = self.event_shape[0]
        diag = jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)
        return jnp.sum(jnp.log(diag), -1) + 0.5 * d * (1.0 + _LOG_2PI)

    def mean(self):
        return self.loc

    def mode(self):
        """loc, ``[..., d]``."""
        return self.loc

    def variance(self):
        # diag(L Lᵀ)ᵢ = Σⱼ Lᵢⱼ², without forming the covariance.
        return jnp.sum(jnp.square(jnp.tril(self.scale_tril)), -1)

    def covariance(self):
        """Covariance matrix L Lᵀ, ``[..., d, d]``."""
        L = jnp.tril(self.scale_tril)
        return jnp.matmul(L, jnp.swapaxes(L, -1, -2))


# Each helper below is one compiled program, so eager use compiles once per shape rather
# than once per primitive; inside a caller's jit they are inlined.
@jax.jit
def _log_prob(loc, scale_tril, x):
    """log N(x; loc, L Lᵀ) for x ``[..., *batch, d]`` with one solve for all leading axes."""
    x, loc = jnp.broadcast_arrays(x, loc)
    nbatch = scale_tril.ndim - 2
    lead = x.shape[: x.ndim - 1 - nbatch]
    full_batch = x.shape[len(lead) : -1]
    d = x.shape[-1]
    # Leading (sample) axes become the columns of one right-hand side [*batch, d, n]
    # instead of broadcasting L over them.
    rhs = jnp.moveaxis(jnp.reshape(x - loc, (math.prod(lead), *full_batch, d)), 0, -1)
    L = jnp.broadcast_to(scale_tril, (*full_batch, d, d))
    z = solve_lower(L, rhs)
    maha = jnp.reshape(jnp.moveaxis(jnp.sum(jnp.square(z), -2), -1, 0), x.shape[:-1])
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
    return -0.5 * maha - jnp.broadcast_to(half_log_det, maha.shape) - 0.5 * d * _LOG_2PI
