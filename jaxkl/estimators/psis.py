"""The Pareto-smoothed importance sampling (PSIS) diagnostic k̂ of a set of log weights."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxkl._shapes import as_float
from jaxkl.special import log1mexp, log_abs_expm1

__all__ = ["pareto_khat", "psis_smooth", "tail_khat", "tail_length"]

# Zhang & Stephens (2009): grid size m = _GRID_BASE + ⌊√n⌋, and the scale of their prior on θ.
_GRID_BASE = 30
_GRID_PRIOR = 3.0
# Weakly informative prior on k̂ (Vehtari et al. 2024): as if 10 extra tail points had k = 0.5.
_PRIOR_STRENGTH = 10.0
_PRIOR_MEAN = 0.5
# Below this many tail points no fit is attempted (k̂ = +inf: reliability cannot be shown).
_MIN_TAIL = 5


def tail_length(num_samples: int) -> int:
    """M = ⌈min(S/5, 3√S)⌉, the number of largest weights PSIS fits (Vehtari et al. 2024)."""
    return math.ceil(min(num_samples / 5.0, 3.0 * math.sqrt(num_samples)))


def _log1p_times(log_y, g_positive, log_abs_g):
    """log(1 + y·g) from log y (y ∈ [0, 1]) and g given by its sign and log|g| (g > −1).

    For g > 0 this is softplus(log y + log g), which stays finite when y·g would overflow;
    for g < 0, y·|g| < 1 and it is log(1 − y|g|). y = 0 or g = 0 gives 0 in either branch.
    """
    la = log_y + log_abs_g
    return jnp.where(g_positive, jnp.logaddexp(0.0, la), log1mexp(jnp.minimum(la, 0.0)))


def _grid_log_s(n: int, dtype) -> jax.Array:
    """log s_j, s_j = (√(m/(j − ½)) − 1)/3, j = 1…m: Zhang & Stephens' grid, θ_j = 1 − s_j/q."""
    m = _GRID_BASE + math.isqrt(n)
    j = np.arange(1, m + 1, dtype=np.float64)
    s = (np.sqrt(m / (j - 0.5)) - 1.0) / _GRID_PRIOR
    return jnp.asarray(np.log(s), dtype)


