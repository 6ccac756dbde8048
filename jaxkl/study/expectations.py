"""Exact expectations under q for the study's theory column, in float64.

Three exact routes, chosen by q's structure (each uses jaxkl's own log densities with
x64 enabled):

* scalar continuous q: composite Simpson quadrature over mean ± 40 sd of q, in log x for
  q on (0, ∞) (2¹⁷ + 1 points; tests/study/test_theory.py checks it against scipy's
  adaptive quadrature to 1e-9);
* categorical q: the finite sum over its categories;
* diagonal Gaussians q, p: coordinates are independent under q and log q − log p is a sum
  over coordinates, so moments combine from one-dimensional quadratures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.distributions import Categorical, MultivariateNormalDiag, Normal
from jaxkl.distributions.base import Distribution

__all__ = ["LogRatioMoments", "float64_copy", "log_ratio_moments", "quadrature_mean"]

QUADRATURE_POINTS = 2**17 + 1
QUADRATURE_WIDTH = 40.0


def float64_copy(d: Distribution) -> Distribution:
    """``d`` with float64 parameters (call inside ``jax.enable_x64(True)``)."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), d)


def quadrature_mean(
    q: Distribution,
    fn: Callable[[jax.Array, jax.Array], jax.Array],
    *,
    num_points: int = QUADRATURE_POINTS,
    width: float = QUADRATURE_WIDTH,
) -> float:
    """E_q[fn(x, log q(x))] for scalar continuous q by composite Simpson quadrature, float64.

    The integrand q(x)·fn(x, log q(x)) is summed on [mean − width·sd, mean + width·sd] of
    q; points where q(x) = 0 contribute 0. ``fn`` receives float64 arrays (x64 is on while
    it runs), so it may evaluate other distributions' ``log_prob`` on their
    :func:`float64_copy`.

    Example:
      >>> q = Normal(0.0, 1.0)
      >>> round(quadrature_mean(q, lambda x, lq: x * x), 10)
      1.0
    """
    if num_points % 2 == 0:
        raise ValueError("num_points must be odd for Simpson's rule")
    if q.event_shape or q.batch_shape:
        raise ValueError("quadrature_mean needs a scalar 1-D distribution")
    with jax.enable_x64(True):
        q64 = float64_copy(q)
        center, sd = float(q64.mean()), float(jnp.sqrt(q64.variance()))
        x = jnp.linspace(center - width * sd, center + width * sd, num_points)
        lq = q64.log_prob(x)
        inside = ~jnp.isneginf(lq)
        values = fn(jnp.where(inside, x, center), jnp.where(inside, lq, 0.0))
        integrand = jnp.where(inside, jnp.exp(lq) * values, 0.0)
        h = float(x[1] - x[0])
        weights = np.ones(num_points)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        return float(h / 3.0 * jnp.sum(jnp.asarray(weights) * integrand))


@dataclasses.dataclass(frozen=True)
class LogRatioMoments:
    """Moments of L = log q(x) − log p(x) under x ~ q, exact (float64).

    Attributes:
      mean: E_q[L] = KL(q‖p).
      second: E_q[L²] (so E[k2] = second/2).
      fourth_finite: whether E_q[L⁴] < ∞ (k2 then has a finite variance).
      pitfall: E_q[q(x)·L] = ∫q²·log(q/p), the limit of the density-weighted average.
      method: how they were computed.
    """

    mean: float
    second: float
    fourth_finite: bool
    pitfall: float
    method: str


def log_ratio_moments(q: Distribution, p: Distribution) -> LogRatioMoments | None:
    """Exact moments of log q − log p under q for the study's families, else None."""
    if isinstance(q, Categorical) and isinstance(p, Categorical) and not q.batch_shape:
        return _categorical(q, p)
    if (
        isinstance(q, MultivariateNormalDiag)
        and isinstance(p, MultivariateNormalDiag)
        and not q.batch_shape
        and not p.batch_shape
    ):
        return _diagonal_gaussians(q, p)
    if q.event_shape or q.batch_shape or not isinstance(p, Distribution):
        return None
    if isinstance(q, Categorical):
        return None
    return _scalar(q, p)


_SCALAR: dict = {}


def _scalar_sums(q, p) -> np.ndarray:
    """Quadrature of q·(L, L², L⁴, q·L, q) over q's grid, L = log q − log p (float64).

    Cached by the distributions' types and parameters (a diagonal Gaussian's identical
    coordinates are integrated once)."""
    key = tuple((type(d).__name__, _param_bytes(d)) for d in (q, p))
    if key not in _SCALAR:
        with jax.enable_x64(True):
            q64, p64 = float64_copy(q), float64_copy(p)
            x, weights = _grid(q64)
            sums = _scalar_kernel(q64, p64, jnp.asarray(x), jnp.asarray(weights), float(x[0]))
            _SCALAR[key] = np.asarray(sums)
    return _SCALAR[key]


