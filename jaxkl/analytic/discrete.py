"""Closed forms for discrete families: Bernoulli, Categorical, Poisson, Bernoulli‖Poisson.

The Bernoulli and Categorical kernels rest on one identity. With g = logits_a − logits_b the
logit gap, μ = E_p[g] and x = μ − g,

    KL(a‖b) = Σ_k p_k (log p_k − log q_k) = log(Σ_{k ∈ supp a} p_k eˣᵏ + q̃) = log1p(S),
    S = Σ_k p_k φ(x_k) + q̃,   φ(x) = eˣ − 1 − x ≥ 0,

(log p_k − log q_k = g_k − logsumexp a + logsumexp b, and Σ p x = 0), where
q̃ = e^{μ − logsumexp a}·Σ_{k ∉ supp a} e^{b_k} is zero unless a gives some category
probability exactly 0. S is a sum of non-negative terms, so the KL is non-negative by
construction and keeps full relative precision as a → b, where the textbook
Σ p (log p − log q) loses all digits to cancellation (KL ~ ½Var_p(g) ≪ eps·H). Categories
where a has mass and b has none make the KL +inf.

Bernoulli (``_kl_from_log_probs``) evaluates it on log-probabilities, taking log(1 + S) as a
logsumexp when it is large and the mass outside supp a as −log q(supp a).

Categorical evaluates it from the logits in five row sums, written so that XLA:CPU runs each
as one fused YNNPACK loop that writes nothing of size [..., K] to memory:

1. max a; 2. max b;
3. Z = Σ e^{a − max a};
4. W = Σ e^{a − max a}·(g − (max a − max b)), so μ = max a − max b + W/Z; summed relative
   to max a − max b, the gaps' rounding in the sum does not grow with a shift between a
   and b. A second term, ≥ finfo.max/2 exactly where a has mass and b has none, flags such
   a row +inf however small p is there;
5. S, each term as w·ζ with w = max(p_k, p_k e^{x_k}) and ζ = φ(x)·p/w =
   e^{min(x,0)} − e^{−max(x,0)}(1 + x): the larger weight is exponentiated directly and the
   other follows from e^{−|x|}, so the two agree to an ulp however far apart they are. For
   |x| ≤ r the difference of exponentials is replaced by the series x²·Σ_j xʲ/(j+2)!
   (r = ½ and 7 terms in float32, ¼ and 11 in float64), so every term is within ~20 ulp.

−inf logits are raised to −finfo.max, whose exponential is still 0 and whose differences stay
finite. Once a term of S could exceed e^T (T = 64 in float32, 600 in float64) S is scaled by
e^{−σ} and KL = σ + log1p(S e^{−σ} + expm1(−σ)), so any KL up to the float range is finite.
XLA:CPU's fused loops cannot hold a compare or a select, so the branch |x| ≤ r is taken
arithmetically and row values are computed outside the loops. Rows of at most 32 categories
are summed column by column instead, which XLA fuses into one loop over the rows.
Rows longer than 16 384 categories are reduced in chunks (each chunk a row of its own, then
the chunk partials): a fused row reduction over one long row runs ~14× slower per element
on XLA:CPU than over many short ones (``_chunks``).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from jaxkl._shapes import as_float, broadcast_named, working_dtype
from jaxkl.analytic._kernel import kernel
from jaxkl.distributions.poisson import poisson_deviance
from jaxkl.special import expm1_minus_x

__all__ = ["bernoulli", "bernoulli_poisson", "categorical", "poisson"]


def _weighted_expm1_minus_x(log_w, x, log_w_exp_x=None):
    """w·(e^x − 1 − x) for w = e^{log_w} ≥ 0, without overflow, cancellation or NaN.

    For x ≤ 1 the product is formed directly; above, as w·e^x − w(1 + x), which stays
    finite whenever the result is, and whose two terms differ by a factor ≥ e/2. Pass
    ``log_w_exp_x`` = log(w·e^x) when it is known more accurately than log_w + x. Where
    w = 0 the result is 0 whatever x is (including x = ±inf).
    """
    w = jnp.exp(log_w)
    x = jnp.where(log_w > -jnp.inf, x, 0.0)
    low = x <= 1.0
    x_low = jnp.where(low, x, 0.0)
    x_high = jnp.where(low, 1.0, x)
    log_w_exp_x = log_w + x_high if log_w_exp_x is None else jnp.where(low, log_w, log_w_exp_x)
    high = jnp.exp(log_w_exp_x) - w * (1.0 + x_high)
    return jnp.where(low, w * expm1_minus_x(x_low), high)


def _kl_from_log_probs(log_p, log_q, gap):
    """KL(p‖q) over the last axis (see the module docstring).

    Args:
      log_p, log_q: normalised log-probabilities ``[..., K]`` (−inf for zero mass).
      gap: ``[..., K]``, equal to log_p − log_q up to a per-row constant wherever both
        are finite (the raw logit gap, which is more accurate than that difference).

    Returns:
      ``[...]``: +inf where p has mass on a category where q has none.
    """
    num = log_p.shape[-1]
    has_mass = log_p > -jnp.inf
    infinite = jnp.any(has_mass & (log_q == -jnp.inf), axis=-1)
    # Rows with an infinite KL are replaced by a harmless uniform pair before any
    # arithmetic, so nothing downstream produces inf − inf or NaN gradients.
    inf_row = infinite[..., None]
    uniform = -math.log(num)
    log_p = jnp.where(inf_row, uniform, log_p)
    log_q = jnp.where(inf_row, uniform, log_q)
    keep = log_p > -jnp.inf
    p = jnp.exp(log_p)
    gap = jnp.where(keep & ~inf_row, gap, 0.0)
    centred = gap - jnp.sum(p * gap, axis=-1, keepdims=True)

    # log Σ_{supp p} p e^{−c}: robust for any size, accurate in relative terms when ≳ 1.
    big = jax.nn.logsumexp(jnp.where(keep, log_p - centred, -jnp.inf), axis=-1)
    # The same as log1p of non-negative terms, used when it is < 1 (then no term overflows).
    use_series = big < 1.0
    x = jnp.where(use_series[..., None] & keep, -centred, 0.0)
    small = jnp.log1p(jnp.sum(_weighted_expm1_minus_x(log_p, x), axis=-1))
    on_support = jnp.where(use_series, small, big)

    # −log q(supp p): q's mass outside p's support, accurate both when that mass is tiny
    # (log1p) and when it dominates (logsumexp of the mass inside).
    outside = jnp.sum(jnp.where(keep, 0.0, jnp.exp(log_q)), axis=-1)
    few = outside < 0.5
    off_support = jnp.where(
        few,
        -jnp.log1p(-jnp.where(few, outside, 0.0)),
        -jax.nn.logsumexp(jnp.where(keep, log_q, -jnp.inf), axis=-1),
    )
    return jnp.where(infinite, jnp.inf, on_support + off_support)


@kernel
def bernoulli(logits_a, logits_b):
    """KL(Bernoulli(σ(logits_a)) ‖ Bernoulli(σ(logits_b))).

    KL = p_a (log σ(a) − log σ(b)) + (1 − p_a)(log σ(−a) − log σ(−b)), p_a = σ(a),
    with log σ(x) = −softplus(−x). It is evaluated as
    log(p_a e^{−(1−p_a)δ} + (1 − p_a) e^{p_a δ}), δ = a − b, through
    log1p of non-negative terms (see the module docstring): no cancellation as b → a,
    never negative, finite with finite gradients for |logits| up to the float range
    (e.g. ±50 in float32, where σ(−50) ≈ 2e-22 matters). Logits ±inf (p = 1 or 0) are
    allowed; the KL is +inf where a has mass on an outcome that b excludes.

    Args:
      logits_a, logits_b: ``[...]``, broadcasting together, not NaN.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(bernoulli(0.0, 0.0)), 6), round(float(bernoulli(2.0, -1.0)), 4)
      (0.0, 0.8287)
    """
    a, b = logits_a, logits_b
    # Finite logits whose difference overflows (opposite signs, one beyond finfo.max/2):
    # the gap of the general form would overflow too (inf − inf: NaN value and gradient).
    # There the KL is as large as the larger logit, nothing cancels, and the direct form
    # below is exact; each branch sees harmless inputs in the other's rows (double where),
    # so neither puts NaN into the other's gradient.
    far = jnp.isfinite(a) & jnp.isfinite(b) & ~jnp.isfinite(a - b)
    af, bf = jnp.where(far, a, 0.0), jnp.where(far, b, 0.0)
    a, b = jnp.where(far, 0.0, a), jnp.where(far, 0.0, b)
    log_p = jnp.stack([jax.nn.log_sigmoid(a), jax.nn.log_sigmoid(-a)], axis=-1)
    log_q = jnp.stack([jax.nn.log_sigmoid(b), jax.nn.log_sigmoid(-b)], axis=-1)
    # With finite logits, (a − b, 0) is the exact logit gap of the two-category form; an
    # infinite logit leaves only the difference of log-probabilities (finite there:
    # log σ(x) ≥ x).
    finite = jnp.isfinite(a - b)[..., None]
    gap = jnp.where(finite, jnp.stack([a - b, jnp.zeros_like(a)], axis=-1), log_p - log_q)
    return jnp.where(far, _bernoulli_far(af, bf), _kl_from_log_probs(log_p, log_q, gap))


def _bernoulli_far(a, b):
    """KL = σ(a)(softplus(−b) − softplus(−a)) + σ(−a)(softplus(b) − softplus(a)).

    For finite logits each difference is of two numbers in [0, finfo.max], so finite, and
    its weight is in [0, 1]. Autodiff forms σ'(a)·(each difference) separately, never
    their sum (a − b, which overflows here), so ∂/∂a = (a − b)σ'(a) comes out as 0 (σ'(a)
    underflows to exactly 0 wherever a − b overflows) and ∂/∂b = σ(b) − σ(a) = ±1.
    """
    sp = jax.nn.softplus
    return jax.nn.sigmoid(a) * (sp(-b) - sp(-a)) + jax.nn.sigmoid(-a) * (sp(b) - sp(a))


# ------------------------------------------------------------------------- categorical
# φ(x) = eˣ − 1 − x = x²·Σ_{j≥0} xʲ/(j+2)! is summed through j = n − 1 for |x| ≤ r:
# truncation error < 4.3e-8 relative in float32 (r = ½, n = 7), < 8e-17 in float64 (r = ¼,
# n = 11). Beyond r, e^{min(x,0)} − e^{−max(x,0)}(1 + x) errs by at most ~20 ulp.
_PHI_SERIES = {32: (0.5, 7), 64: (0.25, 11)}
# S is scaled by e^-σ once a term could exceed e^T; K·e^T stays far below finfo.max.
_SCALE_EXPONENT = {32: 64.0, 64: 600.0}
# Rows this short are summed column by column: XLA fuses the whole kernel into one loop over
# the rows (2–3× faster than the row sums below at K = 16–32), while YNNPACK's row
# reductions are slow for short rows (10× slower at K = 2). Beyond ~40 columns XLA no
# longer fuses the unrolled graph into one loop.
_UNROLL_K = 32
# Row chunking (see _chunks): chunks of at most 16 384 categories (64 KiB of float32 per
# array), at least 1024 so that the chunk partials stay a small fraction of the work.
_CHUNK_MAX = 16384
_CHUNK_MIN = 1024
# A power of two that maps any x² − r² > 0 (≥ ulp(r²)) to a value ≥ 1.
_SWITCH_GAIN = 2.0**100


def _own(*xs):
    """Copies of one row sum's inputs that no other row sum shares.

    XLA writes any [..., K] subexpression common to two fused loops (even the broadcast of
    a constant or of a row value) to memory and reads it back in each; with distinct inputs
    every loop recomputes its few operations in registers instead.
    """
    return jax.lax.optimization_barrier(xs)


def _wall(x):
    """x unchanged, through a select that XLA cannot fuse into a YNNPACK loop.

    Row-level arithmetic fused into a row sum's loop (before or after the reduction) slows
    that loop several-fold when rows are short and many.
    """
    return jnp.where(jnp.isnan(x), jnp.nan, x)


def _expand(row, chunks: int):
    """A ``[N, 1]`` row value for each of the N·C chunk rows (a scalar stays a scalar)."""
    return row if chunks == 1 or jnp.ndim(row) == 0 else jnp.repeat(row, chunks, axis=0)


def _row_reduce(body, op, chunks, a, b, *rows):
    """op (jnp.add or jnp.maximum) over a row of body(a, b, *rows), as ``[N, 1]``.

    a, b are ``[N·C, L]``: each of N rows of K = C·L categories as C consecutive chunks
    (see :func:`_chunks`); rows are ``[N, 1]`` row values or scalars. Every chunk is
    reduced as a row of its own, then the C partial results of each row.
    """
    num = a.shape[-1]
    rows = tuple(_expand(r, chunks) for r in rows)
    reduce = jnp.sum if op is jnp.add else jnp.max
    if num > _UNROLL_K:
        out = reduce(body(a, b, *rows), axis=-1, keepdims=True)
    else:
        out = body(a[..., :1], b[..., :1], *rows)
        for j in range(1, num):
            out = op(out, body(a[..., j : j + 1], b[..., j : j + 1], *rows))
    if chunks == 1:
        return out
    return reduce(out.reshape(-1, chunks), axis=-1, keepdims=True)


def _chunks(num: int) -> int:
    """How many chunks C a row of ``num`` categories is reduced in (C divides num).

    XLA:CPU's fused row reductions slow down ~14× once a row outgrows the cache: a
    [64, 151 936] float32 pair takes 14× as long as the same numbers as [512, 18 992]
    (measured on the 2-core benchmark machine). Rows longer than _CHUNK_MAX are therefore
    reduced as C chunks of L = num / C ≤ _CHUNK_MAX categories, the fewest that divide num
    into chunks of at least _CHUNK_MIN; a num with no such divisor (a large prime, say)
    stays one chunk.
    """
    if num <= _CHUNK_MAX:
        return 1
    for c in range(-(-num // _CHUNK_MAX), num // _CHUNK_MIN + 1):
        if num % c == 0:
            return c
    return 1


def _categorical_forward(a, b, chunks):
    """The KL and the row statistics its gradient needs (module docstring, Categorical).

    Args:
      a, b: logits ``[N·C, L]`` of one shape and of dtype float32 or float64: N rows of
        K = C·L categories, each as C consecutive chunks (:func:`_chunks`).
      chunks: C.

    Returns:
      ``(kl, (max_a, max_b, log_z, nu, infinite, kl_rows))``: kl ``[N]``; the rest
      ``[N, 1]``, with log_z = log Σ e^{a − max a} and nu = E_p[a − b] − (max a − max b)
      (0 where infinite).
    """
    dtype = a.dtype
    big = float(jnp.finfo(dtype).max)
    width = 64 if jnp.finfo(dtype).bits > 32 else 32
    radius, terms = _PHI_SERIES[width]
    coeffs = [1.0 / math.factorial(j + 2) for j in range(terms)]

    def const(v):
        return jnp.asarray(v, dtype)

    floor = const(-big)  # stands in for −inf (see the module docstring)

    (a1,) = _own(a)
    max_a = _row_reduce(lambda u, v: u, jnp.maximum, chunks, a1, a1)
    (b2,) = _own(b)
    max_b = _row_reduce(lambda u, v: v, jnp.maximum, chunks, b2, b2)
    # A row of b without a finite entry has KL = +inf (a row of a without one is invalid);
    # 0 keeps the arithmetic on such rows finite.
    max_a = jnp.where(max_a == -jnp.inf, 0.0, max_a)
    max_b = jnp.where(max_b == -jnp.inf, 0.0, max_b)

    z = _wall(_row_reduce(lambda u, v, m: jnp.exp(u - m), jnp.add, chunks, *_own(a, a, max_a)))

    # Gaps are summed relative to max a − max b, which is close to every gap when b ≈ a up
    # to a shift: the sum's rounding error then scales with the spread of the gaps rather
    # than with the shift.
    shift = _wall(max_a - max_b)

    def weighted_gap(u, v, m, ref, lo, half, zero):
        au, bv = jnp.maximum(u, lo), jnp.maximum(v, lo)
        gap = au - bv
        # gap ≥ big/2 only where a has mass and b has none (finite logits are < big/2^40).
        return jnp.exp(au - m) * (gap - ref) + jnp.maximum(gap - half, zero)

    w = _row_reduce(
        weighted_gap, jnp.add, chunks, *_own(a, b, max_a, shift, floor, const(big / 2), const(0))
    )
    infinite = w >= big / 4
    log_z = jnp.log(z)
    # ν = E_p[g] − (max a − max b); the largest log(p eˣ) − σ is ν − log Z − σ.
    nu = _wall(jnp.where(infinite, 0.0, w / z))
    sigma = _wall(jnp.maximum(nu - log_z - _SCALE_EXPONENT[width], 0.0))
    # log p − σ = (a − max a) − l_p and log(p eˣ) − σ = (b − max b) − l_q: the maxima are
    # kept apart from these small row constants, so that large logits lose no digits.
    l_p = _wall(log_z + sigma)
    l_q = _wall(l_p - nu)

    def phi_terms(u, v, ma, mb, ref, mean, lp, lq, lo, zero, one):
        au, bv = jnp.maximum(u, lo), jnp.maximum(v, lo)
        x = ((bv - au) + ref) + mean
        weight = jnp.exp(jnp.maximum((au - ma) - lp, (bv - mb) - lq))
        pos = jnp.maximum(x, zero)
        e_neg = jnp.exp(x - pos)  # e^{min(x, 0)}
        e_pos = jnp.exp(-pos)  # e^{−max(x, 0)} = p / weight
        direct = e_neg - e_pos * (x + 1.0)
        # t = 1 where |x| > r, else 0; xs = x where the series is used, else 0 (finite).
        t = jnp.minimum(jnp.maximum(x * x * _SWITCH_GAIN - radius**2 * _SWITCH_GAIN, zero), one)
        xs = x - t * x
        series = coeffs[-1]
        for c in reversed(coeffs[:-1]):
            series = series * xs + c
        return weight * (t * direct + (xs * xs) * series * e_pos)

    rows = (max_a, max_b, shift, nu, l_p, l_q, floor, const(0), const(1))
    s = _row_reduce(phi_terms, jnp.add, chunks, *_own(a, b, *rows))
    s = jnp.where(infinite, 0.0, s)
    kl = sigma + jnp.log1p(s + jnp.expm1(-sigma))
    kl = jnp.where(infinite, jnp.inf, kl)
    return kl[:, 0], (max_a, max_b, log_z, nu, infinite, kl)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _categorical_kl(a, b, chunks):
    return _categorical_forward(a, b, chunks)[0]


@_categorical_kl.defjvp
def _categorical_kl_jvp(chunks, primals, tangents):
    # ∂KL/∂a = p ⊙ (g − μ) and ∂KL/∂b = q − p in closed form from the forward pass's row
    # statistics: exact, cheap, and free of the 0·inf of differentiating through the
    # masking; rows with an infinite KL get gradient 0.
    a, b = primals
    da, db = tangents
    kl, stats = _categorical_forward(a, b, chunks)
    max_a, max_b, log_z, nu, infinite, kl_rows = (_expand(r, chunks) for r in stats)
    floor = -float(jnp.finfo(a.dtype).max)
    au, bv = jnp.maximum(a, floor), jnp.maximum(b, floor)
    keep = jnp.where(infinite, 0.0, 1.0).astype(a.dtype)
    # log q = (b − max b) − l_q with l_q = log Σ e^{b − max b} = log Z − ν + KL.
    l_q = log_z - nu + jnp.where(infinite, 0.0, kl_rows)
    p = jnp.exp((au - max_a) - log_z)
    q = jnp.exp((bv - max_b) - l_q)
    grad_a = (p * (((au - bv) - (max_a - max_b)) - nu)) * keep
    grad_b = (q - p) * keep
    tangent = jnp.sum(grad_a * da + grad_b * db, axis=-1)
    return kl, tangent if chunks == 1 else jnp.sum(tangent.reshape(-1, chunks), axis=-1)


def categorical(logits_a, logits_b):
    """KL(Categorical(softmax(logits_a)) ‖ Categorical(softmax(logits_b))).

    KL = Σ_k p_k (log p_k − log q_k), p = softmax(a), q = softmax(b), evaluated as log1p of a
    sum of non-negative terms (module docstring): exact 0 for equal rows, never negative,
    full relative precision for nearby rows (≲ 3e-6 in float32 whenever a − b is computed
    without rounding, e.g. b ≈ a), finite values and gradients for logits ±50 in float32 and
    for any KL up to the float range. Categories with p_k = 0 (logit −inf in a) contribute
    0; the KL is +inf where b has logit −inf on a category to which a gives mass, however
    small. Gradients are closed forms, ∂KL/∂a = p ⊙ (a − b − E_p[a − b]) and
    ∂KL/∂b = q − p (0 on rows with an infinite KL). float16 and bfloat16 are evaluated in
    float32.

    Args:
      logits_a, logits_b: ``[..., K]`` with the same K ≥ 1; batch dimensions broadcast.
        Entries < +inf and not NaN; entries ≤ finfo.min count as −inf. Every row of
        ``logits_a`` needs a finite entry. Any finite logit is allowed: when some exceed
        finfo.max / 2**40 (≈ 3e26 in float32) in magnitude, each row is first shifted by
        its maximum (the KL is shift-invariant); a gap of more than finfo.max / 2 between
        shifted logits, where a has mass, then gives +inf.

    Returns:
      ``[...]``, the broadcast batch shape.

    Example:
      >>> import jax.numpy as jnp
      >>> a = jnp.log(jnp.array([0.5, 0.5]))
      >>> b = jnp.log(jnp.array([0.25, 0.75]))
      >>> round(float(categorical(a, b)), 4)
      0.1438
    """
    a, b = as_float(logits_a, logits_b)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(
            "jaxkl.analytic.categorical: logits must have shape [..., K]; got "
            f"logits_a {a.shape}, logits_b {b.shape}"
        )
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            "jaxkl.analytic.categorical: number of categories differs: logits_a has "
            f"K={a.shape[-1]} (shape {a.shape}), logits_b has K={b.shape[-1]} (shape {b.shape})"
        )
    if a.shape[-1] < 1:
        raise ValueError("jaxkl.analytic.categorical: logits need at least one category (K ≥ 1)")
    a, b = broadcast_named("jaxkl.analytic.categorical", logits_a=a, logits_b=b)
    dtype = a.dtype
    work = working_dtype(dtype)
    batch, num = a.shape[:-1], a.shape[-1]
    chunks = _chunks(num)
    # Rows (and their chunks) on one axis: XLA:CPU runs a 2-D row reduction fastest.
    a, b = (x.astype(work).reshape(-1, num // chunks) for x in (a, b))
    kl = _categorical_any_range(a, b, num, chunks)
    return kl.reshape(batch).astype(dtype)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _categorical_any_range_kl(a, b, num: int, chunks: int):
    """The kernel's KL of rows ``[N·C, L]``, shifted first where some logit is too large."""

    # The value: both branches of the lax.cond return the [N] KL, not the logits. A branch
    # that returned its input arrays unchanged made XLA copy them (about 250 ms for two
    # [4096, 32 768] float32 arrays against 110 ms for the textbook KL's whole time:
    # medians of 7 calls, 2-core CPU, jaxlib 0.10.2, 2026-12-07), so the kernel is traced
    # in each branch instead.
    def ordinary(a, b):
        return _categorical_kl(a, b, chunks)

    def shifted(a, b):
        return _kernel_or_direct(*_within_kernel_range(a, b, num), chunks)

    return jax.lax.cond(_needs_shift(a, b), shifted, ordinary, a, b)