def _zhang_stephens_fit(log_y, grid_log_s):
    """Posterior-mean GPD shape ξ and log scale of exceedances y (max 1), Zhang & Stephens.

    In units where the largest exceedance is 1, write 1 − θx = 1 + g·y with g = −θ and
    θ_j = 1 − s_j/q (q = the first-quartile exceedance), so g_j = s_j/q − 1 = expm1(u_j),
    u_j = log s_j − log q. For each θ_j the profile MLE of the shape is
    ξ_j = mean_i log(1 + g_j y_i), the profile log likelihood is
    n·(log(g_j/ξ_j) − ξ_j − 1), and the posterior mean ĝ over the grid gives
    ξ̂ = mean_i log(1 + ĝ y_i). Every step works from log y, so exceedances spanning
    hundreds of nats neither overflow nor underflow.

    Args:
      log_y: ``[n]`` log exceedances, sorted descending, ``log_y[0] = 0``; ``-inf`` for
        exceedances of exactly 0.
      grid_log_s: ``[m]``.

    Returns:
      ``(ξ̂, log σ̂)``: the shape (no prior adjustment) and the log scale in units of the
      largest exceedance.
    """
    n = log_y.shape[0]
    log_q = log_y[n - math.floor(n / 4 + 0.5)]
    # Ties with the threshold make the quartile exceedance 0; the smallest positive one
    # then sets the grid's spread instead (the largest, log y = 0, is always positive).
    smallest_positive = jnp.min(jnp.where(jnp.isfinite(log_y), log_y, 0.0))
    log_q = jnp.where(jnp.isfinite(log_q), log_q, smallest_positive)

    u = grid_log_s - log_q  # [m]
    g_pos = u > 0
    log_abs_g = log_abs_expm1(u)
    terms = _log1p_times(log_y[None, :], g_pos[:, None], log_abs_g[:, None])  # [m, n]
    xi = jnp.mean(terms, axis=-1)  # [m], same sign as g

    # log(g/ξ); as g → 0, ξ → g·mean(y), so the ratio tends to −log mean(y).
    log_mean_y = logsumexp(log_y) - math.log(n)
    regular = jnp.isfinite(log_abs_g) & (xi != 0)
    log_abs_xi = jnp.log(jnp.abs(jnp.where(regular, xi, 1.0)))
    log_ratio = jnp.where(regular, log_abs_g - log_abs_xi, -log_mean_y)
    log_lik = n * (log_ratio - xi - 1.0)
    log_w = jax.nn.log_softmax(log_lik)

    # ĝ = Σ w_j g_j = P − N with P from the g > 0 points (possibly huge, kept in log
    # space) and N < 1 from the g < 0 points.
    log_p = logsumexp(jnp.where(g_pos, log_w + log_abs_g, -jnp.inf))
    neg = jnp.sum(jnp.where(g_pos, 0.0, jnp.exp(log_w + log_abs_g)))
    big = log_p > 0
    log_p_big = jnp.where(big, log_p, 0.0)
    log_g_big = log_p_big + jnp.log1p(-neg * jnp.exp(-log_p_big))
    g_small = jnp.exp(jnp.minimum(log_p, 0.0)) - neg
    g_hat_pos = big | (g_small > 0)
    log_abs_g_hat = jnp.where(big, log_g_big, jnp.log(jnp.abs(g_small)))
    xi_hat = jnp.mean(_log1p_times(log_y, g_hat_pos, log_abs_g_hat))
    # σ = ξ/ĝ (ξ̂ and ĝ share their sign); as ĝ → 0 it tends to mean(y).
    regular_hat = jnp.isfinite(log_abs_g_hat) & (xi_hat != 0)
    log_sigma = jnp.where(
        regular_hat,
        jnp.log(jnp.abs(jnp.where(regular_hat, xi_hat, 1.0))) - log_abs_g_hat,
        log_mean_y,
    )
    return xi_hat, log_sigma


def _khat_1d(lw, m_tail: int, prior_adjustment: bool, log_space: bool = True):
    """k̂ of one vector ``[S]``: of log weights (``log_space``), or of raw values.

    See :func:`pareto_khat` and :func:`tail_khat`.
    """
    top, _ = jax.lax.top_k(lw, m_tail + 1)  # descending
    # Without the barrier XLA (CPU, jaxlib 0.10) rewrites top_k followed by slicing into a
    # full sort, 25-50x slower for S = 10⁵.
    top = jax.lax.optimization_barrier(top)
    tail, log_u = top[:m_tail], top[m_tail]
    above = tail > log_u
    if log_space:
        # log(w − u) = log w + log(1 − u/w); exact ties (and −inf weights) give exceedance 0.
        log_x = jnp.where(above, tail + log1mexp(jnp.where(above, log_u - tail, -1.0)), -jnp.inf)
    else:
        # Raw values: the exceedance t − u is formed directly (exact for close values).
        log_x = jnp.where(above, jnp.log(jnp.where(above, tail - log_u, 1.0)), -jnp.inf)
    # −inf: the whole tail ties with the threshold; +inf: an infinite weight. Both are
    # answered below; the fit only has to run meanwhile.
    no_tail = ~jnp.isfinite(log_x[0])
    log_y = (log_x - jnp.where(no_tail, 0.0, log_x[0])).at[0].set(0.0)

    xi, _ = _zhang_stephens_fit(log_y, _grid_log_s(m_tail, lw.dtype))
    if prior_adjustment:
        xi = (m_tail * xi + _PRIOR_STRENGTH * _PRIOR_MEAN) / (m_tail + _PRIOR_STRENGTH)

    xi = jnp.where(no_tail, -jnp.inf, xi)
    xi = jnp.where(top[0] == jnp.inf, jnp.inf, xi)
    return jnp.where(jnp.any(jnp.isnan(lw)), jnp.nan, xi)


