"""Closed forms for location–scale families: Laplace, Gumbel, Uniform."""

from __future__ import annotations

import decimal
import math

import jax.numpy as jnp
from jax import lax
from jax.scipy.special import gammaln

from jaxkl.analytic._kernel import kernel
from jaxkl.special import (
    ZETA_MINUS_1,
    div,
    double_float,
    expm1_minus_x,
    horner,
    log_ratio,
    series_radius,
)

__all__ = ["gumbel", "laplace", "uniform"]

EULER_GAMMA = 0.57721566490153286061

# log Γ(1 + x) + γx = Σ_{k≥2} (−1)^k ζ(k) x^k / k.
_LGAMMA1P_COEFFS = tuple((-1) ** k * (1.0 + z) / k for k, z in enumerate(ZETA_MINUS_1, start=2))


def _lgamma_plus_euler(r, eps, t):
    """q(r) = log Γ(r) + γ(r − 1): convex, ≥ 0, and O((r − 1)²) at r = 1.

    Takes r, ε = r − 1 and t = log r, each formed by the caller without going through the
    others (an r rebuilt as exp(t) carries t's absolute error as a relative one, which
    log Γ then multiplies by r·ψ(r)). Near r = 1 the two terms cancel to second order, so
    a power series in ε is used there; below r = 1 log Γ(r) is taken as
    log Γ(1 + r) − log r, which stays finite and exact where r itself underflows.
    """
    small = jnp.abs(eps) < series_radius(eps)
    eps_small = jnp.where(small, eps, 0.0)
    series = horner(_LGAMMA1P_COEFFS, eps_small) * eps_small * eps_small
    below = r < 1.0
    log_gamma_r = jnp.where(below, gammaln(1.0 + r) - t, gammaln(jnp.where(below, 1.0, r)))
    return jnp.where(small, series, log_gamma_r + EULER_GAMMA * eps)


@kernel
def laplace(loc_a, scale_a, loc_b, scale_b):
    """KL(Laplace(loc_a, scale_a) ‖ Laplace(loc_b, scale_b)).

    With d = |μ_a − μ_b|, t = log(b_a/b_b) and u = d/b_a,

        KL = log(b_b/b_a) + d/b_b + (b_a/b_b)·exp(−d/b_a) − 1
           = −t + d/b_b + expm1(t − u).

    Near a = b all three terms are O(1) and cancel to KL ≈ (t² + u²)/2, so for |t| < ½ and
    u < ½ the equivalent form (expm1(t − u) − (t − u)) + u·expm1(t) is used, whose two
    terms are both O(t² + u²) (the first through a series); float32 then keeps its full
    relative precision however close a is to b (tested down to KL ~ 1e-11).

    Args:
      loc_a, scale_a, loc_b, scale_b: arrays ``[...]`` that broadcast together; scales > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(laplace(0.0, 1.0, 1.0, 1.0)), 6)  # 1 + e^{-1} - 1
      0.367879

    References:
      M. Gil, F. Alajaji, T. Linder. Rényi divergence measures for commonly used
      univariate continuous distributions. Information Sciences 249 (2013).
    """
    t = log_ratio(scale_a, scale_b)
    d = jnp.abs(loc_a - loc_b)
    u = div(d, scale_a)
    near = (jnp.abs(t) < 0.5) & (u < 0.5)
    # Double where: the near form evaluated far away could overflow and poison gradients.
    tn, un = jnp.where(near, t, 0.0), jnp.where(near, u, 0.0)
    near_kl = expm1_minus_x(tn - un) + un * jnp.expm1(tn)
    far_kl = div(d, scale_b) - t + jnp.expm1(t - u)
    return jnp.where(near, near_kl, far_kl)