@_categorical_any_range_kl.defjvp
def _categorical_any_range_jvp(num, chunks, primals, tangents):
    # Derivatives through one kernel on logits chosen by the cond: differentiating the
    # two-branch form above would keep the residuals of both branches (each the size of
    # the logits), over the memory bound of tests/rl/test_full_vocab.py. Same value.
    def one_kernel(a, b):
        rows = a.size // num

        def unchanged(a, b):
            return a, b, jnp.zeros(rows, bool), jnp.zeros(rows, a.dtype)

        chosen = jax.lax.cond(
            _needs_shift(a, b), partial(_within_kernel_range, num=num), unchanged, a, b
        )
        return _kernel_or_direct(*chosen, chunks)

    return jax.jvp(one_kernel, primals, tangents)


def _kernel_or_direct(a, b, far, far_kl, chunks: int):
    """The kernel's KL of rows ``[N·C, L]``, the direct one ``far_kl`` on ``far`` rows."""
    return jnp.where(far, far_kl, _categorical_kl(a, b, chunks).reshape(far.shape))


def _needs_shift(a, b):
    """Whether some finite logit's magnitude reaches the kernel's limit (a scalar bool).

    The exact test takes the largest finite |logit|, a select inside a reduction, which
    takes XLA:CPU off its fast reduction loop (180 ms against 25 ms for 2²⁷ float32
    logits: medians of 7 calls, 2-core CPU, jaxlib 0.10.2, 2026-12-07). It is only run
    where the select-free bound max(max x, −min x) ≥ its exact value reaches the limit
    (a −inf logit makes it +inf).
    """
    limit = _kernel_limit(a.dtype)

    def bound(x):
        # max|x|, +inf where an entry is −inf, from the row maxima and minima: XLA:CPU reduces
        # these at the read speed. The former max|max(x, finfo.min)| over the whole array
        # reaches the limit exactly when this does, but took 6× as long (each jitted alone
        # on two [4096, 32 768] float32 arrays: 208 against 34 ms, medians of 11, 2-core
        # CPU, jaxlib 0.10.2).
        return jnp.max(jnp.maximum(jnp.max(x, axis=-1), -jnp.min(x, axis=-1)))

    def exact(a, b):
        def magnitude(x):
            return jnp.max(jnp.where(jnp.isfinite(x), jnp.abs(x), 0.0))

        return jnp.maximum(magnitude(a), magnitude(b)) >= limit

    maybe = jnp.maximum(bound(a), bound(b)) >= limit
    return jax.lax.cond(maybe, exact, lambda a, b: jnp.zeros((), bool), a, b)


