"""Closed forms between different families, and the pairs whose KL is +inf by support.

Every KL(a ‖ Normal) here uses one identity: log N(x; μ, σ²) is quadratic in x, so the
cross-entropy E_a[−log N] depends on a only through its mean m_a and variance s_a², and

    KL(a ‖ N(μ, σ²)) = J(a) + KL(N(m_a, s_a²) ‖ N(μ, σ²)),
    J(a) = ½ log(2πe s_a²) − H(a) ≥ 0,

where J(a), a's negentropy, is a constant for Laplace, Uniform and Exponential and a
function of the shape alone for Gamma. Both parts are non-negative, so nothing cancels,
and the Gaussian part reuses the stable :func:`jaxkl.analytic.normal`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, erf, gammaln

from jaxkl._shapes import common_float_dtype
from jaxkl.analytic._kernel import kernel
from jaxkl.analytic.gaussian import normal
from jaxkl.distributions.beta import Beta
from jaxkl.distributions.exponential import Exponential
from jaxkl.distributions.gamma import Gamma
from jaxkl.distributions.gumbel import Gumbel
from jaxkl.distributions.laplace import Laplace
from jaxkl.distributions.lognormal import LogNormal
from jaxkl.distributions.normal import Normal
from jaxkl.distributions.uniform import Uniform
from jaxkl.special import (
    ZETA_MINUS_1,
    div,
    expm1_minus_x,
    horner,
    log_gamma_remainder,
    log_gamma_remainder_grad,
    log_ratio,
    series_radius,
)

__all__ = [
    "beta_uniform",
    "exponential_normal",
    "gamma_normal",
    "laplace_normal",
    "normal_laplace",
    "uniform_normal",
]

_LOG_PI = math.log(math.pi)
_LOG_2PI = math.log(2.0 * math.pi)
# Negentropies J = ½ log(2πe s²) − H of the families whose J is a constant.
_NEGENTROPY_LAPLACE = 0.5 * _LOG_PI - 0.5
_NEGENTROPY_UNIFORM = 0.5 * math.log(math.pi / 6.0) + 0.5
_NEGENTROPY_EXPONENTIAL = 0.5 * _LOG_2PI - 0.5
# min over scale of KL(Normal ‖ Laplace), reached at δ = 0, b = σ √(2/π): log 2 + ½ − log π.
_NORMAL_LAPLACE_FLOOR = math.log(2.0) + 0.5 - _LOG_PI
# KL(Normal ‖ Laplace) − |μ_a − μ_b|/b + log(σ_a/b) once the normal's mass is all on one
# side of μ_b: log 2 − ½ − ½ log 2π.
_NORMAL_LAPLACE_FAR = math.log(2.0) - 0.5 - 0.5 * _LOG_2PI
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_LOG_SQRT_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)


# ----------------------------------------------------------------------------- X ‖ Normal
@kernel
def laplace_normal(loc_a, scale_a, loc_b, scale_b):
    """KL(Laplace(loc_a, scale_a) ‖ N(loc_b, scale_b²)).

    KL = log(σ_b/b_a) + ½ log(π/2) − 1 + b_a²/σ_b² + (μ_a − μ_b)²/(2σ_b²), evaluated as
    J + KL(N(μ_a, 2b_a²) ‖ N(μ_b, σ_b²)) with the Laplace negentropy J = ½ log π − ½ (see
    the module docstring); hence KL ≥ J ≈ 0.0724.

    Args:
      loc_a, scale_a: the Laplace location and scale b_a > 0, ``[...]``.
      loc_b, scale_b: the normal mean and standard deviation σ_b > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(laplace_normal(0.0, 2.0 ** -0.5, 0.0, 1.0)), 6)  # = J
      0.072365
    """
    return _NEGENTROPY_LAPLACE + normal(loc_a, math.sqrt(2.0) * scale_a, loc_b, scale_b)


@kernel
def uniform_normal(low_a, high_a, loc_b, scale_b):
    """KL(U(low_a, high_a) ‖ N(loc_b, scale_b²)).

    With w = h_a − l_a and c = (l_a + h_a)/2,
    KL = log(σ_b/w) + ½ log 2π + (w²/12 + (c − μ_b)²)/(2σ_b²), evaluated as
    J + KL(N(c, w²/12) ‖ N(μ_b, σ_b²)) with the uniform negentropy J = ½ log(πe/6) ≈ 0.176.

    Args:
      low_a, high_a: the interval, ``[...]``, high_a > low_a.
      loc_b, scale_b: the normal mean and standard deviation > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(uniform_normal(-3.0 ** 0.5, 3.0 ** 0.5, 0.0, 1.0)), 6)  # = J
      0.176485
    """
    width = high_a - low_a
    center = low_a + 0.5 * width
    return _NEGENTROPY_UNIFORM + normal(center, width / math.sqrt(12.0), loc_b, scale_b)


@kernel
def exponential_normal(rate_a, loc_b, scale_b):
    """KL(Exponential(rate_a) ‖ N(loc_b, scale_b²)).

    With λ = rate_a, KL = −1 + log(λσ_b) + ½ log 2π + (1/λ² + (1/λ − μ_b)²)/(2σ_b²),
    evaluated as J + KL(N(1/λ, 1/λ²) ‖ N(μ_b, σ_b²)) with the exponential negentropy
    J = ½ log 2π − ½ ≈ 0.419.

    Args:
      rate_a: the exponential rate λ > 0, ``[...]``.
      loc_b, scale_b: the normal mean and standard deviation > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(exponential_normal(1.0, 1.0, 1.0)), 6)  # = J
      0.418939
    """
    mean_a = div(jnp.ones_like(rate_a), rate_a)
    return _NEGENTROPY_EXPONENTIAL + normal(mean_a, mean_a, loc_b, scale_b)


# Bernoulli numbers B_2, B_4, …, B_18.
_BERNOULLI = (
    Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30), Fraction(5, 66),
    Fraction(-691, 2730), Fraction(7, 6), Fraction(-3617, 510), Fraction(43867, 798),
)  # fmt: skip
# Large-k expansion of the Gamma(k) negentropy J(k) = ½ log(2πek) − H(Gamma(k, 1)). From
# Stirling's series for log Γ and ψ: J(k) ~ 1/(2k) + Σ_n B_2n [−1/((2n − 1) k^{2n−1})
# + 1/(2n k^{2n})], i.e. 1/(3k) + 1/(12k²) + 1/(90k³) − 1/(120k⁴) − …; coefficient c[i]
# multiplies k^{−(i+1)}. Kept through k^{−16}: the first omitted term is B_18/(17 k^17).
_GAMMA_NEGENTROPY_SERIES = tuple(
    float(c)
    for n, b in enumerate(_BERNOULLI[:8], start=1)
    for c in (-b / (2 * n - 1) + (Fraction(1, 2) if n == 1 else 0), b / (2 * n))
)


def _gamma_asymptotic_from(x) -> float:
    """k from which J(k) is summed from its series rather than directly.

    The direct form cancels terms of size k log k down to J ≈ 1/(3k), a relative error
    ≈ 3k² log k · eps; the series' truncation error is ≈ 3.2/k^16 relative. float32: from
    k = 4 the series is within 2e-9 and the direct form below 4 within ~1e-5 (jax's float32
    gammaln/digamma). float64: from k = 10 the series is within 1e-15, the direct form
    below 10 within 1e-13.
    """
    return 4.0 if jnp.finfo(x.dtype).bits <= 32 else 10.0


def _gamma_negentropy(k):
    """J(k) = ½ log(2πek) − k − log Γ(k) − (1 − k)ψ(k) ≥ 0, ≈ 1/(3k) for large k."""
    k0 = _gamma_asymptotic_from(k)
    large = k >= k0
    inv = 1.0 / jnp.where(large, k, k0)
    series = horner(_GAMMA_NEGENTROPY_SERIES, inv) * inv
    ks = jnp.where(large, 1.0, k)
    direct = 0.5 * (_LOG_2PI + 1.0 + jnp.log(ks)) - ks - gammaln(ks) - (1.0 - ks) * digamma(ks)
    return jnp.where(large, series, direct)


@kernel
def gamma_normal(conc_a, rate_a, loc_b, scale_b):
    """KL(Gamma(conc_a, rate_a) ‖ N(loc_b, scale_b²)).

    With k = conc_a, λ = rate_a: KL = −H(Gamma) + log σ_b + ½ log 2π
    + (k/λ² + (k/λ − μ_b)²)/(2σ_b²), H(Gamma) = k − log λ + log Γ(k) + (1 − k)ψ(k). It is
    evaluated as J(k) + KL(N(k/λ, k/λ²) ‖ N(μ_b, σ_b²)), where the Gamma negentropy
    J(k) = ½ log(2πek) − H(Gamma(k, 1)) → 1/(3k) as k → ∞ is taken from its asymptotic
    series for large k (the direct form would cancel terms of size k log k there).

    Args:
      conc_a, rate_a: the Gamma shape k > 0 and rate λ > 0, ``[...]``.
      loc_b, scale_b: the normal mean and standard deviation > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(gamma_normal(1.0, 1.0, 1.0, 1.0)), 5)  # Gamma(1, 1) = Exponential(1)
      0.41894
    """
    mean_a = div(conc_a, rate_a)
    std_a = div(jnp.sqrt(conc_a), rate_a)
    return _gamma_negentropy(conc_a) + normal(mean_a, std_a, loc_b, scale_b)


# ----------------------------------------------------------------------------- Normal ‖ Laplace
@kernel
def normal_laplace(loc_a, scale_a, loc_b, scale_b):
    """KL(N(loc_a, scale_a²) ‖ Laplace(loc_b, scale_b)).

    KL = −H(N) + log(2b) + E|X − μ_b|/b with X ~ N(μ_a, σ_a²), and the folded-normal
    mean E|X − μ_b| = σ_a·m(δ), m(δ) = √(2/π)·e^{−δ²/2} + δ·erf(δ/√2), δ = (μ_a − μ_b)/σ_a.
    With t = log(σ_a/b) this is log 2 − ½ − ½ log 2π − t + e^t m(δ), evaluated as three
    non-negative parts,

        KL = [expm1(s) − s] + log(m/m₀) + (log 2 + ½ − log π),  s = t + log m,
        m₀ = m(0) = √(2/π),  log(m/m₀) = log1p(expm1(−δ²/2) + √(π/2)·δ·erf(δ/√2)),

    so no terms cancel; the minimum log 2 + ½ − log π ≈ 0.0484 is reached at δ = 0,
    b = σ_a√(2/π).

    Args:
      loc_a, scale_a: the normal mean and standard deviation σ_a > 0, ``[...]``.
      loc_b, scale_b: the Laplace location and scale b > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(normal_laplace(0.0, 1.0, 0.0, (2.0 / 3.141592653589793) ** 0.5)), 6)
      0.048417
    """
    t = log_ratio(scale_a, scale_b)
    delta = div(loc_a - loc_b, scale_a)
    # From |δ| = 40 on, e^{−δ²/2} < 1e-347 is 0 even in float64 and erf(δ/√2) = ±1, so
    # E|X − μ_b| = |μ_a − μ_b| exactly and KL = |μ_a − μ_b|/b − t + log 2 − ½ − ½ log 2π
    # (≥ 1 + log 40 − 0.73 there: no cancellation). Evaluating the general form there
    # instead overflows δ² and gives the gradient in σ_a as inf − inf = NaN.
    far = jnp.abs(delta) >= 40.0
    dn = jnp.where(far, 0.0, delta)  # double where: no overflow in the discarded branch
    # δ·erf(δ/√2) ≥ 0 and expm1(−δ²/2) ∈ (−1, 0]: their sum is ≈ δ²/2 without cancellation.
    log_m_rel = jnp.log1p(
        jnp.expm1(-0.5 * jnp.square(dn)) + _SQRT_HALF_PI * dn * erf(dn / math.sqrt(2.0))
    )
    s = t + _LOG_SQRT_2_OVER_PI + log_m_rel
    near_kl = expm1_minus_x(s) + log_m_rel + _NORMAL_LAPLACE_FLOOR
    far_kl = div(jnp.abs(loc_a - loc_b), scale_b) - t + _NORMAL_LAPLACE_FAR
    return jnp.where(far, far_kl, near_kl)


# ----------------------------------------------------------------------------- Beta ‖ Uniform
# Taylor coefficients at 0 (k ≥ 2) of
#   g(x) = x ψ(1 + x) − log Γ(1 + x) = Σ (−1)^k ζ(k) (k − 1)/k x^k,
#   h(s) = s ψ(2 + s) − log Γ(2 + s) = Σ (−1)^k (ζ(k) − 1)(k − 1)/k s^k.
_G_COEFFS = tuple((-1) ** k * (1.0 + z) * (k - 1) / k for k, z in enumerate(ZETA_MINUS_1, start=2))
_H_COEFFS = tuple((-1) ** k * z * (k - 1) / k for k, z in enumerate(ZETA_MINUS_1, start=2))
# From this concentration on, −H(Beta) is taken from the Beta kernel (see below).
_BETA_LARGE = 10.0


def _beta_negentropy(c1, c0):
    """−H(Beta(c1, c0)) = KL(Beta(c1, c0) ‖ Beta(1, 1)) ≥ 0, which is 0 at the uniform.

    −H = −log B(α, β) + (α − 1)ψ(α) + (β − 1)ψ(β) − (α + β − 2)ψ(α + β). With a = α − 1,
    b = β − 1 this is g(a) + g(b) − h(a + b) (see the coefficients above), each O(a², b²);
    near the uniform the series keep the relative precision the direct form loses. The
    direct form serves α, β < 10; from 10 on its terms grow like α·log α while −H grows
    like ½ log α (float32 was 2.3% off at α = β = 1e5), so there it is rewritten in the
    Stirling remainders ω, ω' of :mod:`jaxkl.special.log_gamma` (below), which do not
    cancel.
    """
    a, b = c1 - 1.0, c0 - 1.0
    radius = series_radius(a)
    small = (jnp.abs(a) < radius) & (jnp.abs(b) < radius)
    large = ~small & ((c1 >= _BETA_LARGE) | (c0 >= _BETA_LARGE))
    as_, bs = jnp.where(small, a, 0.0), jnp.where(small, b, 0.0)
    sum_ab = as_ + bs
    series = (
        horner(_G_COEFFS, as_) * as_ * as_
        + horner(_G_COEFFS, bs) * bs * bs
        - horner(_H_COEFFS, sum_ab) * sum_ab * sum_ab
    )
    # Double where: keep each branch's inputs valid where another branch is selected.
    mid = ~small & ~large
    c1d, c0d = jnp.where(mid, c1, 2.0), jnp.where(mid, c0, 2.0)
    # log B from three gammaln: jax's betaln switches to an algdiv series for max(α, β) ≥ 8
    # that is only float32-accurate (errors ~1e-6 even in float64, jax 0.10.2).
    log_beta = gammaln(c1d) + gammaln(c0d) - gammaln(c1d + c0d)
    direct = (
        -log_beta
        + (c1d - 1.0) * digamma(c1d)
        + (c0d - 1.0) * digamma(c0d)
        - (c1d + c0d - 2.0) * digamma(c1d + c0d)
    )
    # Large: with ω(x) = log Γ(x) − x log x + x and ω'(x) = ψ(x) − log x (Stirling forms
    # from 10 on, of size log x and 1/x), the same −H is
    #   ω(s) − ω(α) − ω(β) + (α − 1)ω'(α) + (β − 1)ω'(β) − (s − 2)ω'(s) + log(s²/(αβ)),
    # s = α + β: the x·log x terms have cancelled algebraically, each part is O(log α).
    c1l, c0l = jnp.where(large, c1, _BETA_LARGE), jnp.where(large, c0, _BETA_LARGE)
    sl = c1l + c0l
    omega, omega_grad = log_gamma_remainder, log_gamma_remainder_grad
    far = (
        (omega(sl) - omega(c1l) - omega(c0l))
        + ((c1l - 1.0) * omega_grad(c1l) + (c0l - 1.0) * omega_grad(c0l))
        - (sl - 2.0) * omega_grad(sl)
        + (2.0 * jnp.log(sl) - jnp.log(c1l) - jnp.log(c0l))
    )
    return jnp.where(small, series, jnp.where(large, far, direct))


@kernel
def beta_uniform(c1_a, c0_a, low_b, high_b):
    """KL(Beta(c1_a, c0_a) ‖ U(low_b, high_b)).

    KL = log(h_b − l_b) − H(Beta(α, β)) when [0, 1] ⊆ [l_b, h_b], and +inf otherwise (the
    Beta puts mass outside the interval). H(Beta) = log B(α, β) − (α − 1)ψ(α) − (β − 1)ψ(β)
    + (α + β − 2)ψ(α + β). Since U(0, 1) = Beta(1, 1), −H(Beta(α, β)) is
    KL(Beta(α, β) ‖ Beta(1, 1)): near the uniform (where it vanishes to second order) it is
    taken from power series, for α or β ≥ 10 from Stirling remainders without cancellation
    (the textbook terms grow like α·log α while −H grows like ½ log α: float32 was 2.3% off
    at α = β = 1e5), and directly in between. log(h_b − l_b)
    is taken as log1p((h_b − 1) − l_b).

    Args:
      c1_a, c0_a: the Beta concentrations α, β > 0, ``[...]``.
      low_b, high_b: the interval, ``[...]``, high_b > low_b.

    Returns:
      ``[...]``, the broadcast shape; +inf where [0, 1] is not inside [low_b, high_b].

    Example:
      >>> float(beta_uniform(1.0, 1.0, 0.0, 1.0)), float(beta_uniform(2.0, 2.0, 0.5, 1.0))
      (0.0, inf)
    """
    inside = (low_b <= 0.0) & (high_b >= 1.0)
    # (h − 1) is exact near h = 1, so a width just above 1 keeps its small logarithm.
    log_width = jnp.log1p(jnp.where(inside, (high_b - 1.0) - low_b, 0.0))
    return jnp.where(inside, log_width + _beta_negentropy(c1_a, c0_a), jnp.inf)


# ----------------------------------------------------------------------------- +inf by support
# (a, b) where a has mass outside b's support on every parameter value: the real line is
# not inside (0, ∞), (0, 1) or a bounded interval, and (0, ∞) is not inside (0, 1) or a
# bounded interval.
SUPPORT_MISMATCH_PAIRS = (
    *(
        (a, b)
        for a in (Normal, Laplace, Gumbel)
        for b in (Exponential, Gamma, Beta, Uniform, LogNormal)
    ),
    *((a, b) for a in (Exponential, Gamma, LogNormal) for b in (Uniform, Beta)),
)


def _infinite_kl(a, b):
    """KL(a‖b) = +inf: a's support is never inside b's. Shape: the broadcast batch shape."""
    try:
        shape = np.broadcast_shapes(a.batch_shape, b.batch_shape)
    except ValueError:
        raise ValueError(
            f"jaxkl.kl({type(a).__name__}, {type(b).__name__}): batch shapes do not "
            f"broadcast: {a.batch_shape} and {b.batch_shape}"
        ) from None
    return jnp.full(shape, jnp.inf, common_float_dtype(a.dtype, b.dtype))
