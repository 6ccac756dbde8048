"""log Γ pieces that keep their precision for large arguments, by Stirling's series.

Their textbook formulas subtract terms of size x·log x to get results of size log x (or
smaller). From :data:`~jaxkl.special.stirling.STIRLING_MIN` on, each is evaluated through
the Stirling correction δ instead, where that subtraction has been done analytically.
Below it, the direct forms are accurate. Each branch sees a harmless argument where the
other is selected (double ``where``), so no inf or NaN reaches gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln, polygamma

from jaxkl.special.stirling import (
    HALF_LOG_2PI,
    STIRLING_MIN,
    scaled_stirling_correction_hess,
    stirling_correction,
    stirling_correction_grad,
)

__all__ = [
    "log_beta",
    "log_gamma_remainder",
    "log_gamma_remainder_grad",
    "scaled_log_gamma_remainder_hess",
    "standard_gamma_entropy",
]


def log_gamma_remainder(x):
    """ω(x) = log Γ(x) − x log x + x; by Stirling, −½ log x + ½ log 2π + δ(x), for x ≥ 10.

    The Stirling form has no x·log x terms to cancel, so ω (of size log x) keeps its
    relative precision for every x up to the float range.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(log_gamma_remainder(jnp.float32(1.0))), 6)  # log Γ(1) − 0 + 1
      1.0
    """
    big = x >= STIRLING_MIN
    xb = jnp.where(big, x, STIRLING_MIN)
    xs = jnp.where(big, 1.0, x)
    return jnp.where(
        big,
        HALF_LOG_2PI - 0.5 * jnp.log(xb) + stirling_correction(xb),
        gammaln(xs) - xs * jnp.log(xs) + xs,
    )


def log_gamma_remainder_grad(x):
    """ω'(x) = ψ(x) − log x < 0; by Stirling, −1/(2x) + δ'(x), for x ≥ 10."""
    big = x >= STIRLING_MIN
    xb = jnp.where(big, x, STIRLING_MIN)
    xs = jnp.where(big, 1.0, x)
    return jnp.where(big, stirling_correction_grad(xb) - 0.5 / xb, digamma(xs) - jnp.log(xs))


def scaled_log_gamma_remainder_hess(x):
    """x²·ω″(x) = x²ψ′(x) − x, in (0, 1]: bounded, and so is its derivative.

    ω″(x) alone grows like 1/x² as x → 0 and its derivative like 2/x³, which overflows
    float32 below x ≈ 1e-13 (an integral of d²·ω″ then gave 0·inf = NaN gradients at
    equal tiny arguments). Below 1 this is 1 − x + x²ψ′(1 + x) (from
    ψ′(x) = ψ′(1 + x) + 1/x², no cancellation); from 10 on, ½ + x²δ″(x) (Stirling).
    """
    big = x >= STIRLING_MIN
    small = x < 1.0
    xb = jnp.where(big, x, STIRLING_MIN)
    xm = jnp.where(big, 2.0, x)
    # One ψ′ evaluation for both lower branches (ψ′ is the costly part to compile).
    psi1 = polygamma(1, jnp.where(small, 1.0 + xm, xm))
    lower = jnp.where(small, 1.0 - xm, -xm) + jnp.square(xm) * psi1
    return jnp.where(big, 0.5 + scaled_stirling_correction_hess(xb), lower)


# Compiled as whole programs so that eager calls do not dispatch dozens of small ops.
@jax.jit
def standard_gamma_entropy(x):
    """e(x) = log Γ(x) − (x − 1) ψ(x) + x = H(Gamma(x, 1)), accurate for large x as well.

    The entropies of the gamma family are sums of this term: H(Gamma(α, β)) = e(α) − log β
    and H(Dirichlet(a)) = Σₖ e(aₖ) − e(Σa) − (K − 1) ψ(Σa). By Stirling,
    e(x) = ½ log x + ½ log 2π + ½ − 1/(2x) + δ(x) − (x − 1) δ'(x), which is what is
    evaluated for x ≥ 10, where the direct form loses ~log10(x) digits.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(standard_gamma_entropy(jnp.float32(1.0))), 5)  # Exponential(1): 1 nat
      1.0
    """
    big = x >= STIRLING_MIN
    xb = jnp.where(big, x, STIRLING_MIN)  # double where: keep δ's x^−13 finite
    stirling = (
        0.5 * jnp.log(xb)
        + (HALF_LOG_2PI + 0.5)
        - 0.5 / xb
        + stirling_correction(xb)
        - (xb - 1.0) * stirling_correction_grad(xb)
    )
    xs = jnp.where(big, 1.0, x)
    direct = gammaln(xs) - (xs - 1.0) * digamma(xs) + xs
    return jnp.where(big, stirling, direct)


@jax.jit
def log_beta(conc):
    """log B(a) = Σₖ log Γ(aₖ) − log Γ(Σₖ aₖ) over the last axis of ``conc`` [..., K].

    With a_m the largest entry and r = Σ_{k≠m} aₖ, the difference log Γ(a_m) − log Γ(a_m + r)
    cancels catastrophically when a_m is large. For a_m ≥ 10 it is evaluated by Stirling
    as −r log a_m − (a_m + r − ½) log1p(r / a_m) + r + δ(a_m) − δ(a_m + r), which keeps
    full precision, e.g. for B(0.1, 10⁶) in float32 (the idea of ``algdiv`` in
    Didonato & Morris, Algorithm 708).

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(log_beta(jnp.array([2.0, 3.0]))), 6)  # log(1/12)
      -2.484907
    """
    k = conc.shape[-1]
    is_max = jax.nn.one_hot(jnp.argmax(conc, axis=-1), k, dtype=bool)
    top = jnp.max(conc, axis=-1)
    rest = jnp.sum(jnp.where(is_max, 0.0, conc), axis=-1)
    lgamma_rest = jnp.sum(jnp.where(is_max, 0.0, gammaln(conc)), axis=-1)
    big = top >= STIRLING_MIN
    tb = jnp.where(big, top, STIRLING_MIN)
    total = tb + rest
    stirling = (
        -rest * jnp.log(tb)
        - (total - 0.5) * jnp.log1p(rest / tb)
        + rest
        + stirling_correction(tb)
        - stirling_correction(total)
    )
    ts = jnp.where(big, 1.0, top)
    direct = gammaln(ts) - gammaln(ts + rest)
    return lgamma_rest + jnp.where(big, stirling, direct)