# One program per shape, not one per operation.
_categorical_any_range = jax.jit(_categorical_any_range_kl, static_argnums=(2, 3))


def _kernel_limit(dtype) -> float:
    """finfo.max / 2**40: the largest |logit| the kernel takes (see _within_kernel_range)."""
    return float(jnp.finfo(dtype).max) * 2.0**-40


def _within_kernel_range(a, b, num: int):
    """Rows shifted by their maximum, for logits some of which exceed the kernel's range.

    The kernel needs finite logits of magnitude below finfo.max / 2**40 (its +inf flag
    relies on gaps of finite logits staying below finfo.max / 2); the Categorical
    distribution allows any finite logit. The KL does not change when a row is shifted,
    so when any |logit| passes that bound (:func:`_needs_shift`; ``lax.cond`` keeps the
    shift off the ordinary path) every row is shifted by its largest entry (without
    gradient: the KL's derivative in the shift is 0). Entries then lie in [−finfo.max, 0];
    a shift that overflows gives −inf, a probability that is 0 in this dtype anyway. A
    category where a has mass and b's shifted logit lies more than finfo.max / 2 below
    a's is then flagged +inf (the true KL exceeds p_k·finfo.max / 2 there).

    Shifted rows may still hold a finite gap a_k − b_k beyond that bound (b = (3e38,
    3.4e38) shifts to (−4e37, 0)), which the kernel cannot take (NaN). Such rows are
    "far": the KL is at least p_k times the gap wherever p_k > 0, nothing cancels, and
    :func:`_categorical_direct` computes it; the kernel gets zeros in their place.

    ``a, b``: ``[N·C, L]`` (rows as C chunks of ``num // C``; the shift is per row of
    ``num`` logits). Returns the shifted ``a, b`` for the kernel, and ``far`` and the
    direct KL ``[N]``.
    """
    limit = _kernel_limit(a.dtype)

    def by_row_max(x):
        rows = x.reshape(-1, num)
        top = jnp.max(rows, axis=-1, keepdims=True)
        top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
        return rows - top

    ra, rb = by_row_max(a), by_row_max(b)
    # Support from the logits before the shift, which may overflow a finite one to −inf.
    b_support = b.reshape(-1, num) > -jnp.inf
    mismatch = jnp.any(jnp.isfinite(a.reshape(-1, num)) & ~b_support, axis=-1)
    # A shifted logit below −limit is a probability that underflows to exactly 0: such
    # entries of a become −inf (masked) where b has support (else: mismatch, +inf),
    # and so do b's where a has no mass, which changes no term of the KL and leaves
    # the kernel only gaps it can take.
    ra = jnp.where((ra < -limit) & b_support, -jnp.inf, ra)
    rb = jnp.where((rb < -limit) & (ra == -jnp.inf), -jnp.inf, rb)
    gap = jnp.where(jnp.isfinite(ra) & jnp.isfinite(rb), jnp.abs(ra - rb), 0.0)
    # Far rows: a huge finite gap, or a finite logit of a where b's is −inf (+inf).
    far = jnp.any((gap >= limit) | (jnp.isfinite(ra) & (rb == -jnp.inf)), axis=-1)
    far = far | mismatch
    direct = _categorical_direct(*(jnp.where(far[:, None], x, 0.0) for x in (ra, rb)))
    direct = jnp.where(mismatch, jnp.inf, direct)
    ra, rb = (jnp.where(far[:, None], 0.0, x).reshape(a.shape) for x in (ra, rb))
    return ra, rb, far, direct


