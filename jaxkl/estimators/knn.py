"""Sample-only KL estimation from k-nearest-neighbour distances (Wang–Kulkarni–Verdú).

The estimator needs no density, only samples x ~ P and y ~ Q. Two neighbour searches give
the same neighbours: a blocked brute force in XLA, which streams all pairwise distances
tile by tile keeping a running top-k per point (memory O(row_block × col_block + n·k)
besides the inputs, never O(n × m); any device), and a k-d tree (scipy's ``cKDTree``, run
on the host through ``jax.pure_callback``; see ``_knn_tree.py``), chosen on CPU for
low dimensions and large samples (``knn_kl``'s ``method``).
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import digamma

from jaxkl._checks import require
from jaxkl._shapes import as_float
from jaxkl.estimators import _knn_tree
from jaxkl.estimators.estimate import Estimate
from jaxkl.special import log_ratio

__all__ = ["auto_takes_tree", "knn_kl", "subsample_groups"]

# A 1 MiB float32 tile. With the loop order below, 64 × 4096 … 512 × 512 all ran within
# ~15% of each other on a 2-core CPU (d = 1 and 10, k = 1 and 5); this one was never slow.
_DEFAULT_BLOCK = (128, 2048)
# Coordinates summed in one fused loop; beyond this a scan over chunks keeps programs small.
_UNROLL = 16
_METHODS = ("auto", "brute", "tree")
# method="auto" takes the tree on CPU for dimensions d ≤ 13, from _TREE_MIN_POINTS[d]
# query points on: k-d trees lose their pruning as d grows, so the brute force's n·m work
# overtakes them ever later, and for few points the host call's fixed cost and the tree's
# per-query work dominate. Seconds per knn_kl call (value and stderr), tree vs brute
# force, x ~ N(0, I), y ~ N(0.5, I), float32, 2-core CPU. d = 1, 5 and 10 from the
# committed throughput run (results/throughput/report.md, section knn_tree): d = 1,
# n = 1024 0.0060 vs 0.0062, n = 2048 0.0089 vs 0.020; d = 5, n = 2048 0.019 vs 0.025
# (the rule waits until 6144 there), n = 4096 0.034 vs 0.078; d = 10, n = 4096 0.125 vs
# 0.096. Others (leaves of 64 points from d = 8, _knn_tree.py; medians of 2–3 after a
# warm-up, 2026-12-08): d = 8, n = 5000 0.148 vs 0.158, n = 10⁴ 0.21 vs 0.41; d = 9,
# n = 9216 0.27 vs 0.38; d = 10, n = 9216 0.32 vs 0.37; d = 11, n = 9216 0.42 vs 0.39,
# n = 12 288 0.69 vs 0.75; d = 12, n = 13 312 0.90 vs 0.83, n = 2·10⁴ 1.98 vs 1.75,
# n = 3·10⁴ 3.78 vs 4.65; d = 13, n = 3·10⁴ 5.28 vs 4.18, n = 6·10⁴ 15.9 vs 15.9; d = 14
# and 16, n = 3·10⁴ 6.2 vs 4.2 and 8.4 vs 5.9 (no size was measured beyond d = 13 where
# the tree wins).
_TREE_MIN_POINTS = {d: 1024 * (d + 1) for d in range(1, 9)} | {
    9: 9216,
    10: 9216,
    11: 12288,
    12: 32768,
    13: 65536,
}


def auto_takes_tree(n: int, d: int) -> bool:
    """Whether ``knn_kl(method="auto")`` searches by the tree on CPU, for n points of x in
    dimension d (on accelerators it always takes the brute force).

    Example:
      >>> auto_takes_tree(100_000, 10), auto_takes_tree(100_000, 16), auto_takes_tree(500, 1)
      (True, False, False)
    """
    return d in _TREE_MIN_POINTS and n >= _TREE_MIN_POINTS[d]


def knn_kl(
    x,
    y,
    *,
    k: int = 1,
    method: str = "auto",
    block_size: int | tuple[int, int] = _DEFAULT_BLOCK,
) -> Estimate:
    """KL(P‖Q) from samples x ~ P and y ~ Q by k-nearest-neighbour distances.

    Wang, Kulkarni & Verdú (2009):

        D̂ = (1/n) Σᵢ tᵢ + log(m / (n − 1)),
        tᵢ = d·log(νᵢ / ρᵢ) + ψ(kρᵢ) − ψ(kνᵢ),

    where ρᵢ is the distance from xᵢ to its kρᵢ-th nearest neighbour among the other n − 1
    points of x, νᵢ the distance from xᵢ to its kνᵢ-th nearest neighbour in y, and ψ the
    digamma function. It follows from log p(xᵢ) ≈ ψ(kρ) − ψ(n) − log V(ρ) (the mass of the
    ball holding kρ of n − 1 points is Beta(kρ, n − kρ)) and likewise for q.

    **Ties and duplicates.** With continuous data kρᵢ = kνᵢ = k and the ψ terms cancel.
    A duplicated point would make a k-th distance exactly 0 and log 0 appear, so the order is
    adapted per point (the adaptive-k form of Wang–Kulkarni–Verdú): with zᵢ other points of
    the sample at distance exactly 0 from xᵢ, the order used is max(k, zᵢ + 1), i.e. the
    k-th neighbour, or the first neighbour at positive distance when there are k or more
    copies; ψ(kρᵢ) − ψ(kνᵢ) corrects for the changed order. So no log 0 arises. Points
    whose squared distance underflows to 0 count as copies (after the rescaling below,
    those closer than about 2⁻⁶³ times the largest |coordinate|). The estimate is
    undefined (NaN) when no positive distance exists: all points of x identical, or every
    point of y equal to some xᵢ; concrete inputs of that kind raise ``ValueError``.

    **The same sample twice.** Independent samples of a continuous distribution share no
    points, and data with atoms make copies within x as well as across. When at least half
    of x's points have an exact copy in y and none in x — ``knn_kl(x, x)``, a permutation
    of x, or two overlapping slices of one array — the estimate means nothing (for
    ``knn_kl(x, x)`` it is −1 + log(n/(n − 1)) whatever x: each xᵢ finds itself in y, which
    reads as an atom): concrete inputs raise ``ValueError``, and under
    ``jit``/``vmap`` value and stderr are NaN. A smaller overlap is not detected and biases
    the estimate downwards. Exact copies from a coarse sampler bias it too:
    ``jax.random.normal`` in float32 takes about 2²³ values, and at n = m = 10⁴ in 1-D
    (the pair of the example below) its samples gave a relative bias of −1.66 ± 0.23 %
    against −0.33 ± 0.23 % for samples drawn in float64 and rounded to float32 [1].

    **Scale.** Before the search x and y are multiplied by one power of two, chosen so the
    largest |coordinate| lies in [1, 2). That is exact and KL is scale invariant, so data
    scaled by any power of two give bit-identical results, squared distances cannot
    overflow, and data of magnitude 1e-20 (squared distances below float32's smallest
    normal, formerly NaN) are estimated as at magnitude 1.

    **Standard error.** The tᵢ are not independent (neighbouring points share neighbours,
    and all share y), so their sd/√n understates the error. ``stderr`` is instead
    sd(D̂_g)/√G over G = 10 disjoint subsamples (every G-th point of x and of y; so x and y
    must be i.i.d. in the order given), which assumes Var D̂ ∝ 1/n. It is an sd of G values:
    intervals need Student-t with G − 1 = 9 degrees of freedom (t₀.₉₇₅ = 2.262, not 1.96;
    ``Estimate.dof`` is G − 1 and ``ci`` uses it). On the example's pair (d = 1, KL 0.5)
    value ± 2.262·stderr covered the truth in 93.65 ± 0.55 % of 2000 replicates at n = m =
    10³ (± 1.96·stderr: 90.15 ± 0.67 %) and in 95.4 ± 0.9 % of 500 at n = m = 10⁴, the
    replicates' sd being 1.07 ± 0.02 and 0.98 ± 0.03 times the root-mean-square stderr [1];
    in 5-D (``mvn5``) 91.5 ± 2.0 % of 200 at 10³ [1]. It fails where Var D̂ does not scale
    as 1/n: for P = N(0, 1), Q = N(√20, 1) (KL 10) the sd was 3.01 ± 0.05 (n = 10³) and 2.88
    ± 0.09 (n = 10⁴) times the stderr [1]. ``stderr`` is inf where a subsample has no
    defined estimate (heavy ties: e.g. all of a subsample's x points equal) though the whole
    sample has one.

    **Bias.** ``stderr`` does not include the finite-sample bias, which grows with d and
    where Q is narrow or far relative to P, and which can dominate: relative bias (mean of
    R replicates − KL, ± its standard error) [1] —

    ============================================  =====  ======  ==================
    pair (x ~ P, y ~ Q)                           KL     n = m   relative bias
    ============================================  =====  ======  ==================
    N(0, 1) ‖ N(1, 1)                             0.5    10³     −1.51 ± 0.38 %
    N(0, 1) ‖ N(√20, 1)                           10     10³     −35.31 ± 0.08 %
    N(0, 1) ‖ N(√20, 1)                           10     10⁴     −22.95 ± 0.15 %
    5-D diagonal pair (``mvn5`` in [1])           0.902  10⁴     −2.37 ± 0.46 %
    the same reversed (``mvn5_reverse``)          1.31   10⁴     −29.48 ± 0.30 %
    N(0, I₁₀) ‖ N(0.3·1, I₁₀)                     0.45   10³     −24.68 ± 1.32 %
    N(0, I₁₀) ‖ N(0.3·1, I₁₀)                     0.45   10⁴     −19.21 ± 0.71 %
    ============================================  =====  ======  ==================

    and the coverage of the t intervals falls with it (0 for the far and reversed pairs).

    **Search** (``method``). ``"brute"``: all pairwise distances, streamed in tiles in XLA
    (any device; O(n (n + m) d) time, memory O(row_block × col_block + n·k) besides the
    inputs). ``"tree"``: scipy's k-d tree (``cKDTree``) on the host through
    ``jax.pure_callback``, from any device (the samples travel to the host); under
    ``vmap`` it searches the whole batch in one call. ``"auto"`` (default): the tree where
    the program runs on CPU, d ≤ 13 and n is at least 1024·(d + 1) for d ≤ 8, 9216 for
    d = 9, 10, 12 288 for d = 11, 32 768 for d = 12 and 65 536 for d = 13
    (``auto_takes_tree``), else the brute force: k-d trees lose their pruning as d grows
    (on a 2-core CPU the tree was 2× faster than the brute force at d = 8, n = 10⁴, even
    at d = 13, n = 6·10⁴ and 1.4–1.5× slower at d = 14 and 16, n = 3·10⁴), and for few
    points the host call's fixed cost dominates (measurements beside
    ``_TREE_MIN_POINTS`` in this module). "On CPU" is decided when the program is
    lowered for its device (``jax.lax.platform_dependent``), not by
    ``jax.default_backend()``: arrays placed on a CPU device take the tree even where a
    GPU is the default. The two searches apply the same rule and give the same
    neighbours, except that between points at exactly equal distance the tree may take
    any (the brute force takes the lowest index; the distance is the same) and that two
    distances equal to within float rounding may be ranked differently (the brute force
    ranks by its float32 sums, the tree by float64 distances): estimates then agree to
    rounding; elsewhere they are bit-identical. Speed against scipy used directly:
    ``python -m benchmarks.throughput``, section ``knn_tree``; in its committed run
    (``results/throughput/report.md``, 2-core CPU, n = m, one run) the default search,
    the tree at each of these sizes, ran at 1.06× and 0.82× scipy's speed at d = 1
    (n = 10⁴, 10⁵), 0.75× and 0.94× at d = 5, 1.19× and 1.09× at d = 10.
    The search runs without gradient: the selected distances are recomputed from the
    gathered points, so ``jax.grad`` with respect to x and y works with either search and
    costs O((n + m) d) memory.

    **Precision.** Squared distances are formed from direct differences Σⱼ (aⱼ − bⱼ)², summed
    over coordinates in order, not as ‖a‖² + ‖b‖² − 2a·b. The expansion loses everything
    below ε·‖a‖² (ε = 2⁻²³ in float32): in 1-D at n = 10⁴ nearest-neighbour distances are
    about 1/n of the spread, their squares ~1e-8·‖a‖², so it would pick wrong neighbours,
    and it cannot tell a copy (distance exactly 0) from a near neighbour. Direct
    differences are exact for close points (Sterbenz) and keep relative accuracy, at the
    cost of not using a matrix product (no BLAS).

    Args:
      x: samples from P, ``[n, d]``, or ``[n]`` for d = 1. Needs n ≥ k + 1.
      y: samples from Q, ``[m, d]`` (or ``[m]``), same d. Needs m ≥ k.
      k: neighbour order, an integer ≥ 1.
      method: the neighbour search, ``"auto"``, ``"brute"`` or ``"tree"`` (see above).
      block_size: the brute force's ``(rows of x, columns of x or y)`` per distance tile,
        or one int for square tiles. Any sizes work (they need not divide n or m); the
        result does not depend on them.

    Returns:
      ``Estimate(value, stderr, num_samples=n, dof=G − 1)``; ``value`` and ``stderr`` are
      scalars (G subsamples, normally 10, so ``ci`` uses t₉). For
      a batch of problems use ``jax.vmap`` over a leading axis of x and y (memory then
      scales with the batch size times the tile).

    Raises:
      ValueError: for k < 1, k ≥ n, k > m, an unknown method, mismatched dimensions,
        inputs that are not ``[n, d]`` or ``[n]``, and, for concrete inputs, NaN or
        infinite samples, the undefined cases above, or x and y sharing most points.
        Under ``jit``/``vmap`` values cannot be checked: NaN propagates to the result
        (use ``jaxkl.checked`` to raise instead).

    Example:
      >>> import jax
      >>> import jaxkl
      >>> x = jax.random.normal(jax.random.key(0), (2000,))
      >>> y = 1.0 + jax.random.normal(jax.random.key(1), (2000,))
      >>> est = jaxkl.knn_kl(x, y)  # truth: KL(N(0, 1) ‖ N(1, 1)) = 0.5
      >>> abs(float(est.value) - 0.5) < 0.15
      True

    References:
      Q. Wang, S. R. Kulkarni, S. Verdú. Divergence estimation for multidimensional
      densities via k-nearest-neighbor distances. IEEE Trans. Inf. Theory 55(5),
      2392–2405, 2009.

      [1] ``experiments/knn_calibration.py`` with ``configs/knn_calibration.toml``
      (float32, k = 1; samples drawn in float64 and rounded to float32 unless stated);
      the committed run: ``results/knn_calibration/report.md``.
    """
    k = _check_k(k)
    method = _check_method(method)
    row_block, col_block = _check_block_size(block_size)
    x, y = as_float(x, y)
    x = _as_points(x, "x")
    y = _as_points(y, "y")
    (n, d), (m, d_y) = x.shape, y.shape
    if d_y != d:
        raise ValueError(
            f"knn_kl: x and y must have the same dimension d; got x {x.shape}, y {y.shape}"
        )
    if k >= n:
        raise ValueError(
            f"knn_kl: need k < n (the k-th neighbour of xᵢ among the other n − 1 points of "
            f"x); got k={k}, n={n}"
        )
    if k > m:
        raise ValueError(f"knn_kl: need k <= m (the k-th neighbour in y); got k={k}, m={m}")
    _check_values(x, y)
    opts = {"k": k, "method": method, "row_block": row_block, "col_block": col_block}
    value, shared = _value(x, y, **opts)
    require(
        ~shared,
        "knn_kl: most points of x have an exact copy in y but none in x. Independent "
        "samples of a continuous distribution share no points, so y is most likely the "
        "same array as x, or overlaps it (knn_kl(x, x), or two slices of one array); draw "
        "x and y independently.",
    )
    stderr, groups = _subsample_stderr(x, y, **opts)
    stderr = jnp.where(jnp.isnan(value), jnp.nan, stderr)
    # The stderr is the spread of G subsample estimates: G − 1 degrees of freedom.
    return Estimate(value, stderr, n, max(groups - 1, 0))


_SUBSAMPLES = 10


def subsample_groups(n: int, m: int, k: int) -> int:
    """G, the number of disjoint subsamples behind ``knn_kl``'s standard error (its dof is
    G − 1): 10, fewer when n or m is too small for G disjoint problems (< 2: none).

    Example:
      >>> subsample_groups(1000, 1000, 1), subsample_groups(12, 1000, 1)
      (10, 6)
    """
    return min(_SUBSAMPLES, n // (k + 1), m // k)


def _subsample_stderr(x, y, *, k: int, method: str, row_block: int, col_block: int):
    """Standard error from G disjoint subsamples, sd(D̂_g)/√G, and G: ``(stderr, G)``.

    The per-point terms share neighbours, so their sample sd/√n understates the error.
    Estimates on disjoint subsamples — x and y split into G groups of every G-th point —
    are independent, and with Var D̂_n ∝ 1/n, Var D̂_n ≈ Var D̂_{n/G} / G. G is a Python
    int (static): intervals from this stderr need Student-t with G − 1 degrees of freedom.
    ``stderr`` is inf when G < 2 or when some subsample has no defined estimate (heavy
    ties: e.g. all of a subsample's x points equal) although the whole sample has one.
    """
    n, m = x.shape[0], y.shape[0]
    groups = subsample_groups(n, m, k)
    if groups < 2:
        return jnp.asarray(jnp.inf, x.dtype), groups
    return _subsample_sd(
        x, y, groups=groups, k=k, method=method, row_block=row_block, col_block=col_block
    ), groups


@functools.partial(jax.jit, static_argnames=("groups", "k", "method", "row_block", "col_block"))
def _subsample_sd(x, y, *, groups: int, k: int, method: str, row_block: int, col_block: int):
    n, m = x.shape[0], y.shape[0]
    n_g, m_g = n // groups, m // groups
    x, y = _prepare(x, y)

    def strided(a, size):  # [groups, size, d]: group g holds points g, g + G, g + 2G, …
        return jnp.swapaxes(a[: size * groups].reshape(size, groups, a.shape[-1]), 0, 1)

    def one(xg, yg):
        terms, _, _ = _point_terms(
            xg, yg, k=k, method=method, row_block=row_block, col_block=col_block
        )
        return jnp.mean(terms) + (math.log(m_g) - math.log(n_g - 1))

    estimates = jax.vmap(one)(strided(x, n_g), strided(y, m_g))
    defined = jnp.all(jnp.isfinite(estimates))
    # Double where: the sd of undefined groups is not used, and its gradient must not be NaN.
    sd = jnp.std(jnp.where(defined, estimates, 0.0), ddof=1) / math.sqrt(groups)
    return jnp.where(defined, sd, jnp.inf)


@functools.partial(jax.jit, static_argnames=("k", "method", "row_block", "col_block"))
def _value(x, y, *, k: int, method: str, row_block: int, col_block: int):
    """``(D̂, shared)``: the estimate, NaN where ``shared`` (x and y share most points)."""
    n, m = x.shape[0], y.shape[0]
    x, y = _prepare(x, y)
    terms, zeros_x, zeros_y = _point_terms(
        x, y, k=k, method=method, row_block=row_block, col_block=col_block
    )
    shared = _shares_points(zeros_x, zeros_y)
    value = jnp.mean(terms) + (math.log(m) - math.log(n - 1))
    return jnp.where(shared, jnp.nan, value), shared


def _shares_points(zeros_x, zeros_y):
    """Whether at least half of x's points have a copy in y and none in x.

    Continuous data has no exact copies; a discrete (or rounded) P makes copies within x as
    well as across, so a point with copies in y alone is rare — unless y contains x.
    """
    alone = jnp.sum((zeros_y > 0) & (zeros_x == 0), dtype=jnp.int32)
    return 2 * alone >= zeros_x.shape[0]


def _prepare(x, y):
    """x and y materialised once and brought to a fixed scale by one power of two."""
    # A sample computed in the same jit (e.g. drawn there) could otherwise be recomputed
    # inside several fusions with different rounding, so xᵢ would not even equal itself.
    x, y = lax.optimization_barrier((x, y))
    return _rescale(x, y)


def _rescale(x, y):
    """x·2ˢ and y·2ˢ, with s chosen so the largest |coordinate| lies in [1, 2).

    KL is scale invariant and multiplying by a power of two is exact, so this changes no
    neighbour and no ratio, and data scaled by any power of two give bit-identical
    results. At this scale squared distances cannot overflow (they are below 16·d), and
    neither they nor the gradient's intermediates (1/ρ², …) leave the normal range unless
    points are closer than about 2⁻⁶³ of the largest |coordinate|; such points count as
    copies. Unscaled, data of magnitude 1e-20 had every squared distance flushed to zero
    in float32, and data above ~1e19 overflowed. s is a constant to differentiation.
    """
    dtype = x.dtype
    info = jnp.finfo(dtype)
    largest = lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(y))))
    # frexp: largest = f·2^e with f in [½, 1); 0, inf and NaN give e = 0 (NaN results anyway).
    _, e = jnp.frexp(largest)
    shift = jnp.clip(1 - e, 2 * info.minexp, 2 * (info.maxexp - 1))
    # Two factors, since 2ˢ itself may not be a normal float (|s| up to ~150 in float32).
    # Each product is exact when its result is a normal float; results below the normal
    # range are flushed to zero by XLA on CPU either way.
    half = shift // 2
    factor_a, factor_b = _pow2(half, dtype), _pow2(shift - half, dtype)
    return x * factor_a * factor_b, y * factor_a * factor_b


def _pow2(e, dtype):
    """2ᵉ exactly, for integer e within the dtype's normal exponent range."""
    info = jnp.finfo(dtype)
    bits = jnp.dtype(dtype).itemsize * 8
    int_type = {16: jnp.int16, 32: jnp.int32, 64: jnp.int64}[bits]
    biased = (e - info.minexp + 1).astype(int_type)  # the IEEE biased exponent field
    return lax.bitcast_convert_type(biased << info.nmant, dtype)


def _check_k(k) -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"knn_kl: k must be an integer >= 1; got {k!r}")
    return int(k)


