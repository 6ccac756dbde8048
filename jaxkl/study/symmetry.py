"""When self-normalised importance sampling is exactly unbiased: a reflection symmetry.

SNIS estimates KL(q‖p) = E_q[f], f = log q − log p, by T = Σ wᵢfᵢ / Σ wᵢ with
wᵢ = q(xᵢ)/g(xᵢ), xᵢ ~ g (the proposal). Its bias is O(1/N) in general. Suppose there is
a point c with

1. q symmetric about c: q(2c − x) = q(x);
2. the proposal g symmetric about the same c: g(2c − x) = g(x);
3. f odd about c up to a constant: f(2c − x) − f(c) = −(f(x) − f(c)).

Reflect every draw, xᵢ → 2c − xᵢ. By (2) the sample has the same law; by (1) and (2) each
weight is unchanged; by (3) T − f(c) changes sign. So T − f(c) is symmetric about 0, and
since |T| ≤ maxᵢ|fᵢ| is integrable, E[T] = f(c) at every N. By (1) and (3) again,
KL = E_q[f] = f(c). Hence E[T] = KL exactly: SNIS is unbiased at every N.

For Gaussians q and p, f is a quadratic whose second-order part vanishes exactly when
their covariances are equal; then f is affine and (3) holds about any c. So SNIS is exactly
unbiased for q = N(μ, Σ), p = N(ν, Σ) with a symmetric proposal centred at μ — the
study's ``close``, ``close_reverse`` and ``far`` cases.

:func:`reflection_centre` checks the three conditions for any pair: (1) and (2) by family
(reflection-symmetric families about their mean) and equal means; (3) numerically, in
float64, at 256 random points t: f(c + t) + f(c − t) − 2f(c) = 0 to 1e-9 relative. For
the Gaussian case f(c + t) + f(c − t) − 2f(c) = 2tᵀAt with A the quadratic part; 256
generic points determine any symmetric A up to d = 21, so there the check is exact.

The float32 sampler's range is not exactly symmetric ([−5.42, 5.22] standard deviations,
see :mod:`jaxkl.study.sampler_range`), a departure of probability ≈ 1e-7 per draw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.distributions.base import Distribution
from jaxkl.estimators.variance_reduction import SYMMETRIC_FAMILIES
from jaxkl.study.expectations import float64_copy

__all__ = ["ODDNESS_POINTS", "ODDNESS_RTOL", "reflection_centre"]

ODDNESS_POINTS = 256
ODDNESS_RTOL = 1e-9


def reflection_centre(
    q: Distribution, p: Distribution, proposal: Distribution
) -> tuple[np.ndarray | None, str]:
    """The centre c of the symmetry that makes SNIS exactly unbiased, or None, and why.

    Args:
      q, p: the pair of KL(q‖p), unbatched.
      proposal: SNIS's proposal.

    Returns:
      ``(c, reason)``: c as a float64 array of q's event shape when all three conditions
      of the module docstring hold, else None; ``reason`` says which holds or fails.

    Example:
      >>> from jaxkl.distributions import Normal
      >>> c, why = reflection_centre(Normal(0.0, 1.0), Normal(1.0, 1.0), Normal(0.0, 1.5))
      >>> float(c)
      0.0
      >>> reflection_centre(Normal(0.0, 1.0), Normal(1.0, 2.0), Normal(0.0, 1.5))[0] is None
      True
    """
    names = ", ".join(f.__name__ for f in SYMMETRIC_FAMILIES)
    if q.batch_shape or proposal.batch_shape or not isinstance(p, Distribution):
        return None, "needs unbatched distributions"
    if not isinstance(q, SYMMETRIC_FAMILIES):
        return None, f"q ({type(q).__name__}) is not reflection-symmetric ({names})"
    if not isinstance(proposal, SYMMETRIC_FAMILIES):
        return None, f"the proposal ({type(proposal).__name__}) is not reflection-symmetric"
    c_q, c_g = np.asarray(q.mean(), np.float64), np.asarray(proposal.mean(), np.float64)
    if not np.array_equal(c_q, c_g):
        return None, "q and the proposal are symmetric about different centres"
    rng = np.random.default_rng(0)
    sd = np.sqrt(np.asarray(q.variance(), np.float64))
    t = rng.standard_normal((ODDNESS_POINTS, *q.event_shape)) * sd
    with jax.enable_x64(True):
        q64, p64 = float64_copy(q), float64_copy(p)

        def f(x):
            return np.asarray(q64.log_prob(jnp.asarray(x)) - p64.log_prob(jnp.asarray(x)))

        at_c = f(c_q[None])[0]
        plus, minus = f(c_q + t), f(c_q - t)
    gap = np.abs(plus + minus - 2.0 * at_c)
    scale = 1.0 + np.maximum(np.abs(plus), np.abs(minus))
    if not np.all(gap <= ODDNESS_RTOL * scale):
        return (
            None,
            "log q − log p is not odd about q's centre (for Gaussians: unequal covariances)",
        )
    return c_q, (
        f"q and the proposal are symmetric about c = {_show(c_q)} and log q − log p is "
        "affine there: SNIS is exactly unbiased at every N"
    )


def _show(c: np.ndarray) -> str:
    if c.ndim == 0:
        return f"{float(c):g}"
    if np.unique(c).size == 1:
        return f"({float(c.ravel()[0]):g}, …, {float(c.ravel()[0]):g})"
    return f"({', '.join(f'{v:g}' for v in c.ravel())})"