@kernel
def gumbel(loc_a, scale_a, loc_b, scale_b):
    """KL(Gumbel(loc_a, scale_a) ‖ Gumbel(loc_b, scale_b)).

    With r = β_a/β_b and x = μ_a + β_a·G (G standard Gumbel, E[e^{−cG}] = Γ(1 + c)),

        KL = log(β_b/β_a) + γ(r − 1) + (μ_a − μ_b)/β_b
             + exp((μ_b − μ_a)/β_b + log Γ(1 + r)) − 1.

    It is evaluated as the sum of two non-negative parts,

        KL = [expm1(w) − w] + [log Γ(r) + γ(r − 1)],  w = (μ_b − μ_a)/β_b + log Γ(1 + r),

    so nothing cancels between them; each part is computed by a series where its own
    terms would cancel (w → 0, r → 1). γ is Euler's constant. Both parts are exactly 0 at
    a = b. KL ≈ e^w takes w's absolute error as its relative error, while w's terms reach
    ~1e7 (r = 1e6); so w and the second part are refined in double-float arithmetic
    (``jaxkl.special.double_float``, no gradient through it), and the result keeps the
    working precision whatever the scale ratio and offset.

    Args:
      loc_a, scale_a, loc_b, scale_b: arrays ``[...]`` that broadcast together; scales > 0.

    Returns:
      ``[...]``, the broadcast shape. Overflows to +inf once w ≳ 88 in float32 (μ_b − μ_a
      ≫ β_b, or β_a ≳ 35 β_b): the true value then exceeds 1e38. Within 5·2⁻²⁴ relative
      in float32 and 5·2⁻⁵³ in float64 for scale ratios 1e-6 … 1e6, scales 1e-30 … 1e30
      and any offset with a finite result, against 50-digit arithmetic
      (``tests/analytic/test_edge_precision.py``; float32 was 1.6e-5 relative off at
      r ≈ 64 and had no correct digit at r ≈ 6e5 and w ≈ 72 before the refinement).
      The gradient is that of the plainly rounded formula (relative error ≈ 2⁻²⁴ times
      the size of w's terms).

    Example:
      >>> round(float(gumbel(0.0, 1.0, 1.0, 1.0)), 6)  # e - 2
      0.718282

    References:
      M. Gil, F. Alajaji, T. Linder. Rényi divergence measures for commonly used
      univariate continuous distributions. Information Sciences 249 (2013).
    """
    t = log_ratio(scale_a, scale_b)
    # r and r − 1 straight from the scales: one rounding each (scale_a − scale_b is exact
    # near r = 1). Forming r as exp(t) made float32 KL 1e-4 relative off at r ≈ 64, where
    # KL ≈ e^w is as sensitive to w's absolute error as log Γ(1 + r) ≈ 200 is large.
    r = div(scale_a, scale_b)
    eps = div(scale_a - scale_b, scale_b)
    q = _lgamma_plus_euler(r, eps, t)
    # log Γ(1 + r) = log Γ(r) + log r = q − γε + t. Near r = 1 it is O(ε) and this form
    # keeps its relative precision; elsewhere gammaln is direct and accurate.
    small = jnp.abs(eps) < series_radius(eps)
    lgamma_1p_r = jnp.where(small, q - EULER_GAMMA * eps + t, gammaln(1.0 + r))
    w = div(loc_b - loc_a, scale_b) + lgamma_1p_r
    # KL ≈ e^w takes w's absolute error as its relative error, and w sums terms as large
    # as 1e7 (r = 1e6): rounded once each, they left float32 KL 1.6e-5 relative off at
    # r ≈ 64 and without a correct digit beyond r ≈ 1e5. Both parts are re-evaluated in
    # double-float without gradient (below); w's value is replaced by the double-float
    # one while its derivative is kept, and the low parts enter to first order,
    # d(e^w − w)/dw = e^w − 1. Beyond a cap just below where e^w overflows the result is
    # ≥ e^cap ≈ finfo.max anyway and the correction is dropped (e^w·w_lo would be ±inf,
    # and inf − inf NaN); the cap loses < 1 % of the correction in its last 0.01.
    w, w_lo, q_lo = _gumbel_exact(loc_a, scale_a, loc_b, scale_b, w, q, lgamma_1p_r, small)
    cap = math.log(jnp.finfo(w.dtype).max) - 0.01
    w_lo = jnp.where(w < cap, w_lo, 0.0)
    return expm1_minus_x(w) + q + (jnp.expm1(jnp.minimum(w, cap)) * w_lo + q_lo)


_EULER_GAMMA_DECIMAL = decimal.Decimal("0.577215664901532860606512090082402431042159335939924")