def _check_method(method) -> str:
    if method not in _METHODS:
        raise ValueError(f"knn_kl: method must be one of {list(_METHODS)}; got {method!r}")
    return method


def _check_block_size(block_size) -> tuple[int, int]:
    sizes = (block_size, block_size) if isinstance(block_size, numbers.Integral) else block_size
    try:
        rows, cols = sizes
    except (TypeError, ValueError):
        rows = cols = None
    ok = all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in (rows, cols)
    )
    if not ok:
        raise ValueError(
            f"knn_kl: block_size must be a positive int or a pair (rows, cols) of them; "
            f"got {block_size!r}"
        )
    return int(rows), int(cols)


def _as_points(a, name: str):
    if a.ndim == 1:
        return a[:, None]
    if a.ndim != 2:
        raise ValueError(
            f"knn_kl: {name} must be [num_points, d] or [num_points] (d = 1); got shape "
            f"{a.shape}. For a batch of problems use jax.vmap."
        )
    return a


def _check_values(x, y) -> None:
    """Concrete-input checks (no-ops under jit/vmap, runtime checks under jaxkl.checked)."""
    finite_x, finite_y, x_varies, y_not_one_point_of_x = _value_flags(x, y)
    require(finite_x, "knn_kl: x must be finite (no NaN or inf)")
    require(finite_y, "knn_kl: y must be finite (no NaN or inf)")
    require(
        x_varies,
        "knn_kl: all points of x are identical, so no positive distance within x exists",
    )
    require(
        y_not_one_point_of_x,
        "knn_kl: every point of y equals the same point of x, so no positive distance to y "
        "exists from it",
    )


