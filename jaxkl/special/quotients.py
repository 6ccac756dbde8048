"""Quotients and their logarithms, with derivatives that never square the denominator."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["div", "log_ratio", "log_ratio_given_difference"]


@jax.custom_jvp
def div(x, y):
    """x / y, whose derivative never forms y² (x, y of one dtype; shapes broadcast).

    Autodiff of ``x / y`` differentiates through y⁻², which leaves float32 for |y| ≳ 2e19
    (it rounds to 0, so gradients of KL in a scale lose their sign) and for |y| ≲ 5e-20
    (it overflows, and 0·inf is NaN where x = 0). Here the tangent is (dx − (x/y)·dy)/y:
    the quotient is formed once and each step stays in range whenever the result is. The
    tangent multiplies by 1/y rather than dividing by y: under ``jit`` XLA rewrites
    (a / y) / y as a / (y·y), which would bring y² back into reverse mode (q / y).

    Example:
      >>> import jax
      >>> g = jax.grad(div, argnums=1)(1e-30, 1e-30)  # −x/y², though y² underflows float32
      >>> f"{float(g):.3g}"
      '-1e+30'
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

    Example:
      >>> import jax.numpy as jnp
      >>> float(log_ratio(jnp.float32(1.0 + 2**-23), jnp.float32(1.0)))  # log1p(2⁻²³)
      1.1920928244535389e-07
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


@jax.custom_jvp
def log_ratio_given_difference(a, b, d):
    """log(a / b) for a, b > 0 given d = a − b, formed more accurately by the caller.

    For a sum, Σ(aₖ − bₖ) is accurate where Σaₖ − Σbₖ cancels; near a = b the result is
    log1p(d / b) with d's own precision. The derivative is ȧ/a − ḃ/b: d's tangent is not
    used, since d = a − b is the caller's promise.
    """
    q = d / b
    small = jnp.abs(q) < 0.5
    return jnp.where(small, jnp.log1p(jnp.where(small, q, 0.0)), log_ratio(a, b))


@log_ratio_given_difference.defjvp
def _log_ratio_given_difference_jvp(primals, tangents):
    a, b, d = primals
    da, db, _ = tangents
    return log_ratio_given_difference(a, b, d), da / a - db / b
