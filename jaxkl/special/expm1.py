"""Functions of eˣ near 1: eˣ − 1 − x and log|1 − eˣ|, accurate where the direct forms cancel."""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxkl.special.series import horner

__all__ = ["expm1_minus_x", "log1mexp", "log_abs_expm1"]

# expm1(s) − s = Σ_{k≥2} s^k / k!; through s^20 the truncation error is < 1e-19 relative
# for |s| < 1, and for |s| ≥ 1 the direct difference loses at most a factor ~3.
_EXPM1_MINUS_X_COEFFS = tuple(1.0 / math.factorial(k) for k in range(2, 21))
_LOG_HALF = math.log(0.5)


def expm1_minus_x(s):
    """expm1(s) − s ≥ 0, accurate to float precision for every s (series for |s| < 1).

    Example:
      >>> import jax.numpy as jnp
      >>> s = jnp.float32(1e-4)
      >>> round(float(expm1_minus_x(s)) * 1e8, 6), round(float(jnp.expm1(s) - s) * 1e8, 6)
      (0.500017, 0.500586)
    """
    small = jnp.abs(s) < 1.0
    x = jnp.where(small, s, 0.0)
    series = horner(_EXPM1_MINUS_X_COEFFS, x) * x * x
    return jnp.where(small, series, jnp.expm1(s) - s)


def log1mexp(a):
    """log(1 − eᵃ) for a ≤ 0, accurate at both ends (Mächler 2012); −inf at a = 0.

    log(−expm1(a)) near 0, where 1 − eᵃ is tiny and expm1 keeps it exact; log1p(−eᵃ)
    for a < log ½, where eᵃ is small and log1p keeps it exact. Each branch sees a harmless
    argument where it is not selected, so gradients carry no NaN from the other one.

    Example:
      >>> import jax.numpy as jnp
      >>> float(log1mexp(jnp.float32(-1e-10)))  # log(1e-10): 1 − e^a would round to 0
      -23.025850296020508
    """
    a = jnp.asarray(a)
    near = a > _LOG_HALF
    return jnp.where(
        near,
        jnp.log(-jnp.expm1(jnp.where(near, a, -1.0))),
        jnp.log1p(-jnp.exp(jnp.where(near, _LOG_HALF, a))),
    )


def log_abs_expm1(u):
    """log|eᵘ − 1| without overflow for large u; −inf at u = 0.

    Example:
      >>> import jax.numpy as jnp
      >>> float(log_abs_expm1(jnp.float32(100.0)))  # 100 + log(1 − e⁻¹⁰⁰); e¹⁰⁰ overflows
      100.0
    """
    # |eᵘ − 1| = e^max(u, 0) · (1 − e^−|u|) for either sign of u: one log1mexp, not one per
    # sign (each is four transcendental calls that XLA compiles inline).
    return jnp.maximum(u, 0.0) + log1mexp(-jnp.abs(u))
