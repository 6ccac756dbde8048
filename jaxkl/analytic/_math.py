"""Numerically careful pieces shared by several closed forms."""

from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = [
    "ZETA_MINUS_1",
    "expm1_minus_x",
    "half_expm1_2t_minus_t",
    "horner_from_x2",
    "log_ratio",
    "series_radius",
]


def log_ratio(a, b):
    """log(a / b) for positive a, b, accurate when a ≈ b as well as when far apart.

    Near 1 the ratio is formed as log1p((a − b) / b), where a − b is exact (Sterbenz), so
    log(a/b) keeps full relative precision; elsewhere log(a) − log(b) avoids the ratio
    overflowing or underflowing.
    """
    a, b = jnp.broadcast_arrays(a, b)
    d = (a - b) / b
    near = jnp.abs(d) < 0.5
    return jnp.where(near, jnp.log1p(jnp.where(near, d, 0.0)), jnp.log(a) - jnp.log(b))


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


def half_expm1_2t_minus_t(t):
    """0.5·expm1(2t) − t, the scale part of the Gaussian KL with t = log(σ_a/σ_b).

    The two terms cancel to O(t²) as t → 0; :func:`expm1_minus_x` keeps full relative
    precision there (series for |2t| < 1) and loses at most a factor ~3 beyond.
    """
    return 0.5 * expm1_minus_x(2.0 * jnp.asarray(t))