def _samples_last(x, axis: int, where: str, name: str) -> tuple[jax.Array, int, int]:
    """``x`` as floats with the sample axis moved last; its size S and tail length M."""
    x = as_float(x)
    if x.ndim == 0:
        raise ValueError(f"{where}: {name} must have at least one dimension")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{where}: axis {axis} out of range for shape {x.shape}")
    x = jnp.moveaxis(x, axis, -1)
    num = x.shape[-1]
    return x, num, tail_length(num)


def pareto_khat(log_weights, axis: int = -1, *, prior_adjustment: bool = True) -> jax.Array:
    """PSIS k̂: the generalised-Pareto shape of the largest importance weights.

    With S weights along ``axis``, the largest M = ⌈min(S/5, 3√S)⌉ are taken as the tail
    and their exceedances x_i = w_i − u over the (M+1)-th largest weight u are fitted by a
    generalised Pareto distribution, density σ⁻¹(1 + ξx/σ)^(−1/ξ−1), with the
    empirical-Bayes estimator of Zhang & Stephens (2009) on a fixed grid of
    m = 30 + ⌊√M⌋ candidate values of θ = −ξ/σ (vectorised, so jittable and vmappable).
    The fitted ξ̂ is k̂. With ``prior_adjustment`` (the default, as in PSIS) it is shrunk
    towards 0.5 by the weakly informative prior of the PSIS reference implementation
    (Vehtari et al. 2024), worth 10 tail points: k̂ = (M·ξ̂ + 10·0.5)/(M + 10).

    The shape is scale-free, so the fit only sees exceedances relative to the largest one,
    formed in log space: log x_i = log w_i + log(1 − u/w_i). Weights that span hundreds of
    nats neither overflow nor turn into NaN.

    Reading k̂ (Vehtari et al. 2024) depends on what is estimated:

    * the plain (unsmoothed) importance-sampling estimate: weights with tail shape k have
      finite variance only for k < 0.5; for 0.5 ≤ k < 1 the mean exists but the variance
      does not, so the estimate converges slowly and erratically and its standard error
      means nothing. Read k̂ ≥ 0.5 as unreliable.
    * the Pareto-smoothed estimate (:func:`psis_smooth`, ``importance_kl(smooth=True)``):
      smoothing restores a finite variance at a small bias, and it converges at a usable
      rate for k̂ < min(0.7, 1 − 1/log₁₀ S) (0.7 from S ≈ 2200 on, where 1 − 1/log₁₀ S
      reaches 0.7); above, the proposal's tails are too light for the target and even
      the smoothed estimate can be far off while its standard error looks small.

    Special values (never NaN unless an input is NaN):

    * S ≤ 20 (M < 5): ``+inf`` — too few samples to show reliability.
    * any log weight ``+inf``: ``+inf``.
    * all M largest weights equal to the threshold, e.g. all weights equal (or all zero):
      ``-inf`` — no tail at all, the ideal case. Partial ties are fine: when a quarter or
      more of the tail ties with the threshold, the smallest positive exceedance takes the
      place of the quartile that sets the grid's spread.
    * NaN anywhere along ``axis``: NaN.

    k̂ is a diagnostic: its inputs pass through ``stop_gradient``, so it is safe inside a
    differentiated function and contributes no gradient.

    Args:
      log_weights: ``[..., S, ...]`` log importance weights (any additive constant).
      axis: the sample axis (static).
      prior_adjustment: shrink towards 0.5 as PSIS does (default ``True``); ``False`` gives
        the plain Zhang–Stephens estimate.

    Returns:
      ``log_weights``' shape without ``axis``: k̂ per batch element, in the dtype of the
      weights.

    Example:
      >>> import jaxkl
      >>> q, proposal = jaxkl.Normal(0.0, 2.0), jaxkl.Normal(0.0, 0.5)  # too narrow
      >>> x = proposal.sample(0, (100_000,))
      >>> log_w = q.log_prob(x) - proposal.log_prob(x)
      >>> bool(jaxkl.pareto_khat(log_w) > 0.7)
      True
      >>> y = q.sample(1, (100_000,))  # the ideal proposal, q itself: all weights equal
      >>> float(jaxkl.pareto_khat(q.log_prob(y) - q.log_prob(y)))
      -inf

    References:
      Vehtari, Simpson, Gelman, Yao, Gabry (2024). Pareto smoothed importance sampling.
      JMLR 25(72). Zhang & Stephens (2009). A new and efficient estimation method for the
      generalized Pareto distribution. Technometrics 51(3), 316–325.
    """
    lw, num, m_tail = _samples_last(log_weights, axis, "pareto_khat", "log_weights")
    lw = jax.lax.stop_gradient(lw)
    if m_tail < _MIN_TAIL:
        return jnp.full(lw.shape[:-1], jnp.inf, lw.dtype)

    return _khat_rows(lw.reshape(-1, num), m_tail, prior_adjustment).reshape(lw.shape[:-1])


