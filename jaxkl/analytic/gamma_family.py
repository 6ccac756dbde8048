"""Closed forms for the gamma family: Gamma, Exponential, Beta, Dirichlet.

All four are exponential families whose log-partition functions are sums of log Γ, so
each KL is a Bregman divergence of log Γ. Written out (the textbook forms in each kernel's
docstring) these subtract terms of size a·log a to get results that can be far smaller:
near equal parameters, and along the direction in which all concentrations grow together
while the mean stays put. Float32 loses every digit there. The kernels below are
rearrangements into sums of non-negative terms, each computed without cancellation.

Split log Γ(x) = x log x − x + ω(x), where ω(x) = log Γ(x) − x log x + x
(:func:`jaxkl.special.log_gamma_remainder`) is convex (ω'' = ψ' − 1/x > 0) and varies
slowly (ω(x) = −½ log x + O(1) for large x). The Bregman divergence of x log x − x is
elementary, and what remains is the ω-Bregman divergence

    R(a, b) = ω(b) − ω(a) − (b − a) ω'(a)  ≥ 0.

With g(u) = eᵘ − 1 − u ≥ 0 (`expm1_minus_x`) and h(u) = u eᵘ − eᵘ + 1 ≥ 0 this gives

    KL(Gamma(α_a, β_a) ‖ Gamma(α_b, β_b)) = α_b g(log(μ_a / μ_b)) + R(α_a, α_b),
        μ = α / β the means;
    KL(Dirichlet(a) ‖ Dirichlet(b)) = Σₖ (B aₖ / A) h(σₖ) + Σₖ R(aₖ, bₖ) − R(A, B),
        A = Σₖ aₖ, B = Σₖ bₖ, σₖ = log((bₖ / B) / (aₖ / A));

Beta is Dirichlet with K = 2. The first Dirichlet term is B·KL(b/B ‖ a/A), B times the
categorical KL between the mean vectors, summed termwise without cancellation. The R
terms form a difference, but of quantities that grow like log a rather than a·log a, so
it costs a few digits at most rather than all of them.

R itself is evaluated three ways (:func:`_omega_bregman`): for |b − a| < a/4 from its
integral form R = (b − a)² ∫₀¹ (1 − u) ω''(a + u(b − a)) du by 8-point Gauss–Legendre
quadrature (a positive integrand, no cancellation; < 1e-15 relative error); farther apart
with a, b ≥ 10 from the Stirling series, R = g(log(b/a))/2 + δ(b) − δ(a) − (b − a)δ'(a)
with δ the Stirling correction; otherwise from its definition with each ω, ω' in the form
accurate at its own argument (Stirling from 10 on, where log Γ(x) − x log x + x would
cancel terms of size x log x: float32 KL(Beta(1e6, 1e6) ‖ Beta(1, 1)) came out 8.0
instead of 6.5285 that way).

Float32 relative error against 50-digit references: ≤ 3e-5 for concentrations
0.5 … 1.3e8 (largest measured 1.2e-5), float64 ≤ 2e-13
(``tests/analytic/test_edge_precision.py``). Quotients of parameters go through
:func:`jaxkl.special.div` / ``log_ratio``, whose derivatives do not form
1/y², and R's integrand is scaled to stay bounded: equal tiny concentrations give a zero
gradient, not 0·inf = NaN.

Every pair here shares its support, so every KL is finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._shapes import broadcast_named, half_precision_in_float32
from jaxkl.analytic._kernel import kernel
from jaxkl.special import (
    STIRLING_MIN,
    div,
    expm1_minus_x,
    log_gamma_remainder,
    log_gamma_remainder_grad,
    log_ratio,
    log_ratio_given_difference,
    scaled_log_gamma_remainder_hess,
    stirling_correction,
    stirling_correction_grad,
)

__all__ = ["beta", "dirichlet", "exponential", "exponential_gamma", "gamma", "gamma_exponential"]

# Gauss–Legendre rule on [0, 1] for the integral form of R, with the factor (1 − u)
# folded into the weights. Within |b − a| < a/4 the nearest singularity of ω'' (its pole
# at 0) is at least 4 interval lengths away, and 8 nodes are exact to < 1e-15 relative.
_NEAR = 0.25
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_GL_U = tuple(float((x + 1.0) / 2.0) for x in _NODES)
_GL_W = tuple(float(w / 2.0 * (1.0 - u)) for w, u in zip(_WEIGHTS, _GL_U, strict=True))


def _h(u):
    """h(u) = u eᵘ − eᵘ + 1 = u·expm1(u) − g(u) ≥ 0 (≈ u²/2 near 0, no cancellation)."""
    return u * jnp.expm1(u) - expm1_minus_x(u)


def _omega_bregman(a, b, d, s):
    """R(a, b) = ω(b) − ω(a) − (b − a)ω'(a) ≥ 0, with d = b − a and s = log(b/a).

    d and s are passed in because callers can form them more accurately than from the
    rounded a and b (for sums: Σ(bₖ − aₖ) rather than Σbₖ − Σaₖ); R ∝ d² near the
    diagonal would inherit d's relative error twice over.
    """
    near = jnp.abs(d) < _NEAR * a
    # Double wheres throughout: each branch sees safe arguments where it is not used, so
    # no inf/NaN reaches the gradient through a discarded branch.
    dn = jnp.where(near, d, 0.0)
    # Nodes on a new trailing axis: one copy of the integrand in the compiled program
    # (unrolling it eight times multiplies XLA's compile time).
    nodes = (1,) * a.ndim + (len(_GL_U),)
    u = jnp.reshape(jnp.asarray(_GL_U, a.dtype), nodes)
    w = jnp.reshape(jnp.asarray(_GL_W, a.dtype), nodes)
    # d²·ω″(x) as (d/x)²·x²ω″(x): both factors bounded (|d/x| ≤ 1/3 on the nodes).
    x = a[..., None] + u * dn[..., None]
    quad = jnp.sum(
        w * jnp.square(div(dn[..., None], x)) * scaled_log_gamma_remainder_hess(x), axis=-1
    )

    big = (a >= STIRLING_MIN) & (b >= STIRLING_MIN)
    ab, bb = jnp.where(big, a, STIRLING_MIN), jnp.where(big, b, STIRLING_MIN)
    db, sb = jnp.where(big, d, 0.0), jnp.where(big, s, 0.0)
    stirling = (
        0.5 * expm1_minus_x(sb)
        + stirling_correction(bb)
        - stirling_correction(ab)
        - db * stirling_correction_grad(ab)
    )
    # Far apart with at least one argument below the Stirling range: the definition, with
    # each ω taken in the form that is accurate at its own argument. (Written as
    # log Γ(b) − log Γ(a) − dψ(a) − (b·s − d) it would subtract terms of size a·log a when
    # one argument is large: float32 lost every digit of KL(Beta(1e6, 1e6) ‖ Beta(1, 1)).)
    direct = log_gamma_remainder(b) - log_gamma_remainder(a) - d * log_gamma_remainder_grad(a)
    return jnp.where(near, quad, jnp.where(big, stirling, direct))


# The two cores below are compiled as whole programs: called eagerly they would otherwise
# dispatch a few hundred small operations one at a time (seconds on a first call).
@jax.jit
def _gamma_kl(conc_a, rate_a, conc_b, rate_b):
    d = conc_b - conc_a
    s = log_ratio_given_difference(conc_b, conc_a, d)
    # log(μ_a/μ_b) = log(β_b/β_a) − log(α_b/α_a); both logs are accurate near 0.
    u = log_ratio(rate_b, rate_a) - s
    return conc_b * expm1_minus_x(u) + _omega_bregman(conc_a, conc_b, d, s)


@jax.jit
def _dirichlet_kl(conc_a, conc_b):
    """KL between Dirichlets over the last axis of equal-shape [..., K] arrays."""
    d = conc_b - conc_a
    s = log_ratio_given_difference(conc_b, conc_a, d)
    total_a, total_b, total_d = (jnp.sum(v, axis=-1, keepdims=True) for v in (conc_a, conc_b, d))
    total_s = log_ratio_given_difference(total_b, total_a, total_d)
    mean_term = jnp.sum(total_b * div(conc_a, total_a) * _h(s - total_s), axis=-1)
    # The K per-category R terms and the total's R in one call, on [..., K + 1]: the
    # program (and its derivative) holds one copy of R's three branches, not two
    # (compiling jit(grad) of the Beta KL: 3.4 s with two copies, 2.5 s with one; 2-core
    # CPU, jaxlib 0.10.2, 2026-12-07).
    r = _omega_bregman(
        *(
            jnp.concatenate(pair, axis=-1)
            for pair in ((conc_a, total_a), (conc_b, total_b), (d, total_d), (s, total_s))
        )
    )
    return mean_term + jnp.sum(r[..., :-1], axis=-1) - r[..., -1]


@kernel
def gamma(conc_a, rate_a, conc_b, rate_b):
    """KL(Gamma(conc_a, rate_a) ‖ Gamma(conc_b, rate_b)), shape α and rate β.

    KL = (α_a − α_b)ψ(α_a) − log Γ(α_a) + log Γ(α_b) + α_b log(β_a/β_b) + α_a(β_b − β_a)/β_a,
    evaluated as α_b·g(log(μ_a/μ_b)) + R(α_a, α_b) with μ = α/β, g(u) = eᵘ − 1 − u and R
    the ω-Bregman divergence (module docstring): two non-negative terms, each accurate, so
    nearly equal parameters and large concentrations keep their digits in float32, where
    the textbook form loses all of them.

    Args:
      conc_a, rate_a, conc_b, rate_b: arrays ``[...]`` that broadcast together; all > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(gamma(2.0, 1.0, 2.0, 2.0)), 5)  # 2·(1 − log 2)
      0.61371
    """
    return _gamma_kl(conc_a, rate_a, conc_b, rate_b)


@kernel
def exponential(rate_a, rate_b):
    """KL(Exponential(rate_a) ‖ Exponential(rate_b)).

    KL = log(λ_a/λ_b) + λ_b/λ_a − 1 = eᵗ − 1 − t with t = log(λ_b/λ_a), evaluated with
    a series near t = 0 so that nearly equal rates keep full relative precision.

    Args:
      rate_a, rate_b: arrays ``[...]`` that broadcast together; > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(exponential(1.0, 2.0)), 5)  # 1 − log 2
      0.30685
    """
    return expm1_minus_x(log_ratio(rate_b, rate_a))


@kernel
def exponential_gamma(rate_a, conc_b, rate_b):
    """KL(Exponential(rate_a) ‖ Gamma(conc_b, rate_b)).

    Exponential(λ) is Gamma(1, λ), so with t = log(β_b/λ_a) and ψ(1) = −γ (Euler's γ):
    KL = log Γ(α_b) + (α_b − 1)γ + (eᵗ − 1 − t) + (1 − α_b)t, evaluated as :func:`gamma`
    with α_a = 1. Always finite.

    Args:
      rate_a: λ_a > 0, ``[...]``.
      conc_b, rate_b: α_b, β_b > 0, ``[...]``. All three broadcast together.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(exponential_gamma(1.0, 1.0, 1.0)), 5)
      0.0
    """
    return _gamma_kl(jnp.ones_like(rate_a), rate_a, conc_b, rate_b)


@kernel
def gamma_exponential(conc_a, rate_a, rate_b):
    """KL(Gamma(conc_a, rate_a) ‖ Exponential(rate_b)).

    Exponential(λ) is Gamma(1, λ), so with t = log(λ_b/β_a):
    KL = (α_a − 1)ψ(α_a) − log Γ(α_a) + α_a(eᵗ − 1) − t, evaluated as :func:`gamma` with
    α_b = 1. Always finite.

    Args:
      conc_a, rate_a: α_a, β_a > 0, ``[...]``.
      rate_b: λ_b > 0, ``[...]``. All three broadcast together.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(gamma_exponential(1.0, 1.0, 2.0)), 5)  # 1 − log 2
      0.30685
    """
    return _gamma_kl(conc_a, rate_a, jnp.ones_like(conc_a), rate_b)


@kernel
def beta(c1_a, c0_a, c1_b, c0_b):
    """KL(Beta(c1_a, c0_a) ‖ Beta(c1_b, c0_b)); c1 is the exponent of x, c0 of 1 − x.

    KL = log B(b₁, b₀) − log B(a₁, a₀) + (a₁ − b₁)ψ(a₁) + (a₀ − b₀)ψ(a₀)
         + (b₁ + b₀ − a₁ − a₀)ψ(a₁ + a₀),
    evaluated as :func:`dirichlet` with K = 2 (a mean-mismatch term plus ω-Bregman
    terms; module docstring), accurate near equality and for large concentrations.

    Args:
      c1_a, c0_a, c1_b, c0_b: arrays ``[...]`` that broadcast together; all > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(beta(1.0, 1.0, 2.0, 1.0)), 5)  # 1 − log 2
      0.30685
    """
    conc_a = jnp.stack([c1_a, c0_a], axis=-1)
    conc_b = jnp.stack([c1_b, c0_b], axis=-1)
    return _dirichlet_kl(conc_a, conc_b)


@half_precision_in_float32
def dirichlet(conc_a, conc_b):
    """KL(Dirichlet(conc_a) ‖ Dirichlet(conc_b)) over the last axis (K categories).

    KL = log B(b) − log B(a) + Σₖ (aₖ − bₖ)(ψ(aₖ) − ψ(a₀)),  a₀ = Σₖ aₖ,
    evaluated as Σₖ (B aₖ/A) h(σₖ) + Σₖ R(aₖ, bₖ) − R(A, B) (module docstring): B times
    the categorical KL between the mean vectors plus ω-Bregman terms, accurate near
    equality and for large concentrations.

    Args:
      conc_a: ``[..., K]``, > 0.
      conc_b: ``[..., K]``, > 0, the same K; leading axes broadcast with conc_a's.

    Returns:
      ``[...]``, the broadcast batch shape.

    Raises:
      ValueError: an argument has no category axis or the two K differ.

    Example:
      >>> round(float(dirichlet(jnp.ones(3), jnp.array([1.0, 1.0, 2.0]))), 5)  # 3/2 − log 3
      0.40139
    """
    if conc_a.ndim < 1 or conc_b.ndim < 1:
        raise ValueError(
            "jaxkl.analytic.dirichlet: conc_a and conc_b need a category axis [..., K]; "
            f"got conc_a {conc_a.shape}, conc_b {conc_b.shape}"
        )
    if conc_a.shape[-1] != conc_b.shape[-1]:
        raise ValueError(
            "jaxkl.analytic.dirichlet: conc_a and conc_b must have the same number of "
            f"categories K (last axis); got conc_a {conc_a.shape}, conc_b {conc_b.shape}"
        )
    conc_a, conc_b = broadcast_named("jaxkl.analytic.dirichlet", conc_a=conc_a, conc_b=conc_b)
    return _dirichlet_kl(conc_a, conc_b)