def _categorical_direct(a, b):
    """Σ_k p_k (log p_k − log q_k) over the last axis of logits ``[M, K]`` → ``[M]``.

    The textbook form, for rows whose KL is huge (a gap ≥ finfo.max / 2⁴⁰ where a has
    mass), where it loses nothing; a category with mass under a (a finite logit) and none
    under b gives +inf, one where only p_k's value underflows contributes 0 (no NaN
    gradient).
    """
    log_p, log_q = jax.nn.log_softmax(a), jax.nn.log_softmax(b)
    # Support is a finite logit; where q's is −inf too the term is +inf (no 0·inf), and
    # elsewhere log p − log q lies in [−max, max], so p_k that underflow give exactly 0.
    mass = log_p > -jnp.inf
    excluded = mass & (log_q == -jnp.inf)
    ok = mass & ~excluded
    lp, lq = jnp.where(ok, log_p, 0.0), jnp.where(ok, log_q, 0.0)
    terms = jnp.where(excluded, jnp.inf, jnp.where(ok, jnp.exp(lp) * (lp - lq), 0.0))
    return jnp.sum(terms, axis=-1)


@kernel
def poisson(rate_a, rate_b):
    """KL(Poisson(rate_a) ‖ Poisson(rate_b)).

    KL = λa log(λa/λb) − λa + λb = λb·ψ(t), ψ(t) = 1 + (t − 1)e^t, t = log(λa/λb)
    (:func:`jaxkl.distributions.poisson.poisson_deviance`). Near λa = λb the direct form
    cancels to O(t²); a series of ψ there keeps full relative precision. λa = 0 (a point
    mass at 0) is allowed and gives λb; λb must be > 0.

    Args:
      rate_a: λa ≥ 0, ``[...]``.
      rate_b: λb > 0, ``[...]``, broadcasting with ``rate_a``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(poisson(2.0, 1.0)), 4)
      0.3863
    """
    return poisson_deviance(rate_a, rate_b)


