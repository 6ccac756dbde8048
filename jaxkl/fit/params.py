"""Unconstrained parameters of a full-covariance Gaussian, for gradient-based fitting.

optax updates a pytree of unconstrained arrays. A Gaussian N(loc, L Lᵀ) is stored as
``loc`` and a raw square matrix whose strictly lower triangle is L's and whose diagonal
maps to L's positive diagonal through softplus. Entries above the diagonal are ignored
(and receive zero gradient), so every raw array is a valid point.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxkl._checks import FINITE, require_values
from jaxkl._shapes import as_float
from jaxkl.distributions.mvn_tril import MultivariateNormalTriL

__all__ = ["GaussianParams", "gaussian_from_params", "gaussian_params", "scale_tril_from_raw"]


class GaussianParams(NamedTuple):
    """Unconstrained parameters of N(loc, L Lᵀ) (a pytree optax can update).

    Attributes:
      loc: ``[..., d]``, the mean.
      raw_scale_tril: ``[..., d, d]``; L = tril(raw, −1) + diag(softplus(diag(raw))).
    """

    loc: jax.Array
    raw_scale_tril: jax.Array


def _inverse_softplus(y):
    # log(eʸ − 1) = y + log(1 − e⁻ʸ): no overflow for large y, accurate for small y.
    return y + jnp.log(-jnp.expm1(-y))


def scale_tril_from_raw(raw_scale_tril) -> jax.Array:
    """The lower Cholesky factor L from its unconstrained form.

    L = tril(raw, −1) + diag(softplus(diag(raw))). softplus keeps the diagonal positive
    with a gradient that does not vanish for large entries (unlike exp, it is ≈ linear
    there); it underflows to 0 only below raw ≈ −87 (float32), where L is singular.

    Args:
      raw_scale_tril: ``[..., d, d]``.

    Returns:
      ``[..., d, d]`` lower triangular, entries above the diagonal exactly zero.

    Example:
      >>> import jax.numpy as jnp
      >>> L = scale_tril_from_raw(jnp.array([[0.0, 5.0], [1.0, 0.0]]))
      >>> float(L[0, 1]), float(L[1, 0]), round(float(L[0, 0]), 4)  # softplus(0) = log 2
      (0.0, 1.0, 0.6931)
    """
    raw = as_float(raw_scale_tril, names=["raw_scale_tril"], where="scale_tril_from_raw")
    if raw.ndim < 2 or raw.shape[-1] != raw.shape[-2]:
        raise ValueError(f"raw_scale_tril must have shape [..., d, d]; got {raw.shape}")
    diag = jax.nn.softplus(jnp.diagonal(raw, axis1=-2, axis2=-1))
    eye = jnp.eye(raw.shape[-1], dtype=raw.dtype)
    return jnp.tril(raw, -1) + diag[..., :, None] * jnp.broadcast_to(eye, raw.shape)


def gaussian_params(loc, scale_tril) -> GaussianParams:
    """Unconstrained parameters that map back to N(loc, L Lᵀ), L = ``scale_tril``.

    Inverse of :func:`gaussian_from_params`: raw diagonal = softplus⁻¹(Lᵢᵢ), computed as
    Lᵢᵢ + log(−expm1(−Lᵢᵢ)).

    Args:
      loc: ``[..., d]``.
      scale_tril: ``[..., d, d]`` lower triangular with positive diagonal (only the lower
        triangle is read). Batch dimensions must equal ``loc``'s (explicit broadcasting).

    Returns:
      ``GaussianParams(loc [..., d], raw_scale_tril [..., d, d])``.

    Raises:
      ValueError: loc is not finite, or the diagonal of scale_tril is not > 0 and finite,
        or its strictly lower triangle is not finite (the error shows the entries). Under
        ``jit`` only inside ``jaxkl.checked``; in plain ``jit`` such entries give NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> params = gaussian_params(jnp.zeros(2), 2.0 * jnp.eye(2))
      >>> gaussian_from_params(params).scale_tril.round(4).tolist()
      [[2.0, 0.0], [0.0, 2.0]]
    """
    loc, scale_tril = as_float(
        loc, scale_tril, names=["loc", "scale_tril"], where="gaussian_params"
    )
    if loc.ndim < 1 or scale_tril.shape != loc.shape + loc.shape[-1:]:
        raise ValueError(
            "gaussian_params: need loc [..., d] and scale_tril [..., d, d] with the same batch "
            f"shape; got loc {loc.shape} and scale_tril {scale_tril.shape}"
        )
    where = "gaussian_params"
    require_values(where, "loc", loc, constraint=FINITE)
    diag = jnp.diagonal(scale_tril, axis1=-2, axis2=-1)
    # Checked on the whole matrix so that the error shows scale_tril[..., i, i] indices.
    eye = jnp.eye(loc.shape[-1], dtype=loc.dtype)
    on_diagonal = jnp.broadcast_to(eye, scale_tril.shape) > 0
    positive_diagonal = ~on_diagonal | ((scale_tril > 0) & jnp.isfinite(scale_tril))
    require_values(
        where,
        "scale_tril",
        scale_tril,
        positive_diagonal,
        rule="have a diagonal > 0 and finite (softplus⁻¹ of a diagonal entry ≤ 0 is NaN)",
    )
    lower = jnp.tril(jnp.ones_like(on_diagonal), -1)
    require_values(
        where, "scale_tril", scale_tril, ~lower | jnp.isfinite(scale_tril), rule="be finite"
    )
    raw = jnp.tril(scale_tril, -1) + _inverse_softplus(diag)[..., :, None] * jnp.broadcast_to(
        eye, scale_tril.shape
    )
    return GaussianParams(loc, raw)


def gaussian_from_params(params: GaussianParams) -> MultivariateNormalTriL:
    """The distribution N(loc, L Lᵀ) described by unconstrained ``params``.

    Args:
      params: ``GaussianParams(loc [..., d], raw_scale_tril [..., d, d])``.

    Returns:
      ``MultivariateNormalTriL`` with batch shape ``[...]`` and event shape ``[d]``;
      differentiable in ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> q = gaussian_from_params(GaussianParams(jnp.zeros(2), jnp.zeros((2, 2))))
      >>> q.event_shape
      (2,)
    """
    return MultivariateNormalTriL(params.loc, scale_tril_from_raw(params.raw_scale_tril))
