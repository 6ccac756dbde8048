"""Numerically careful pieces shared by several closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "ZETA_MINUS_1",
    "div",
    "expm1_minus_x",
    "gaussian_scale_kl",
    "gaussian_scale_kl_from_log_ratio",
    "gaussian_scale_kl_fusible",
    "horner_from_x2",
    "log_ratio",
    "series_radius",
]


@jax.custom_jvp
def div(x, y):
    """x / y, whose derivative never forms y² (x, y of one dtype; shapes broadcast).

    Autodiff of ``x / y`` differentiates through y⁻², which leaves float32 for |y| ≳ 2e19
    (it rounds to 0, so gradients of KL in a scale lose their sign) and for |y| ≲ 5e-20
    (it overflows, and 0·inf is NaN where x = 0). Here the tangent is (dx − (x/y)·dy)/y:
    the quotient is formed once and each step stays in range whenever the result is. The
    tangent multiplies by 1/y rather than dividing by y: under ``jit`` XLA rewrites
    (a / y) / y as a / (y·y), which would bring y² back into reverse mode (q / y).
    """
    x, y = jnp.broadcast_arrays(x, y)
    return x / y


@div.defjvp
def _div_jvp(primals, tangents):
    x, y = jnp.broadcast_arrays(*primals)
    dx, dy = jnp.broadcast_arrays(*tangents)
    q = x / y
    return q, (dx - q * dy) * (1.0 / y)


@jax.custom_jvp
def log_ratio(a, b):
    """log(a / b) for positive a, b, accurate when a ≈ b as well as when far apart.

    Near 1 the ratio is formed as log1p((a − b) / b), where a − b is exact (Sterbenz), so
    log(a/b) keeps full relative precision. Elsewhere it is the log of the rounded
    quotient (absolute error ≈ one unit roundoff, where log(a) − log(b) would carry
    2⁻²⁴·|log a| in float32: 1e-6 at a = 1e8), or log(a) − log(b) where the quotient
    over- or underflows. The derivative is ȧ/a − ḃ/b, exact, with no squares to overflow.
    """
    a, b = jnp.broadcast_arrays(a, b)
    d = div(a - b, b)
    near = jnp.abs(d) < 0.5
    q = a / b
    representable = (q >= jnp.finfo(q.dtype).tiny) & (q <= jnp.finfo(q.dtype).max)
    far = jnp.where(
        representable, jnp.log(jnp.where(representable, q, 1.0)), jnp.log(a) - jnp.log(b)
    )
    return jnp.where(near, jnp.log1p(jnp.where(near, d, 0.0)), far)


@log_ratio.defjvp
def _log_ratio_jvp(primals, tangents):
    a, b = jnp.broadcast_arrays(*primals)
    da, db = jnp.broadcast_arrays(*tangents)
    return log_ratio(a, b), da / a - db / b


# ζ(k) − 1 for k = 2, …, 30 (scipy.special.zetac): Taylor coefficients of log Γ(1 + x)
# and ψ(1 + x) at x = 0 are built from them.
ZETA_MINUS_1 = (
    0.6449340668482264, 0.2020569031595943, 0.08232323371113819, 0.03692775514336993,
    0.01734306198444914, 0.008349277381922827, 0.00407735619794434, 0.0020083928260822143,
    0.0009945751278180853, 0.0004941886041194645, 0.0002460865533080483,
    0.00012271334757848915, 6.124813505870483e-05, 3.058823630702049e-05,
    1.528225940865187e-05, 7.637197637899763e-06, 3.81729326499984e-06,
    1.908212716553939e-06, 9.539620338727962e-07, 4.769329867878064e-07,
    2.38450502727733e-07, 1.1921992596531106e-07, 5.960818905125948e-08,
    2.980350351465228e-08, 1.4901554828365043e-08, 7.45071178983543e-09,
    3.725334024788457e-09, 1.862659723513049e-09, 9.313274324196682e-10,
)  # fmt: skip


def series_radius(x) -> float:
    """|x| below which the ζ power series replace the direct special-function forms.

    Truncated after x^30 the series err by ≈ 1e-10 relative at |x| = ½ (fine for float32)
    and < 1e-18 at |x| = ¼ (fine for float64). Beyond the radius the direct
    forms lose a factor ≲ 7 to cancellation, on top of jax's gammaln/digamma absolute
    error (~1e-6 in float32, which is why float32 uses the wider series, ~3e-15 in float64).
    """
    return 0.5 if jnp.finfo(x.dtype).bits <= 32 else 0.25


def horner_from_x2(coeffs, x):
    """Σ_k coeffs[k] · x^{k+2}: a power series starting at x²."""
    acc = jnp.zeros_like(x)
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc * x * x


# expm1(s) − s = Σ_{k≥2} s^k / k!; through s^20 the truncation error is < 1e-19 relative
# for |s| < 1, and for |s| ≥ 1 the direct difference loses at most a factor ~3.
_EXPM1_MINUS_X_COEFFS = tuple(1.0 / math.factorial(k) for k in range(2, 21))


def expm1_minus_x(s):
    """expm1(s) − s ≥ 0, accurate to float precision for every s (series for |s| < 1)."""
    small = jnp.abs(s) < 1.0
    series = horner_from_x2(_EXPM1_MINUS_X_COEFFS, jnp.where(small, s, 0.0))
    return jnp.where(small, series, jnp.expm1(s) - s)


# Constants of gaussian_scale_kl per float width: (c, series terms, k) where the series
# weight is 1 / (1 + (s/c)^(2^k)). Chosen by scanning ratios 1e-6 … 1e6 (and 1 ± 1e-7)
# against 50-digit arithmetic: max relative error 4.2e-7 in float32, 1.5e-15 in float64.
_SCALE_KL_BLEND = {32: (0.15, 4, 3), 64: (0.1, 10, 4)}


def gaussian_scale_kl(scale_a, scale_b):
    """½(r² − 1) − log r for r = scale_a / scale_b > 0: the scale part of the Gaussian KL.

    With d = a − b, t = d/b = r − 1, s = d/(a + b) and log r = 2·atanh(s) it equals

        ½t² + t·s − G,   G = 2(atanh(s) − s) = log r − 2s = 2Σ_{k≥1} s^{2k+1}/(2k+1),

    where ½t² and t·s are formed without cancellation for every r (d is exact when a ≈ b),
    and only G needs care: log r − 2s loses digits as s → 0, its series converges slowly
    as |s| → 1. The two are blended, G = (series + q·(log r − 2s)) / (1 + q) with
    q = (s/c)^(2^k): below c the weight is 1 − O((s/c)^(2^k)) on the series (exactly the
    series once q underflows, so r = 1 gives exactly 0), above c it falls as (c/s)^(2^k).
    Nothing here is a compare or a select: on XLA:CPU a select splits the fused loop and
    costs as much as ten arithmetic ops, and this term is evaluated once per coordinate of
    every diagonal Gaussian KL (it made ``mvn_diag`` 2.5× faster than ½·expm1(2t) − t with
    a branch for small t). Relative error ≤ 4e-7 in float32 and ≤ 2e-15 in float64 for
    ratios 1e-6 … 1e6.

    Args:
      scale_a, scale_b: positive arrays ``[...]`` of one float dtype, broadcasting together.

    Returns:
      ``[...]``, ≥ 0 up to rounding; 0 exactly where scale_a == scale_b.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(gaussian_scale_kl(jnp.float32(2.0), jnp.float32(1.0))), 4)  # 1.5 − ln 2
      0.8069
    """
    a, b = jnp.broadcast_arrays(scale_a, scale_b)
    return _gaussian_scale_kl(a, b)


def gaussian_scale_kl_from_log_ratio(t):
    """½(r² − 1) − log r = ½·(e^{2t} − 1 − 2t) from t = log r itself.

    The scale part of the Gaussian KL when the scales come as logs: t = log σ_a − log σ_b
    is formed by one subtraction (exact when the logs are within a factor 2 of each
    other), where r = e^{log σ_a}/e^{log σ_b} would round to within an ulp of 1 for
    |t| ≲ 1e-7 in float32 and lose every digit. :func:`expm1_minus_x` keeps the relative
    precision of e^{2t} − 1 − 2t for every t; the derivative is expm1(2t).

    Args:
      t: log-ratio of the scales, ``[...]``.

    Returns:
      ``[...]``, ≥ 0; exactly 0 at t = 0.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(gaussian_scale_kl_from_log_ratio(jnp.log(2.0))), 4)  # 1.5 − ln 2
      0.8069
    """
    return 0.5 * expm1_minus_x(2.0 * t)


def _scale_kl_blend(a, b, t, s):
    """The body of :func:`gaussian_scale_kl` given t = (a − b)/b and s = (a − b)/(a + b)."""
    c, terms, k = _SCALE_KL_BLEND[64 if jnp.finfo(a.dtype).bits > 32 else 32]
    s2 = s * s
    series = 0.0
    for j in reversed(range(terms)):
        series = series * s2 + 2.0 / (2 * j + 3)
    series = series * s2 * s
    q = s2 * (1.0 / (c * c))
    for _ in range(k - 1):
        q = q * q
    g = (series + q * (jnp.log(a / b) - 2.0 * s)) / (1.0 + q)
    return t * (0.5 * t + s) - g


@jax.custom_jvp
def _gaussian_scale_kl(a, b):
    d = a - b
    return _scale_kl_blend(a, b, d / b, d / (a + b))


@jax.custom_jvp
def gaussian_scale_kl_fusible(a, b):
    """:func:`gaussian_scale_kl` for ``a``, ``b`` of one shape, with t = (a − b)·(1/b).

    The same blend, but t is formed by multiplying with the reciprocal instead of dividing:
    XLA:CPU does not fuse a division with several users into a loop that also holds other
    work (the unrolled MVNTriL kernel, where it split one fused loop into 17 and cost 4×),
    while a reciprocal is fused. The extra rounding of t adds about an ulp: 5.8e-7 largest
    relative error in float32 against 40-digit arithmetic over ratios 1e-6 … 1e6 (1 800
    points, against 5.1e-7 for :func:`gaussian_scale_kl`; the dense scan of
    tests/analytic/test_gaussian_float64.py checks both).
    The derivative is the closed form of :func:`gaussian_scale_kl`.
    """
    d = a - b
    return _scale_kl_blend(a, b, d * (1.0 / b), d / (a + b))


def _scale_kl_tangent(primals, tangents):
    # f = ½(r² − 1) − log r, r = a/b, t = (a − b)/b: ∂f/∂a = (r² − 1)/a = t(t + 2)/a and
    # ∂f/∂b = −t(t + 2)/b. t(t + 2) = r² − 1 has no cancellation as a → b (d = a − b is
    # exact there) and is exactly 0 at a = b; each partial is one division, never through
    # a², b² or a·b (differentiating the blend instead divides by b twice, which XLA
    # rewrites as a division by b², 0 in float32 for b ≳ 2e19 and inf for b ≲ 5e-20; for
    # the same reason the partials multiply by 1/a and 1/b: see :func:`div`).
    a, b = primals
    da, db = tangents
    t = (a - b) / b
    w = t * (t + 2.0)
    return w * (1.0 / a) * da - w * (1.0 / b) * db


@_gaussian_scale_kl.defjvp
def _gaussian_scale_kl_jvp(primals, tangents):
    return _gaussian_scale_kl(*primals), _scale_kl_tangent(primals, tangents)


@gaussian_scale_kl_fusible.defjvp
def _gaussian_scale_kl_fusible_jvp(primals, tangents):
    return gaussian_scale_kl_fusible(*primals), _scale_kl_tangent(primals, tangents)