@kernel
def bernoulli_poisson(logits_a, rate_b):
    """KL(Bernoulli(σ(logits_a)) ‖ Poisson(rate_b)).

    Over k ∈ {0, 1}: KL = p₀(log p₀ + λ) + p₁(log p₁ − log λ + λ), p₁ = σ(a), p₀ = σ(−a).
    It is evaluated as the sum of two non-negative terms,
    KL = p₁·φ(log(λ/p₁)) + p₀·φ(−log p₀), φ(x) = e^x − 1 − x,
    so it stays accurate near its minimum (λ = p₁, KL = p₁ + p₀ log p₀ ≈ p₁²/2) and is
    finite for any finite λ > 0 and any logit including ±inf.

    Args:
      logits_a: ``[...]``, not NaN.
      rate_b: λ > 0, ``[...]``, broadcasting with ``logits_a``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(bernoulli_poisson(0.0, 0.5)), 4)
      0.1534
    """
    a, rate = logits_a, rate_b
    log_p1 = jax.nn.log_sigmoid(a)
    log_p0 = jax.nn.log_sigmoid(-a)
    # p₁(λ/p₁ − 1 − log(λ/p₁)) = λ − p₁ − p₁ log(λ/p₁); p₀(1/p₀ − 1 + log p₀) = p₁ + p₀ log p₀.
    # Each term tends to λ resp. 1 (not 0) as its weight → 0, so the exact limits are
    # filled in for logits ±inf; for finite logits the weights may underflow to 0 but the
    # terms are still formed correctly from the logs.
    log_rate = jnp.log(rate)
    # w·e^x is exactly λ resp. 1 here, so it is passed in rather than rounded through logs.
    one = _weighted_expm1_minus_x(log_p1, log_rate - log_p1, log_rate)
    zero = _weighted_expm1_minus_x(log_p0, -log_p0, jnp.zeros_like(log_p0))
    one = jnp.where(log_p1 > -jnp.inf, one, rate)
    zero = jnp.where(log_p0 > -jnp.inf, zero, 1.0)
    return one + zero