# One compiled program per shape instead of dozens of op-by-op dispatches when eager.
@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _khat_rows(lw, m_tail: int, prior_adjustment: bool, log_space: bool = True):
    return jax.vmap(lambda row: _khat_1d(row, m_tail, prior_adjustment, log_space))(lw)


def tail_khat(values, axis: int = -1, *, tails: str = "both") -> jax.Array:
    """Generalised-Pareto shape k̂ of the tail(s) of raw values: does their variance exist?

    The same fit as :func:`pareto_khat` (largest M = ⌈min(S/5, 3√S)⌉ values, exceedances
    over the (M+1)-th, Zhang–Stephens with the PSIS prior), applied to the values
    themselves rather than to exponentiated log weights. The exceedances t − u are
    differences of the values, so the fit does not depend on a shift of the values.

    This is the tail diagnostic of a Monte Carlo average: terms whose tail has shape
    k ≥ 0.5 have infinite variance, so their mean's standard error means nothing, and
    for k ≥ 1 the mean itself does not exist. Light tails (Gaussian, exponential,
    bounded) have k ≤ 0; with few tail points the prior pulls k̂ towards 0.5 (with
    M = 20 tail points a fitted ξ̂ = 0 becomes k̂ = 5/30 ≈ 0.17).

    Args:
      values: ``[..., S, ...]`` terms (any real values; ``+inf`` gives ``+inf``).
      axis: the sample axis (static).
      tails: ``"upper"``, ``"lower"`` (the upper tail of −values) or ``"both"`` (the
        larger of the two k̂; default).

    Returns:
      ``values``' shape without ``axis``, in the values' dtype: k̂, NaN where S ≤ 20
      (fewer than 5 tail points: no fit) or where a value is NaN.

    Example:
      >>> import jax
      >>> z = jax.random.normal(jax.random.key(0), (4000,))
      >>> bool(tail_khat(z) < 0.3)  # Gaussian: light tails
      True
      >>> bool(tail_khat(jnp.exp(3.0 * z), tails="upper") > 0.5)  # lognormal(σ = 3)
      True
    """
    if tails not in ("upper", "lower", "both"):
        raise ValueError(f"tail_khat: tails must be 'upper', 'lower' or 'both'; got {tails!r}")
    v, num, m_tail = _samples_last(values, axis, "tail_khat", "values")
    v = jax.lax.stop_gradient(v)
    if m_tail < _MIN_TAIL:
        return jnp.full(v.shape[:-1], jnp.nan, v.dtype)
    rows = v.reshape(-1, num)
    if tails == "upper":
        k = _khat_rows(rows, m_tail, True, False)
    elif tails == "lower":
        k = _khat_rows(-rows, m_tail, True, False)
    else:
        k = _tail_khat_both(rows, m_tail)
    return k.reshape(v.shape[:-1])


@functools.partial(jax.jit, static_argnums=1)
def _tail_khat_both(rows, m_tail: int):
    # −inf (no tail at all) on one side must not hide the other side; NaN propagates.
    upper = jax.vmap(lambda r: _khat_1d(r, m_tail, True, False))(rows)
    lower = jax.vmap(lambda r: _khat_1d(-r, m_tail, True, False))(rows)
    return jnp.maximum(upper, lower)


