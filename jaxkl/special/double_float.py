"""Double-float arithmetic: a number carried as an unevaluated sum hi + lo of two floats.

A closed form whose result is exp of a sum of large terms (Gumbel: KL ≈ e^w with w =
Δμ/β_b + log Γ(1 + r), each term up to ~1e7 for scale ratios up to 1e6) needs w to an
absolute error of about one unit roundoff, far below the rounding of its terms. These
helpers carry such sums with about twice the working precision (≈ 2⁻⁴⁸ relative in
float32, ≈ 2⁻¹⁰⁶ in float64) using only the working dtype, so they run unchanged on every
backend.

Conventions: a double-float is a tuple ``(hi, lo)`` of arrays of one dtype with
|lo| ≤ ½ ulp(hi). Products are split with ``lax.reduce_precision`` (a rounding op, not
Veltkamp's c·a − (c·a − a), which a fused multiply–add would change) into halves whose
partial products are exact, so XLA contracting them into FMAs cannot alter them. Nothing here is
differentiable in a useful way: callers evaluate these under ``lax.stop_gradient`` and
use the result as a correction to a plainly differentiated value. Inputs must be finite
and the intermediate results in range; callers discard non-finite corrections.

References:
  T. J. Dekker. A floating-point technique for extending the available precision.
  Numerische Mathematik 18 (1971).
  Y. Hida, X. S. Li, D. H. Bailey. Algorithms for quad-double precision floating point
  arithmetic. ARITH-15 (2001).
"""

from __future__ import annotations

import decimal

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxkl.special.series import horner
from jaxkl.special.stirling import stirling_correction

__all__ = [
    "add",
    "constant",
    "from_float",
    "lgamma_1p",
    "log",
    "mul",
    "neg",
    "quotient",
]


def from_float(x):
    """(x, 0)."""
    return x, jnp.zeros_like(x)


def neg(a):
    return -a[0], -a[1]


def _two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    """As :func:`_two_sum` where |a| ≥ |b| (or a = 0)."""
    s = a + b
    return s, b - (s - a)


def _split(a):
    """a = hi + lo, each with at most ⌊p/2⌋ significant bits (p = 24 in float32, 53 in
    float64: rounding to nearest leaves a remainder that fits), so hi·hi, hi·lo and lo·lo
    are exact."""
    info = jnp.finfo(a.dtype)
    half = (info.nmant + 1) // 2  # significant bits of hi, the implicit one included
    hi = lax.reduce_precision(a, exponent_bits=info.nexp, mantissa_bits=half - 1)
    return hi, a - hi


def _two_prod(a, b):
    """(p, e) with p + e = a·b to ≈ 2⁻⁴⁸ relative in float32 (inputs in normal range).

    Built from the four partial products of the halves, each exact, summed error-free;
    a·b itself is never formed. Dekker's e = ((ah·bh − p) + …) with p = fl(a·b) is not
    safe under XLA: where it contracts ah·bh − a·b into a fused multiply–add, the exact
    a·b replaces the rounded p and the error term comes out wrong by up to an ulp of p.
    With exact partial products, contraction cannot change any result here.
    """
    ah, al = _split(a)
    bh, bl = _split(b)
    cross, cross_err = _two_sum(ah * bl, al * bh)
    p, e = _two_sum(ah * bh, cross)
    return _fast_two_sum(p, e + (cross_err + al * bl))


def add(a, b):
    """a + b for double-floats, accurate also under cancellation (Hida–Li–Bailey)."""
    s, e = _two_sum(a[0], b[0])
    t, f = _two_sum(a[1], b[1])
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


def mul(a, b):
    """a · b for double-floats."""
    p, e = _two_prod(a[0], b[0])
    return _fast_two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def quotient(x, y):
    """x / y as a double-float, for x a double-float and y a float."""
    q = x[0] / y
    p, e = _two_prod(q, y)
    # x_hi − p is exact: p is within an ulp of x_hi.
    return _fast_two_sum(q, ((x[0] - p) - e + x[1]) / y)


