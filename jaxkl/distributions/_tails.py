"""Tail-accurate pieces of the univariate CDFs."""

from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = ["log1mexp"]

_LOG_HALF = math.log(0.5)


def log1mexp(a):
    """log(1 − eᵃ) for a ≤ 0, accurate at both ends (Mächler 2012); −inf at a = 0.

    log(−expm1(a)) near 0, where 1 − eᵃ is tiny and expm1 keeps it exact; log1p(−eᵃ)
    for a < log ½, where eᵃ is small and log1p keeps it exact.

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
