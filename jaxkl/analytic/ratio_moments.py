"""Moments of the density ratio r = p/q under q, in closed form: does r have a variance?

Every estimator built on r = p(x)/q(x) with x ~ q (k3, the control variate r − 1, plain
importance sampling with weights q/proposal) is only as good as r's moments:

    E_q[r^α] = ∫ p^α q^{1−α} dx = exp((α − 1)·D_α(p‖q)),

the Rényi divergence of order α. For α = 2 this is 1 + χ²(p‖q): finite exactly when the
variance of r is, and 1/E_q[r²] is the fraction of draws that count (the effective sample
size of r as importance weights). For α = 4 it decides whether the *sample variance* of r
settles, i.e. whether a standard error built from ratios means anything at moderate n.

A sample cannot always tell: for q a mixture with a narrow component and p wider,
E_q[r²] = ∞, yet a thousand draws from q rarely visit the region that makes it so and
look benign. These closed forms answer from the parameters instead.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp

from jaxkl._shapes import as_float
from jaxkl.distributions import (
    Bernoulli,
    Categorical,
    Exponential,
    Gamma,
    Independent,
    Mixture,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    Normal,
    Poisson,
)
from jaxkl.special import map_batch_on_cpu

__all__ = ["log_ratio_moment"]


def _normal(loc_q, scale_q, loc_p, scale_p, order):
    """log ∫ N(x; μp, σp)^α N(x; μq, σq)^{1−α} dx, +inf where it diverges.

    p^α q^{1−α} is Gaussian-shaped with precision λ = α/σp² + (1 − α)/σq²; the integral
    exists iff λ > 0, and then equals σp^{−α} σq^{α−1} λ^{−1/2} exp(−a·b·Δ²/(2λ)) with
    a = α/σp², b = (1 − α)/σq², Δ = μp − μq.
    """
    a = order / jnp.square(scale_p)
    b = (1.0 - order) / jnp.square(scale_q)
    lam = a + b
    finite = lam > 0
    safe_lam = jnp.where(finite, lam, 1.0)
    log_value = (
        -order * jnp.log(scale_p)
        + (order - 1.0) * jnp.log(scale_q)
        - 0.5 * jnp.log(safe_lam)
        - a * b * jnp.square(loc_p - loc_q) / (2.0 * safe_lam)
    )
    return jnp.where(finite, log_value, jnp.inf)


def _gaussian(loc_q, cov_q, loc_p, cov_p, order):
    """log ∫ N(x; μp, Σp)^α N(x; μq, Σq)^{1−α} dx for full covariances, +inf if divergent.

    The integrand is Gaussian-shaped with precision Λ = αΣp⁻¹ + (1 − α)Σq⁻¹ and linear
    term h = αΣp⁻¹μp + (1 − α)Σq⁻¹μq; the integral exists iff Λ ≻ 0 and then is
    |Σp|^{−α/2}|Σq|^{(α−1)/2}|Λ|^{−1/2} exp(½hᵀΛ⁻¹h − ½αμpᵀΣp⁻¹μp − ½(1−α)μqᵀΣq⁻¹μq).
    Eigen-decomposed (small d), so positive definiteness is read off the spectrum.
    """
    prec_p, prec_q = jnp.linalg.inv(cov_p), jnp.linalg.inv(cov_q)
    lam = order * prec_p + (1.0 - order) * prec_q
    lam = 0.5 * (lam + jnp.swapaxes(lam, -1, -2))
    eig, vec = jnp.linalg.eigh(lam)
    finite = jnp.min(eig, axis=-1) > 0
    safe_eig = jnp.where(finite[..., None], eig, 1.0)
    h = order * _matvec(prec_p, loc_p) + (1.0 - order) * _matvec(prec_q, loc_q)
    proj = _matvec(jnp.swapaxes(vec, -1, -2), h)
    quad_h = jnp.sum(jnp.square(proj) / safe_eig, axis=-1)
    quad_p = jnp.sum(loc_p * _matvec(prec_p, loc_p), axis=-1)
    quad_q = jnp.sum(loc_q * _matvec(prec_q, loc_q), axis=-1)
    _, logdet_p = jnp.linalg.slogdet(cov_p)
    _, logdet_q = jnp.linalg.slogdet(cov_q)
    log_value = (
        -0.5 * order * logdet_p
        + 0.5 * (order - 1.0) * logdet_q
        - 0.5 * jnp.sum(jnp.log(safe_eig), axis=-1)
        + 0.5 * quad_h
        - 0.5 * order * quad_p
        - 0.5 * (1.0 - order) * quad_q
    )
    return jnp.where(finite, log_value, jnp.inf)


def _matvec(m, v):
    return jnp.sum(m * v[..., None, :], axis=-1)


def _covariance(d):
    if isinstance(d, MultivariateNormalDiag):
        variance = jnp.square(d.scale_diag)
        eye = jnp.eye(variance.shape[-1], dtype=variance.dtype)
        return d.loc, variance[..., None] * eye.reshape((1,) * (variance.ndim - 1) + eye.shape)
    tril = d.scale_tril
    return d.loc, tril @ jnp.swapaxes(tril, -1, -2)


def _pair_gaussian(q, p, order):
    # inv, eigh and slogdet are LAPACK calls: one batch member at a time on CPU, where
    # independent batched calls in one program can deadlock (jaxkl.special.linalg).
    return map_batch_on_cpu(
        lambda lq, cq, lp, cp: _gaussian(lq, cq, lp, cp, order),
        (*_covariance(q), *_covariance(p)),
        event_ranks=(1, 2, 1, 2),
    )


def _gamma(conc_q, rate_q, conc_p, rate_p, order):
    """log ∫ Gamma(p)^α Gamma(q)^{1−α}: a Gamma integral with k* = αk_p + (1−α)k_q and
    β* = αβ_p + (1−α)β_q, finite iff both are > 0."""
    k = order * conc_p + (1.0 - order) * conc_q
    beta = order * rate_p + (1.0 - order) * rate_q
    finite = (k > 0) & (beta > 0)
    k_safe, beta_safe = jnp.where(finite, k, 1.0), jnp.where(finite, beta, 1.0)
    log_value = (
        order * (conc_p * jnp.log(rate_p) - gammaln(conc_p))
        + (1.0 - order) * (conc_q * jnp.log(rate_q) - gammaln(conc_q))
        + gammaln(k_safe)
        - k_safe * jnp.log(beta_safe)
    )
    return jnp.where(finite, log_value, jnp.inf)


def _discrete(log_q, log_p, order, axis=-1):
    """log Σ p^α q^{1−α} over categories; +inf where p > 0 = q (α > 1)."""
    missing = jnp.any((log_q == -jnp.inf) & (log_p > -jnp.inf), axis=axis)
    terms = jnp.where(log_p == -jnp.inf, -jnp.inf, order * log_p + (1.0 - order) * log_q)
    terms = jnp.where(log_q == -jnp.inf, -jnp.inf, terms)
    return jnp.where(missing, jnp.inf, logsumexp(terms, axis=axis))


def _pair_normal(q, p, order):
    return _normal(q.loc, q.scale, p.loc, p.scale, order)


def _pair_mvn_diag(q, p, order):
    per = _normal(q.loc, q.scale_diag, p.loc, p.scale_diag, order)
    return jnp.sum(per, axis=-1)


def _pair_gamma(q, p, order):
    return _gamma(q.concentration, q.rate, p.concentration, p.rate, order)


def _as_gamma(d):
    return (
        (jnp.ones_like(d.rate), d.rate)
        if isinstance(d, Exponential)
        else (
            d.concentration,
            d.rate,
        )
    )


def _pair_gamma_family(q, p, order):
    return _gamma(*_as_gamma(q), *_as_gamma(p), order)


def _pair_categorical(q, p, order):
    return _discrete(
        jax.nn.log_softmax(q.logits, axis=-1), jax.nn.log_softmax(p.logits, axis=-1), order
    )


def _pair_bernoulli(q, p, order):
    def two(logits):
        return jnp.stack([jax.nn.log_sigmoid(-logits), jax.nn.log_sigmoid(logits)], axis=-1)

    return _discrete(two(q.logits), two(p.logits), order)


def _pair_poisson(q, p, order):
    # Σ_k (λp^α λq^{1−α})^k e^{−αλp−(1−α)λq}/k! = exp(λp^α λq^{1−α} − αλp − (1−α)λq)
    lp, lq = jnp.log(p.rate), jnp.log(q.rate)
    return jnp.exp(order * lp + (1.0 - order) * lq) - order * p.rate - (1.0 - order) * q.rate


def _pair_independent(q, p, order):
    inner = log_ratio_moment(q.base, p.base, order)
    if inner is None:
        return None
    axes = tuple(range(-q.reinterpreted_batch_ndims, 0))
    return jnp.sum(inner, axis=axes) if axes else inner


def _pair_mixture_normal(q, p, order):
    """A Normal mixture q against a Normal p: finiteness only (no closed-form value).

    q ≥ w_j q_j, so ∫p^α q^{1−α} (α > 1) is finite if it is for some component; if it
    diverges for every component, each integrand grows without bound in both tails (the
    exponent is a convex quadratic), so their minimum does too and the mixture's
    integral diverges as well. Returns +inf or NaN (finite, value unknown).
    """
    comps = q.components
    per = _normal(comps.loc, comps.scale, p.loc[..., None], p.scale[..., None], order)
    return jnp.where(jnp.all(per == jnp.inf, axis=-1), jnp.inf, jnp.nan)


def _same_batch_rank(q, p):
    """``q`` and ``p``, the one with fewer batch axes given leading unit axes.

    The rules combine the two parameter sets elementwise, so their batch axes broadcast;
    with equal ranks that broadcast is explicit (no implicit rank promotion, which strict
    callers forbid). Every parameter leaf of a distribution is ``[*batch, *event part]``,
    so adding leading axes to all of them adds batch axes and nothing else.
    """
    extra = len(q.batch_shape) - len(p.batch_shape)

    def pad(d, n):
        return jax.tree.map(lambda x: jnp.reshape(x, (1,) * n + jnp.shape(x)), d)

    if extra > 0:
        return q, pad(p, extra)
    if extra < 0:
        return pad(q, -extra), p
    return q, p


_RULES: tuple[tuple[type, type, Callable], ...] = (
    (Normal, Normal, _pair_normal),
    (MultivariateNormalDiag, MultivariateNormalDiag, _pair_mvn_diag),
    (MultivariateNormalTriL, MultivariateNormalTriL, _pair_gaussian),
    (MultivariateNormalTriL, MultivariateNormalDiag, _pair_gaussian),
    (MultivariateNormalDiag, MultivariateNormalTriL, _pair_gaussian),
    (Gamma, Gamma, _pair_gamma),
    (Exponential, Gamma, _pair_gamma_family),
    (Gamma, Exponential, _pair_gamma_family),
    (Exponential, Exponential, _pair_gamma_family),
    (Categorical, Categorical, _pair_categorical),
    (Bernoulli, Bernoulli, _pair_bernoulli),
    (Poisson, Poisson, _pair_poisson),
    (Independent, Independent, _pair_independent),
)


def log_ratio_moment(q, p, order: float = 2.0) -> jax.Array | None:
    """log E_q[(p(x)/q(x))^α] in closed form, or ``None`` where no rule is known.

    = (α − 1)·D_α(p‖q), the scaled Rényi divergence. For α = 2: log(1 + χ²(p‖q));
    ``+inf`` means r = p/q has infinite variance under q, and exp(−value) is the expected
    fraction of effective draws when r is used as importance weights.

    Known: Normal‖Normal, the multivariate normals (Diag and TriL, any combination), Gamma and
    Exponential (any combination), Categorical, Bernoulli, Poisson, Independent of a
    known pair; and, for finiteness only, a Mixture of Normals against a Normal (NaN:
    finite but no closed form; ``+inf``: diverges).

    Args:
      q: the sampling distribution, batch ``Bq``.
      p: the other distribution, batch ``Bp``, same event shape.
      order: α > 1, a Python float (static).

    Returns:
      Array of shape ``broadcast(Bq, Bp)``: the log moment, ``+inf`` where it diverges,
      NaN where only finiteness is known; or ``None`` for pairs with no rule.

    Example:
      >>> import jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> float(log_ratio_moment(q, p, 2.0))  # E_q[r²] = e^{Δ²} for equal scales
      1.0
      >>> float(log_ratio_moment(q, jaxkl.Normal(0.0, 2.0), 2.0))  # 2/σp² − 1/σq² < 0
      inf
    """
    if not isinstance(order, float | int) or order <= 1:
        raise ValueError(f"log_ratio_moment: order must be a number > 1; got {order!r}")
    q, p = _same_batch_rank(q, p)
    for type_q, type_p, rule in _RULES:
        if isinstance(q, type_q) and isinstance(p, type_p):
            out = rule(q, p, float(order))
            return None if out is None else as_float(out)
    if (
        isinstance(q, Mixture)
        and isinstance(q.components, Normal)
        and type(p) is Normal
        and not q.event_shape
    ):
        return _pair_mixture_normal(q, p, float(order))
    return None