def _gumbel_exact(loc_a, scale_a, loc_b, scale_b, w, q, lgamma_1p_r, small):
    """The caller's w and q refined in double-float: (w', w_lo, q_lo).

    w = (μ_b − μ_a)/β_b + log Γ(1 + r) and, outside the series radius (``small``),
    q = log Γ(1 + r) − log r + γ(r − 1), each to ≈ 2⁻⁴⁸ relative per term in float32
    (jax's float32 gammaln alone is up to 3e-7 off in absolute terms). Within the radius
    the caller's log Γ(1 + r) and q are small and already relatively precise, and are
    kept. w' has w's value replaced by the double-float leading part and w's derivative;
    w_lo and q_lo are the remainders, without gradient. Where anything over- or
    underflowed to a non-finite value (w or q is then ±inf, or nothing needs refining)
    w' = w and both remainders are 0.
    """
    sg = lax.stop_gradient
    loc_a, scale_a, loc_b, scale_b, w0, q0, lgamma_1p_r = map(
        sg, (loc_a, scale_a, loc_b, scale_b, w, q, lgamma_1p_r)
    )
    df = double_float
    shift = df.quotient(df.add(df.from_float(loc_b), df.from_float(-loc_a)), scale_b)
    r = df.quotient(df.from_float(scale_a), scale_b)
    eps = df.quotient(df.from_float(scale_a - scale_b), scale_b)  # exact where r ≈ 1
    lg, lg_r = df.lgamma_1p(r)
    gamma_eps = df.mul(df.constant(_EULER_GAMMA_DECIMAL, w0.dtype), eps)
    q_hi, q_lo = df.add(lg_r, gamma_eps)
    lg = (jnp.where(small, lgamma_1p_r, lg[0]), jnp.where(small, 0.0, lg[1]))
    w_hi, w_lo = df.add(shift, lg)
    ok = jnp.isfinite(w_hi) & jnp.isfinite(w_lo)
    # log(r) in double-float needs r·(1 + …) and its partial products in the normal range;
    # below √tiny (1e-19 in float32) q ≈ −log r − γ is the caller's, exact enough.
    ok_q = jnp.isfinite(q_hi) & jnp.isfinite(q_lo) & ~small
    ok_q = ok_q & (r[0] >= math.sqrt(jnp.finfo(w0.dtype).tiny))
    # w + (w_hi − w) is w_hi exactly where w_hi − w is exact (Sterbenz: w is within a
    # factor 2 of w_hi); any remainder moves to the low part.
    w_new = w + sg(jnp.where(ok, w_hi - w0, 0.0))
    w_lo = jnp.where(ok, (w_hi - sg(w_new)) + w_lo, 0.0)
    q_lo = jnp.where(ok_q, (q_hi - q0) + q_lo, 0.0)
    return w_new, sg(w_lo), sg(q_lo)


@kernel
def uniform(low_a, high_a, low_b, high_b):
    """KL(U(low_a, high_a) ‖ U(low_b, high_b)).

    KL = log((h_b − l_b)/(h_a − l_a)) when [l_a, h_a] ⊆ [l_b, h_b], and +inf otherwise
    (a puts mass where b has none). It is evaluated as log1p(((h_b − h_a) + (l_a − l_b)) /
    (h_a − l_a)), from differences of nearby endpoints, so nearly identical intervals keep
    full relative precision (a few float32 ulp; tested against 50-digit arithmetic); once
    the widths differ by more than a factor 2, as the log of their ratio, which stays
    finite for any finite endpoints.

    Args:
      low_a, high_a, low_b, high_b: arrays ``[...]`` that broadcast together; high > low.

    Returns:
      ``[...]``, the broadcast shape; +inf where a's interval is not inside b's.

    Example:
      >>> round(float(uniform(0.0, 1.0, 0.0, 2.0)), 6), float(uniform(0.0, 2.0, 0.0, 1.0))
      (0.693147, inf)
    """
    inside = (low_b <= low_a) & (high_a <= high_b)
    # KL = log1p(x), x = (w_b − w_a)/w_a with w_b − w_a = (h_b − h_a) + (l_a − l_b): two
    # non-negative differences of nearby endpoints (exact when they are within a factor 2),
    # so nearly identical intervals keep full relative precision. Differencing the rounded
    # widths instead lost up to 2.5e-2 relative in float32.
    width_a = high_a - low_a
    # Endpoints near ∓finfo.max: halved (exactly), so that the widths do not overflow.
    h = jnp.where(jnp.isfinite(width_a), 1.0, 0.5)
    excess = jnp.where(inside, (h * high_b - h * high_a) + (h * low_a - h * low_b), 0.0)
    x = div(excess, h * high_a - h * low_a)
    near = x <= 1.0
    # Farther apart (KL > log 2) the log of the width ratio is as accurate, and unlike
    # x it cannot overflow (x = inf for a width 1e-30 inside one of 1e10, KL = 92.1).
    # Widths that overflow (endpoints near ∓finfo.max) are formed from halved endpoints.
    far = _log_width(high_b, low_b) - _log_width(high_a, low_a)
    both_finite = jnp.isfinite(high_b - low_b) & jnp.isfinite(width_a)
    far = jnp.where(both_finite, log_ratio(high_b - low_b, width_a), far)
    kl = jnp.where(near, jnp.log1p(jnp.where(near, x, 0.0)), far)
    return jnp.where(inside, kl, jnp.inf)


def _log_width(high, low):
    """log(high − low) for high > low, also where high − low overflows."""
    width = high - low
    finite = jnp.isfinite(width)
    halved = jnp.log(0.5 * high - 0.5 * low) + math.log(2.0)
    return jnp.where(finite, jnp.log(jnp.where(finite, width, 1.0)), halved)
