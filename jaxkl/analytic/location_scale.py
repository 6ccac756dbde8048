"""Closed forms for location–scale families: Laplace, Gumbel, Uniform."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import gammaln

from jaxkl._shapes import as_float, broadcast_named
from jaxkl.analytic._math import log_ratio
from jaxkl.analytic.registry import register_kl
from jaxkl.distributions.gumbel import Gumbel
from jaxkl.distributions.laplace import Laplace
from jaxkl.distributions.uniform import Uniform

__all__ = ["gumbel", "laplace", "uniform"]

EULER_GAMMA = 0.57721566490153286061

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
# Below this |x| the power series in x are used: truncated after x^30 their error is
# < 1e-10 relative. Beyond it the direct special-function forms are used, which there
# lose at most a factor ~5 to cancellation (float32 gammaln/digamma in jax are accurate
# to ~1e-6 absolute, so a wider series keeps small KLs accurate).
SERIES_RADIUS = 0.5


def horner_from_x2(coeffs, x):
    """Σ_k coeffs[k] · x^{k+2}: a power series starting at x²."""
    acc = jnp.zeros_like(x)
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc * x * x


# log Γ(1 + x) + γx = Σ_{k≥2} (−1)^k ζ(k) x^k / k.
_LGAMMA1P_COEFFS = tuple((-1) ** k * (1.0 + z) / k for k, z in enumerate(ZETA_MINUS_1, start=2))


# expm1(s) − s = Σ_{k≥2} s^k / k!; through s^13 the truncation error is < 1e-10 relative
# for |s| < 1, and for |s| ≥ 1 the direct difference loses at most a factor ~3.
_EXPM1_MINUS_X_COEFFS = tuple(1.0 / math.factorial(k) for k in range(2, 14))


def expm1_minus_x(s):
    """expm1(s) − s ≥ 0, accurate to float precision for every s (series for |s| < 1)."""
    small = jnp.abs(s) < 1.0
    series = horner_from_x2(_EXPM1_MINUS_X_COEFFS, jnp.where(small, s, 0.0))
    return jnp.where(small, series, jnp.expm1(s) - s)


def _lgamma_plus_euler(t):
    """ψ(r) = log Γ(r) + γ(r − 1) for r = e^t: convex, ≥ 0, and O((r − 1)²) at r = 1.

    Near r = 1 the two terms cancel to second order, so a power series in ε = r − 1 is
    used there; elsewhere the direct form is accurate.
    """
    eps = jnp.expm1(t)
    small = jnp.abs(eps) < SERIES_RADIUS
    series = horner_from_x2(_LGAMMA1P_COEFFS, jnp.where(small, eps, 0.0))
    direct = gammaln(jnp.exp(t)) + EULER_GAMMA * eps
    return jnp.where(small, series, direct)


def laplace(loc_a, scale_a, loc_b, scale_b):
    """KL(Laplace(loc_a, scale_a) ‖ Laplace(loc_b, scale_b)).

    With d = |μ_a − μ_b|, t = log(b_a/b_b) and u = d/b_a,

        KL = log(b_b/b_a) + d/b_b + (b_a/b_b)·exp(−d/b_a) − 1
           = −t + d/b_b + expm1(t − u).

    Near a = b all three terms are O(1) and cancel to KL ≈ (t² + u²)/2, so for |t| < ½ and
    u < ½ the equivalent form (expm1(t − u) − (t − u)) + u·expm1(t) is used, whose two
    terms are both O(t² + u²) (the first through a series); float32 then keeps its
    relative precision down to KL ~ 1e-30.

    Args:
      loc_a, scale_a, loc_b, scale_b: arrays ``[...]`` that broadcast together; scales > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(laplace(0.0, 1.0, 1.0, 1.0)), 6)  # 1 + e^{-1} - 1
      0.367879
    """
    loc_a, scale_a, loc_b, scale_b = as_float(loc_a, scale_a, loc_b, scale_b)
    loc_a, scale_a, loc_b, scale_b = broadcast_named(
        "jaxkl.analytic.laplace", loc_a=loc_a, scale_a=scale_a, loc_b=loc_b, scale_b=scale_b
    )
    t = log_ratio(scale_a, scale_b)
    d = jnp.abs(loc_a - loc_b)
    u = d / scale_a
    near = (jnp.abs(t) < 0.5) & (u < 0.5)
    # Double where: the near form evaluated far away could overflow and poison gradients.
    tn, un = jnp.where(near, t, 0.0), jnp.where(near, u, 0.0)
    near_kl = expm1_minus_x(tn - un) + un * jnp.expm1(tn)
    far_kl = d / scale_b - t + jnp.expm1(t - u)
    return jnp.where(near, near_kl, far_kl)


def gumbel(loc_a, scale_a, loc_b, scale_b):
    """KL(Gumbel(loc_a, scale_a) ‖ Gumbel(loc_b, scale_b)).

    With r = β_a/β_b and x = μ_a + β_a·G (G standard Gumbel, E[e^{−cG}] = Γ(1 + c)),

        KL = log(β_b/β_a) + γ(r − 1) + (μ_a − μ_b)/β_b
             + exp((μ_b − μ_a)/β_b + log Γ(1 + r)) − 1.

    It is evaluated as the sum of two non-negative parts,

        KL = [expm1(w) − w] + [log Γ(r) + γ(r − 1)],  w = (μ_b − μ_a)/β_b + log Γ(1 + r),

    so nothing cancels between them; each part is computed by a series where its own
    terms would cancel (w → 0, r → 1). γ is Euler's constant.

    Args:
      loc_a, scale_a, loc_b, scale_b: arrays ``[...]`` that broadcast together; scales > 0.

    Returns:
      ``[...]``, the broadcast shape. Overflows to +inf when (μ_b − μ_a)/β_b is large
      (≳ 88 in float32): the true value is then astronomically large.

    Example:
      >>> round(float(gumbel(0.0, 1.0, 1.0, 1.0)), 6)  # e - 2
      0.718282
    """
    loc_a, scale_a, loc_b, scale_b = as_float(loc_a, scale_a, loc_b, scale_b)
    loc_a, scale_a, loc_b, scale_b = broadcast_named(
        "jaxkl.analytic.gumbel", loc_a=loc_a, scale_a=scale_a, loc_b=loc_b, scale_b=scale_b
    )
    t = log_ratio(scale_a, scale_b)
    eps = jnp.expm1(t)
    psi = _lgamma_plus_euler(t)
    # log Γ(1 + r) = log Γ(r) + log r. Near r = 1 it is small, and this form keeps its
    # relative precision; elsewhere gammaln is direct and exact enough.
    small = jnp.abs(eps) < SERIES_RADIUS
    lgamma_1p_r = jnp.where(small, psi - EULER_GAMMA * eps + t, gammaln(1.0 + jnp.exp(t)))
    w = (loc_b - loc_a) / scale_b + lgamma_1p_r
    return expm1_minus_x(w) + psi


def uniform(low_a, high_a, low_b, high_b):
    """KL(U(low_a, high_a) ‖ U(low_b, high_b)).

    KL = log((h_b − l_b)/(h_a − l_a)) when [l_a, h_a] ⊆ [l_b, h_b], and +inf otherwise
    (a puts mass where b has none).

    Args:
      low_a, high_a, low_b, high_b: arrays ``[...]`` that broadcast together; high > low.

    Returns:
      ``[...]``, the broadcast shape; +inf where a's interval is not inside b's.

    Example:
      >>> round(float(uniform(0.0, 1.0, 0.0, 2.0)), 6), float(uniform(0.0, 2.0, 0.0, 1.0))
      (0.693147, inf)
    """
    low_a, high_a, low_b, high_b = as_float(low_a, high_a, low_b, high_b)
    low_a, high_a, low_b, high_b = broadcast_named(
        "jaxkl.analytic.uniform", low_a=low_a, high_a=high_a, low_b=low_b, high_b=high_b
    )
    inside = (low_b <= low_a) & (high_a <= high_b)
    return jnp.where(inside, log_ratio(high_b - low_b, high_a - low_a), jnp.inf)


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(a: Laplace, b: Laplace):
    return laplace(a.loc, a.scale, b.loc, b.scale)


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(a: Gumbel, b: Gumbel):
    return gumbel(a.loc, a.scale, b.loc, b.scale)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(a: Uniform, b: Uniform):
    return uniform(a.low, a.high, b.low, b.high)