def constant(value: decimal.Decimal, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A high-precision constant as a double-float (hi, lo) in ``dtype``."""
    hi = np.asarray(float(value), dtype)
    lo = np.asarray(float(value - decimal.Decimal(float(hi))), dtype)
    return hi, lo


_CONTEXT = decimal.Context(prec=60)
# Table size per float width: log(c_j) for c_j = 1 + j/N, so that log(1 + u) is only
# needed for u < 1/N, where its terms from u³ on fall below the working precision fast.
_LOG_TABLE_SIZE = {32: 128, 64: 256}
# Terms of log(1 + u) = u − u²/2 + u³·Σ_{k≥0} (−u)^k/(k + 3) kept in working precision:
# the first omitted one is < 2⁻⁴⁸ (float32, u < 2⁻⁷) and < 2⁻¹¹⁰ (float64, u < 2⁻⁸).
_LOG1P_TAIL_TERMS = {32: 4, 64: 11}
_LOG1P_TAIL = tuple(1.0 / (k + 3) for k in range(max(_LOG1P_TAIL_TERMS.values())))


def _width(dtype) -> int:
    return 64 if jnp.finfo(dtype).bits > 32 else 32


def _log_table(dtype):
    n = _LOG_TABLE_SIZE[_width(dtype)]
    pairs = [constant(_CONTEXT.ln(1 + decimal.Decimal(j) / n), dtype) for j in range(n)]
    return jnp.asarray([p[0] for p in pairs]), jnp.asarray([p[1] for p in pairs])


def _exponent_and_significand(x):
    """(k, m) with x = 2^k·m, m ∈ [1, 2), for positive normal x; k in x's dtype.

    Read from the bits: ``jnp.frexp`` also handles subnormals, zeros and infinities, and
    made :func:`log` four times slower to compile.
    """
    info = jnp.finfo(x.dtype)
    int_type = jnp.int32 if info.bits == 32 else jnp.int64
    bits = lax.bitcast_convert_type(x, int_type)
    biased = bits >> info.nmant
    m = lax.bitcast_convert_type(
        (bits & ((1 << info.nmant) - 1)) | ((info.maxexp - 1) << info.nmant), x.dtype
    )
    return (biased - (info.maxexp - 1)).astype(x.dtype), m


def _power_of_two(k):
    """2^k for an integer-valued float k whose 2^k is a normal number of k's dtype."""
    info = jnp.finfo(k.dtype)
    int_type = jnp.int32 if info.bits == 32 else jnp.int64
    return lax.bitcast_convert_type((k.astype(int_type) + (info.maxexp - 1)) << info.nmant, k.dtype)


def log(x):
    """log x for a positive, finite double-float x (x_hi a normal number).

    x = 2^k·m with m ∈ [1, 2); m = c_j·(1 + u) with c_j = 1 + j/N from a table of
    log c_j (N = 128 in float32, 256 in float64) and 0 ≤ u < 1/N; then
    log x = k·log 2 + log c_j + u − u²/2 + u³·(1/3 − u/4 + …), the last group in working
    precision (it is below 2⁻²² of the result's leading term).
    """
    hi, lo = x
    dtype = hi.dtype
    n = _LOG_TABLE_SIZE[_width(dtype)]
    k, m = _exponent_and_significand(hi)
    j = jnp.floor((m - 1.0) * n)
    c = 1.0 + j / n  # exact: n is a power of two
    # m − c is exact (c ≤ m < 2c); lo·2^-k is the low part of x on m's scale (2^-k is
    # normal wherever the result is needed: x ≥ 2^127 in float32 means log Γ overflowed).
    u = quotient(_fast_two_sum(m - c, lo * _power_of_two(-k)), c)
    u2 = mul(u, u)
    tail = horner(_LOG1P_TAIL[: _LOG1P_TAIL_TERMS[_width(dtype)]], -u[0])
    log1p_u = add(u, (-0.5 * u2[0], -0.5 * u2[1] + u2[0] * u[0] * tail))
    table_hi, table_lo = _log_table(dtype)
    idx = j.astype(jnp.int32)
    ln2_hi, ln2_lo = constant(_CONTEXT.ln(2), dtype)
    p, e = _two_prod(k, ln2_hi)
    k_ln2 = _fast_two_sum(p, e + k * ln2_lo)
    return add(add(k_ln2, (table_hi[idx], table_lo[idx])), log1p_u)


# Stirling: log Γ(z) = (z − ½) log z − z + ½ log 2π + δ(z), δ by its first nine terms,
# from z ≥ 3 in float32 (first omitted term 1.2e-9) and z ≥ 10 in float64 (1.4e-19);
# smaller z are first shifted up by log Γ(z) = log Γ(z + n) − log Π(z + i).
_STIRLING_TERMS = 9
_STIRLING_FROM = {32: 3.0, 64: 10.0}
_HALF_LOG_2PI = decimal.Decimal("0.918938533204672741780329736405617639861397473637783412817152")


def lgamma_1p(r):
    """(log Γ(1 + r), log Γ(r)) for a double-float r > 0 (finite, 1 + r + 9 in range).

    Absolute error ≈ 2⁻⁴⁸·(|log Γ| + r·|log r|) in float32, ≈ 2e-9 for r ≲ 2 where the
    Stirling series, the one part in working precision, is largest (≤ 1/36 at z = 3).
    Both share the Stirling sum at z = 1 + r + n; the three logarithms it needs
    (of z + n, of the shift product P = Π(1 + r + i) and of r·P) are taken in one call.
    """
    dtype = r[0].dtype
    start = _STIRLING_FROM[_width(dtype)]
    z = add(from_float(jnp.ones_like(r[0])), r)

    def step(i, carry):
        shift, product = carry
        use = z[0] + i < start
        factor = add(z, from_float(jnp.broadcast_to(i.astype(dtype), z[0].shape)))
        factor = (jnp.where(use, factor[0], 1.0), jnp.where(use, factor[1], 0.0))
        return shift + use.astype(dtype), mul(product, factor)

    # A loop, not unrolled: XLA:CPU fusing the unrolled chain of double-float products
    # took minutes to compile at ten steps (float64), the time growing ≈ 5× per step.
    one = jnp.ones_like(z[0])
    shift, product = lax.fori_loop(0, int(start), step, (jnp.zeros_like(one), from_float(one)))
    zs = add(z, from_float(shift))
    stacked = [zs, product, mul(product, r)]
    logs = log((jnp.stack([x[0] for x in stacked]), jnp.stack([x[1] for x in stacked])))
    log_zs, log_p, log_rp = ((logs[0][i], logs[1][i]) for i in range(3))
    series = stirling_correction(zs[0], _STIRLING_TERMS)
    half_log_2pi = constant(_HALF_LOG_2PI, dtype)
    main = mul(add(zs, from_float(jnp.full_like(series, -0.5))), log_zs)
    main = add(main, neg(zs))
    main = add(main, (half_log_2pi[0], half_log_2pi[1] + series))
    return add(main, neg(log_p)), add(main, neg(log_rp))