def _grid(q64) -> tuple[np.ndarray, np.ndarray]:
    """Simpson nodes and weights for E_q: mean ± 40 sd of q, or, for q on (0, ∞), a grid
    uniform in t = log x (x = eᵗ, dx = x·dt) over [log mean − 100, log(mean + 40 sd)].

    On (0, ∞) the integrands behave like x^k·log^j x at 0 (Gamma with concentration k),
    which a grid uniform in x integrates to only ~1e-6; in t they are smooth and decay
    like e^{kt}, so the truncation at t = log mean − 100 leaves e^{−100k}.
    """
    center, sd = float(q64.mean()), float(jnp.sqrt(q64.variance()))
    odd = np.ones(QUADRATURE_POINTS)
    odd[1:-1:2], odd[2:-1:2] = 4.0, 2.0
    positive = bool(jnp.isneginf(q64.log_prob(jnp.asarray(-1e-300)))) and center > 0
    if positive:
        t = np.linspace(
            math.log(center) - 100.0, math.log(center + QUADRATURE_WIDTH * sd), QUADRATURE_POINTS
        )
        x = np.exp(t)
        return x, odd * (t[1] - t[0]) / 3.0 * x
    x = np.linspace(
        center - QUADRATURE_WIDTH * sd, center + QUADRATURE_WIDTH * sd, QUADRATURE_POINTS
    )
    return x, odd * (x[1] - x[0]) / 3.0


def _param_bytes(d) -> tuple:
    return tuple(np.asarray(leaf, np.float64).tobytes() for leaf in jax.tree.leaves(d))


@jax.jit
def _scalar_kernel(q, p, x, weights, center):
    lq = q.log_prob(x)
    inside = ~jnp.isneginf(lq)
    x = jnp.where(inside, x, center)
    dens = jnp.where(inside, jnp.exp(lq), 0.0)
    ell = jnp.where(inside, lq - p.log_prob(x), 0.0)
    values = jnp.stack([ell, ell**2, ell**4, dens * ell, dens])
    return jnp.sum((weights * dens)[None, :] * values, axis=-1)


def _scalar(q, p) -> LogRatioMoments:
    m1, m2, m4, pitfall, _ = _scalar_sums(q, p)
    return LogRatioMoments(
        mean=float(m1),
        second=float(m2),
        fourth_finite=bool(np.isfinite(m4)),
        pitfall=float(pitfall),
        method=f"Simpson quadrature, {QUADRATURE_POINTS} points over ±{QUADRATURE_WIDTH:g} sd "
        "of q, float64",
    )


def _categorical(q, p) -> LogRatioMoments:
    with jax.enable_x64(True):
        lq = jax.nn.log_softmax(jnp.asarray(np.asarray(q.logits, np.float64)))
        lp = jax.nn.log_softmax(jnp.asarray(np.asarray(p.logits, np.float64)))
        prob = jnp.exp(lq)
        ell = jnp.where(prob > 0, lq - lp, 0.0)
        return LogRatioMoments(
            mean=float(jnp.sum(prob * ell)),
            second=float(jnp.sum(prob * ell**2)),
            fourth_finite=bool(jnp.isfinite(jnp.sum(prob * ell**4))),
            pitfall=float(jnp.sum(prob * prob * ell)),
            method="exact sum over the categories, float64",
        )


def _diagonal_gaussians(q, p) -> LogRatioMoments:
    # L = Σ_d L_d with independent coordinates under q: E[L] = Σ m1_d,
    # E[L²] = Σ Var(L_d) + (Σ m1_d)², and E_q[q·L] = Σ_d E[q_d L_d]·Π_{e≠d} E[q_e].
    dims = [
        _scalar(Normal(float(mq), float(sq)), Normal(float(mp), float(sp)))
        for mq, sq, mp, sp in zip(q.loc, q.scale_diag, p.loc, p.scale_diag, strict=True)
    ]
    self_overlap = [
        float(_scalar_sums(Normal(float(mq), float(sq)), Normal(float(mp), float(sp)))[4])
        for mq, sq, mp, sp in zip(q.loc, q.scale_diag, p.loc, p.scale_diag, strict=True)
    ]
    m1 = np.array([d.mean for d in dims])
    var = np.array([d.second - d.mean**2 for d in dims])
    overlap = np.array(self_overlap)
    pitfall = sum(dims[i].pitfall * float(np.prod(np.delete(overlap, i))) for i in range(len(dims)))
    return LogRatioMoments(
        mean=float(m1.sum()),
        second=float(var.sum() + m1.sum() ** 2),
        fourth_finite=all(d.fourth_finite for d in dims),
        pitfall=float(pitfall),
        method="per-coordinate Simpson quadrature combined over independent coordinates, float64",
    )