def psis_smooth(log_weights, axis: int = 0) -> tuple[jax.Array, jax.Array]:
    """Pareto-smoothed log importance weights and their k̂ (PSIS, Vehtari et al. 2024).

    The largest M = ⌈min(S/5, 3√S)⌉ weights are replaced by the expected order
    statistics of the generalised Pareto distribution fitted to them: the z-th smallest
    becomes u + F⁻¹((z − ½)/M), with u the (M+1)-th largest weight and F the fitted GPD
    (its shape with the same prior adjustment as :func:`pareto_khat`), capped at the
    largest raw weight. Everything is formed in log space. With no tail to fit (S ≤ 20,
    all tail weights tied, an infinite weight) the weights are returned unchanged.

    The smoothing is a deterministic function of the weights; gradients pass through as
    if the weights were unsmoothed (lw + stop_gradient(smoothed − lw)).

    Args:
      log_weights: ``[..., S, ...]`` log weights (any additive constant).
      axis: the sample axis.

    Returns:
      ``(smoothed log weights, k̂)``: the first of ``log_weights``' shape, k̂ of its shape
      without ``axis`` (as :func:`pareto_khat`).

    Example:
      >>> import jaxkl
      >>> q, proposal = jaxkl.Normal(0.0, 2.0), jaxkl.Normal(0.0, 1.0)
      >>> x = proposal.sample(0, (1000,))
      >>> lw = q.log_prob(x) - proposal.log_prob(x)
      >>> smoothed, k = psis_smooth(lw)
      >>> bool(jnp.max(smoothed) <= jnp.max(lw)), bool(0.5 < k < 1.0)
      (True, True)
    """
    moved, num, m_tail = _samples_last(log_weights, axis, "psis_smooth", "log_weights")
    khat = pareto_khat(moved, axis=-1)
    if m_tail < _MIN_TAIL:
        return jnp.moveaxis(moved, -1, axis), khat
    rows = jax.lax.stop_gradient(moved.reshape(-1, num))
    smoothed = _smooth_rows(rows, m_tail).reshape(moved.shape)
    smoothed = moved + jax.lax.stop_gradient(smoothed - moved)
    return jnp.moveaxis(smoothed, -1, axis), khat


@functools.partial(jax.jit, static_argnums=1)
def _smooth_rows(rows, m_tail: int):
    return jax.vmap(lambda row: _smooth_1d(row, m_tail))(rows)


def _smooth_1d(lw, m_tail: int):
    top, idx = jax.lax.top_k(lw, m_tail + 1)  # descending
    top = jax.lax.optimization_barrier(top)
    tail, log_u = top[:m_tail], top[m_tail]
    above = tail > log_u
    log_x = jnp.where(above, tail + log1mexp(jnp.where(above, log_u - tail, -1.0)), -jnp.inf)
    no_tail = ~jnp.isfinite(log_x[0])
    log_x0 = jnp.where(no_tail, 0.0, log_x[0])
    log_y = (log_x - log_x0).at[0].set(0.0)
    xi_fit, log_sigma = _zhang_stephens_fit(log_y, _grid_log_s(m_tail, lw.dtype))
    xi = (m_tail * xi_fit + _PRIOR_STRENGTH * _PRIOR_MEAN) / (m_tail + _PRIOR_STRENGTH)
    # Tail position j (0 = largest) is order statistic z = M − j: p = (M − j − ½)/M.
    j = jnp.arange(m_tail, dtype=lw.dtype)
    log_1mp = jnp.log1p(-(m_tail - j - 0.5) / m_tail)  # log(1 − p) < 0
    small = jnp.abs(xi) < 1e-6
    safe_xi = jnp.where(small, 1.0, xi)
    # F⁻¹(p) = σ·((1 − p)^(−ξ) − 1)/ξ, → −σ·log(1 − p) as ξ → 0.
    log_quantile = log_sigma + jnp.where(
        small, jnp.log(-log_1mp), jnp.log(jnp.expm1(-safe_xi * log_1mp) / safe_xi)
    )
    smoothed = jnp.minimum(jnp.logaddexp(log_u, log_x0 + log_quantile), top[0])
    keep = no_tail | (top[0] == jnp.inf) | jnp.any(jnp.isnan(lw))
    smoothed = jnp.where(keep, tail, smoothed)
    return lw.at[idx[:m_tail]].set(smoothed)
