"""Stirling's series: the correction δ(x) = log Γ(x) − (x − ½) log x + x − ½ log 2π.

Functions of log Γ subtract terms of size x·log x to get results of size log x; written
with δ, which is O(1/x), that subtraction happens analytically instead of in floating
point.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxkl.special.series import horner

__all__ = [
    "HALF_LOG_2PI",
    "STIRLING_COEFFS",
    "STIRLING_MIN",
    "scaled_stirling_correction_hess",
    "stirling_correction",
    "stirling_correction_grad",
    "stirling_correction_hess",
]

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# B_2k / (2k (2k − 1)) for k = 1..9: the coefficients of x^−(2k−1) in δ(x).
STIRLING_COEFFS = (
    1.0 / 12.0,
    -1.0 / 360.0,
    1.0 / 1260.0,
    -1.0 / 1680.0,
    1.0 / 1188.0,
    -691.0 / 360360.0,
    1.0 / 156.0,
    -3617.0 / 122400.0,
    43867.0 / 244188.0,
)
# The series is asymptotic: its terms shrink only while 2k ≲ 2πx. From x = 10 on, seven
# terms leave an error below 1e-16 (the first omitted one, 3617/(122400·x¹⁵)).
STIRLING_MIN = 10.0
_TERMS = 7


def stirling_correction(x, terms: int = _TERMS):
    """δ(x) from its first ``terms`` coefficients (x^−1 … x^−(2·terms − 1)).

    Seven terms are exact to < 1e-16 for x ≥ :data:`STIRLING_MIN`; nine to 1.2e-9 (about
    4e-8 relative, enough for float32) for x ≥ 3. The error is below the first omitted
    term, B₂ₖ/(2k(2k − 1)·x^(2k−1)) for k = terms + 1.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(stirling_correction(jnp.float32(10.0))), 7)  # ≈ 1/120 − 1/360000
      0.0083306
    """
    inv = 1.0 / x
    inv2 = jnp.square(inv)
    return horner(STIRLING_COEFFS[:terms], inv2) * inv


def stirling_correction_grad(x):
    """δ'(x) = ψ(x) − log x + 1/(2x), for x ≥ :data:`STIRLING_MIN` only."""
    inv2 = jnp.square(1.0 / x)
    return horner(_GRAD_COEFFS, inv2) * inv2


def stirling_correction_hess(x):
    """δ''(x) = ψ'(x) − 1/x − 1/(2x²), for x ≥ :data:`STIRLING_MIN` only."""
    inv = 1.0 / x
    inv2 = jnp.square(inv)
    return horner(_HESS_COEFFS, inv2) * inv2 * inv


def scaled_stirling_correction_hess(x):
    """x²·δ''(x), for x ≥ :data:`STIRLING_MIN` only: finite for every finite x.

    Formed as H(1/x²)/x, never through x² (which overflows float32 from x ≈ 1.8e19) or
    δ''(x) itself (which underflows to 0 there: the product was inf·0 = NaN).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.float32(1e20)  # x² overflows float32; x²·δ''(x) ≈ 1/(6x)
      >>> float(scaled_stirling_correction_hess(x) * x)
      0.1666666716337204
    """
    inv = 1.0 / x
    return horner(_HESS_COEFFS, jnp.square(inv)) * inv


# Term by term: d/dx x^−(2k−1) = −(2k − 1)·x^−2k, d²/dx² x^−(2k−1) = (2k − 1)(2k)·x^−(2k+1).
_GRAD_COEFFS = tuple(-((2 * k - 1) * c) for k, c in enumerate(STIRLING_COEFFS[:_TERMS], start=1))
_HESS_COEFFS = tuple(
    (2 * k - 1) * (2 * k) * c for k, c in enumerate(STIRLING_COEFFS[:_TERMS], start=1)
)