@jax.jit
def _value_flags(x, y):
    # One compiled call for all four flags: eager checks cost one dispatch, not a dozen.
    y_is_one_point_of_x = jnp.all(y == y[:1]) & jnp.any(jnp.all(x == y[:1], axis=1))
    return (
        jnp.all(jnp.isfinite(x)),
        jnp.all(jnp.isfinite(y)),
        jnp.any(x != x[:1]),
        ~y_is_one_point_of_x,
    )


def _sum_sq_diff(a, b):
    """Σⱼ (a[j] − b[j])² over the leading (coordinate) axis, accumulated in order j = 0, 1, …

    a and b have the same rank and broadcast in their trailing axes. A fixed order, not a
    reduction tree shaped by the tile, keeps each pair's rounding independent of the tiling.
    """
    d = a.shape[0]
    acc = jnp.zeros(jnp.broadcast_shapes(a.shape[1:], b.shape[1:]), a.dtype)

    def add_chunk(acc, a_chunk, b_chunk):
        for j in range(a_chunk.shape[0]):
            acc = acc + jnp.square(a_chunk[j] - b_chunk[j])
        return acc

    if d <= _UNROLL:
        return add_chunk(acc, a, b)
    chunks = -(-d // _UNROLL)

    def split(v):
        # Padding coordinates are 0 in both, adding exactly 0 to every sum.
        v = jnp.pad(v, [(0, chunks * _UNROLL - d)] + [(0, 0)] * (v.ndim - 1))
        return v.reshape(chunks, _UNROLL, *v.shape[1:])

    acc, _ = lax.scan(lambda acc, ab: (add_chunk(acc, *ab), None), acc, (split(a), split(b)))
    return acc


def _knn_search(q, r, k: int, row_block: int, col_block: int, exclude_self: bool):
    """For each row of q: how many rows of r are at squared distance exactly 0, and the
    indices of the k rows of r nearest among those at positive distance.

    With ``exclude_self`` (r is q) row i of r is not a candidate for row i of q: the point
    itself is excluded by index, not by its distance 0, which holds only if both copies of
    the sample are bit-identical.

    Returns ``(idx [n, k] int32, zeros [n] int32)``; idx is ordered by distance, ties going
    to the lower index (so it does not depend on the tiling). Slots beyond the number of
    positive distances hold meaningless indices.
    """
    n, d = q.shape
    m = r.shape[0]
    bq, br = min(row_block, n), min(col_block, m)
    nq, nr = -(-n // bq), -(-m // br)
    k_tile = min(k, br)

    def tiles(v, size, count):
        # [count, d, size]: coordinates leading, so each coordinate is a contiguous row.
        v = jnp.pad(v, ((0, count * size - v.shape[0]), (0, 0)))
        return jnp.swapaxes(v.reshape(count, size, d), 1, 2)

    q_tiles, r_tiles = tiles(q, bq, nq), tiles(r, br, nr)
    row_ids = jnp.arange(nq * bq, dtype=jnp.int32).reshape(nq, bq)
    # Column tiles outside, row blocks inside, carrying the running lists of all n rows
    # (O(n·k)): the other nesting, a scan over column tiles inside a map over row blocks,
    # measured 3-4x slower on XLA:CPU.
    starts = jnp.arange(nr, dtype=jnp.int32) * br
    cols = jnp.arange(br, dtype=jnp.int32)
    no_candidate = jnp.array(-jnp.inf, q.dtype)

    def column_tile(state, tile):
        rt, start = tile
        col_ids = start + cols
        real = (col_ids < m)[None, :]

        def row_block(block):
            qt, rows, best_neg, best_idx, zeros = block
            d2 = _sum_sq_diff(qt[:, :, None], rt[:, None, :])  # [bq, br]
            real_b = jnp.broadcast_to(real, d2.shape)
            if exclude_self:
                real_b = real_b & (rows[:, None] != col_ids[None, :])
            zeros = zeros + jnp.sum((d2 == 0) & real_b, axis=1, dtype=jnp.int32)
            # top_k finds the largest, so negate: the k smallest positive distances.
            neg = jnp.where(real_b & (d2 > 0), -d2, no_candidate)
            tile_neg, tile_pos = lax.top_k(neg, k_tile)
            # Earlier candidates first: equal distances resolve to the lower index.
            cand_neg = jnp.concatenate([best_neg, tile_neg], axis=1)
            cand_idx = jnp.concatenate([best_idx, tile_pos + start], axis=1)
            best_neg, pos = lax.top_k(cand_neg, k)
            return best_neg, jnp.take_along_axis(cand_idx, pos, axis=1), zeros

        return lax.map(row_block, (q_tiles, row_ids, *state)), None

    init = (
        jnp.full((nq, bq, k), no_candidate),
        jnp.zeros((nq, bq, k), jnp.int32),
        jnp.zeros((nq, bq), jnp.int32),
    )
    (_, idx, zeros), _ = lax.scan(column_tile, init, (r_tiles, starts))
    return idx.reshape(nq * bq, k)[:n], zeros.reshape(nq * bq)[:n]


def _brute_neighbours(x, y, k: int, row_block: int, col_block: int):
    """``(jx, zx, jy, zy)`` by the tiled brute force; see :func:`_search_neighbours`."""
    out = []
    for ref, own in ((x, True), (y, False)):
        idx, zeros = _knn_search(x, ref, k, row_block, col_block, exclude_self=own)
        # The order is max(k, zᵢ + 1), i.e. the (max(k − zᵢ, 1))-th positive distance.
        pos = jnp.maximum(k - zeros, 1) - 1
        out += [jnp.take_along_axis(idx, pos[:, None], axis=1)[:, 0], zeros]
    return tuple(out)


def _tree_neighbours(x, y, k: int):
    """``(jx, zx, jy, zy)`` by scipy's k-d tree on the host; see ``_knn_tree.py``."""
    shape = jax.ShapeDtypeStruct(x.shape[:-1], jnp.int32)
    return jax.pure_callback(
        functools.partial(_knn_tree.neighbours, k=k),
        (shape,) * 4,
        x,
        y,
        # Under vmap the host gets the whole batch at once and searches it in parallel.
        vmap_method="broadcast_all",
    )


def _search_neighbours(x, y, k: int, method: str, row_block: int, col_block: int):
    """``(jx, zx, jy, zy)``, each ``[n]`` int32: for every xᵢ the number zx of other points
    of x at squared distance 0 and the index jx of its max(k, zx + 1)-th neighbour in x,
    i.e. the max(k − zx, 1)-th at positive distance (ties to the lower index); likewise
    zy, jy in y. Where that neighbour does not exist the index is meaningless.

    Both searches follow this rule; they rank near-ties differently only where two
    squared distances agree to within float rounding (the brute force ranks by its own
    float sums, the tree by float64 sums of the same differences).
    """
    # Only which neighbours are chosen comes from the search; gradients flow through the
    # recomputed distances, so the search is never differentiated.
    x, y = lax.stop_gradient(x), lax.stop_gradient(y)
    n, d = x.shape
    brute = functools.partial(_brute_neighbours, k=k, row_block=row_block, col_block=col_block)
    tree = functools.partial(_tree_neighbours, k=k)
    if method == "brute":
        return brute(x, y)
    if method == "tree":
        return tree(x, y)
    if not auto_takes_tree(n, d):
        return brute(x, y)
    # Chosen when the program is lowered for its platform (the device x and y live on, or
    # jit's target): the tree on CPU, the brute force on accelerators.
    return lax.platform_dependent(x, y, cpu=tree, default=brute)


def _radius_sq(x, ref, j, zeros, k: int, size: int):
    """Squared radius, neighbour order and definedness for each xᵢ against ``ref``.

    The order is max(k, zᵢ + 1) among ``size`` candidates (zᵢ of them at distance 0), i.e.
    the (max(k − zᵢ, 1))-th smallest positive distance; it exists iff order ≤ size.
    """
    order = jnp.maximum(zeros + 1, k)
    # Where undefined, j may point anywhere (or at padding): clip, and the caller masks.
    neighbour = jnp.take(ref, j, axis=0, mode="clip")
    r2 = _sum_sq_diff(x.T, neighbour.T)
    return r2, order, order <= size


def _neighbour_radii(x, y, k: int, method: str, row_block: int, col_block: int):
    """ρᵢ², νᵢ², kρᵢ, kνᵢ, whether both exist (each ``[n]``), and the zero counts zx, zy."""
    n, m = x.shape[0], y.shape[0]
    jx, zx, jy, zy = _search_neighbours(x, y, k, method, row_block, col_block)
    rho2, k_rho, ok_rho = _radius_sq(x, x, jx, zx, k, n - 1)
    nu2, k_nu, ok_nu = _radius_sq(x, y, jy, zy, k, m)
    return rho2, nu2, k_rho, k_nu, ok_rho & ok_nu, zx, zy


def _point_terms(x, y, *, k: int, method: str, row_block: int, col_block: int):
    """Per-point terms tᵢ = d·log(νᵢ/ρᵢ) + ψ(kρᵢ) − ψ(kνᵢ), ``[n]`` (NaN where undefined),
    and the zero counts zx, zy."""
    d = x.shape[1]
    rho2, nu2, k_rho, k_nu, ok, zx, zy = _neighbour_radii(x, y, k, method, row_block, col_block)
    # A NaN coordinate compares neither = 0 nor > 0, so the search would silently skip that
    # point; make non-finite samples (unchecked under jit) poison the result instead.
    ok = ok & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y))
    # Double where: undefined points get harmless radii so their gradients stay finite.
    rho2 = jnp.where(ok, rho2, 1.0)
    nu2 = jnp.where(ok, nu2, 1.0)
    dtype = x.dtype
    terms = 0.5 * d * log_ratio(nu2, rho2) + (
        digamma(k_rho.astype(dtype)) - digamma(k_nu.astype(dtype))
    )
    return jnp.where(ok, terms, jnp.nan), zx, zy
