"""Closed forms for discrete families: Bernoulli, Categorical, Poisson, Bernoulli‖Poisson.

The Bernoulli and Categorical kernels share one evaluation of

    KL(a‖b) = Σ_k p_k (log p_k − log q_k) = log Σ_k p_k e^{−c_k} − log Σ_{k ∈ supp a} q_k,

where g = logits_a − logits_b is the logit gap and c = g − E_p[g] its centred version
(the identity follows from log p_k − log q_k = g_k − (logsumexp a − logsumexp b)). Written as
log1p(Σ_k p_k (e^{−c_k} − 1 + c_k)) it is a log1p of a sum of non-negative terms, so it is
non-negative by construction and keeps full relative precision as a → b, where the
textbook Σ p (log p − log q) loses all digits to cancellation (KL ~ ½Var_p(g) ≪ eps·H).
When the KL is large the same quantity is taken as a logsumexp instead, which cannot
overflow. The correction −log q(supp a) is zero unless a gives some categories probability
exactly 0; categories where a has mass and b has none make the KL +inf.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxkl._shapes import as_float, broadcast_named
from jaxkl.analytic._math import expm1_minus_x
from jaxkl.analytic.registry import register_kl
from jaxkl.distributions.bernoulli import Bernoulli
from jaxkl.distributions.categorical import Categorical
from jaxkl.distributions.poisson import Poisson, poisson_deviance

__all__ = ["bernoulli", "bernoulli_poisson", "categorical", "poisson"]


def _weighted_expm1_minus_x(log_w, x, log_w_exp_x=None):
    """w·(e^x − 1 − x) for w = e^{log_w} ≥ 0, without overflow, cancellation or NaN.

    For x ≤ 1 the product is formed directly; above, as w·e^x − w(1 + x), which stays
    finite whenever the result is, and whose two terms differ by a factor ≥ e/2. Pass
    ``log_w_exp_x`` = log(w·e^x) when it is known more accurately than log_w + x. Where
    w = 0 the result is 0 whatever x is (including x = ±inf).
    """
    w = jnp.exp(log_w)
    x = jnp.where(log_w > -jnp.inf, x, 0.0)
    low = x <= 1.0
    x_low = jnp.where(low, x, 0.0)
    x_high = jnp.where(low, 1.0, x)
    log_w_exp_x = log_w + x_high if log_w_exp_x is None else jnp.where(low, log_w, log_w_exp_x)
    high = jnp.exp(log_w_exp_x) - w * (1.0 + x_high)
    return jnp.where(low, w * expm1_minus_x(x_low), high)


def _kl_from_log_probs(log_p, log_q, gap):
    """KL(p‖q) over the last axis (see the module docstring).

    Args:
      log_p, log_q: normalised log-probabilities ``[..., K]`` (−inf for zero mass).
      gap: ``[..., K]``, equal to log_p − log_q up to a per-row constant wherever both
        are finite (the raw logit gap, which is more accurate than that difference).

    Returns:
      ``[...]``: +inf where p has mass on a category where q has none.
    """
    num = log_p.shape[-1]
    has_mass = log_p > -jnp.inf
    infinite = jnp.any(has_mass & (log_q == -jnp.inf), axis=-1)
    # Rows with an infinite KL are replaced by a harmless uniform pair before any
    # arithmetic, so nothing downstream produces inf − inf or NaN gradients.
    inf_row = infinite[..., None]
    uniform = -math.log(num)
    log_p = jnp.where(inf_row, uniform, log_p)
    log_q = jnp.where(inf_row, uniform, log_q)
    keep = log_p > -jnp.inf
    p = jnp.exp(log_p)
    gap = jnp.where(keep & ~inf_row, gap, 0.0)
    centred = gap - jnp.sum(p * gap, axis=-1, keepdims=True)

    # log Σ_{supp p} p e^{−c}: robust for any size, accurate in relative terms when ≳ 1.
    big = jax.nn.logsumexp(jnp.where(keep, log_p - centred, -jnp.inf), axis=-1)
    # The same as log1p of non-negative terms, used when it is < 1 (then no term overflows).
    use_series = big < 1.0
    x = jnp.where(use_series[..., None] & keep, -centred, 0.0)
    small = jnp.log1p(jnp.sum(_weighted_expm1_minus_x(log_p, x), axis=-1))
    on_support = jnp.where(use_series, small, big)

    # −log q(supp p): q's mass outside p's support, accurate both when that mass is tiny
    # (log1p) and when it dominates (logsumexp of the mass inside).
    outside = jnp.sum(jnp.where(keep, 0.0, jnp.exp(log_q)), axis=-1)
    few = outside < 0.5
    off_support = jnp.where(
        few,
        -jnp.log1p(-jnp.where(few, outside, 0.0)),
        -jax.nn.logsumexp(jnp.where(keep, log_q, -jnp.inf), axis=-1),
    )
    return jnp.where(infinite, jnp.inf, on_support + off_support)


def bernoulli(logits_a, logits_b):
    """KL(Bernoulli(σ(logits_a)) ‖ Bernoulli(σ(logits_b))).

    KL = p_a (log σ(a) − log σ(b)) + (1 − p_a)(log σ(−a) − log σ(−b)), p_a = σ(a),
    with log σ(x) = −softplus(−x). It is evaluated as
    log(p_a e^{−(1−p_a)δ} + (1 − p_a) e^{p_a δ}), δ = a − b, through
    log1p of non-negative terms (see the module docstring): no cancellation as b → a,
    never negative, finite with finite gradients for |logits| up to the float range
    (e.g. ±50 in float32, where σ(−50) ≈ 2e-22 matters). Logits ±inf (p = 1 or 0) are
    allowed; the KL is +inf where a has mass on an outcome that b excludes.

    Args:
      logits_a, logits_b: ``[...]``, broadcasting together, not NaN.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(bernoulli(0.0, 0.0)), 6), round(float(bernoulli(2.0, -1.0)), 4)
      (0.0, 0.8287)
    """
    a, b = as_float(logits_a, logits_b)
    a, b = broadcast_named("jaxkl.analytic.bernoulli", logits_a=a, logits_b=b)
    log_p = jnp.stack([jax.nn.log_sigmoid(a), jax.nn.log_sigmoid(-a)], axis=-1)
    log_q = jnp.stack([jax.nn.log_sigmoid(b), jax.nn.log_sigmoid(-b)], axis=-1)
    # With finite logits, (a − b, 0) is the exact logit gap of the two-category form;
    # an infinite logit leaves only the difference of log-probabilities.
    finite = (jnp.isfinite(a) & jnp.isfinite(b))[..., None]
    gap = jnp.where(finite, jnp.stack([a - b, jnp.zeros_like(a)], axis=-1), log_p - log_q)
    return _kl_from_log_probs(log_p, log_q, gap)


def categorical(logits_a, logits_b):
    """KL(Categorical(softmax(logits_a)) ‖ Categorical(softmax(logits_b))).

    KL = Σ_k p_k (log p_k − log q_k), p = softmax(a), q = softmax(b), evaluated from the
    logit gap as described in the module docstring: exact 0 for equal rows, full relative
    precision for nearby rows, never negative, finite gradients for logits ±50 in
    float32. Categories with p_k = 0 (logit −inf in a) contribute 0; the KL is +inf where
    b has logit −inf on a category to which a gives mass.

    Args:
      logits_a, logits_b: ``[..., K]`` with the same K; batch dimensions broadcast.
        Entries < +inf and not NaN; every row needs a finite entry.

    Returns:
      ``[...]``, the broadcast batch shape.

    Example:
      >>> import jax.numpy as jnp
      >>> a = jnp.log(jnp.array([0.5, 0.5]))
      >>> b = jnp.log(jnp.array([0.25, 0.75]))
      >>> round(float(categorical(a, b)), 4)
      0.1438
    """
    a, b = as_float(logits_a, logits_b)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(
            "jaxkl.analytic.categorical: logits must have shape [..., K]; got "
            f"logits_a {a.shape}, logits_b {b.shape}"
        )
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            "jaxkl.analytic.categorical: number of categories differs: logits_a has "
            f"K={a.shape[-1]} (shape {a.shape}), logits_b has K={b.shape[-1]} (shape {b.shape})"
        )
    a, b = broadcast_named("jaxkl.analytic.categorical", logits_a=a, logits_b=b)
    log_p = jax.nn.log_softmax(a, axis=-1)
    log_q = jax.nn.log_softmax(b, axis=-1)
    both = (log_p > -jnp.inf) & (log_q > -jnp.inf)
    gap = jnp.where(both, a - b, 0.0)
    return _kl_from_log_probs(log_p, log_q, gap)


def poisson(rate_a, rate_b):
    """KL(Poisson(rate_a) ‖ Poisson(rate_b)).

    KL = λa log(λa/λb) − λa + λb = λb·ψ(t), ψ(t) = 1 + (t − 1)e^t, t = log(λa/λb)
    (:func:`jaxkl.distributions.poisson.poisson_deviance`). Near λa = λb the direct form
    cancels to O(t²); a series of ψ there keeps full relative precision. λa = 0 (a point
    mass at 0) is allowed and gives λb; λb must be > 0.

    Args:
      rate_a: λa ≥ 0, ``[...]``.
      rate_b: λb > 0, ``[...]``, broadcasting with ``rate_a``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(poisson(2.0, 1.0)), 4)
      0.3863
    """
    ra, rb = as_float(rate_a, rate_b)
    ra, rb = broadcast_named("jaxkl.analytic.poisson", rate_a=ra, rate_b=rb)
    return poisson_deviance(ra, rb)


def bernoulli_poisson(logits_a, rate_b):
    """KL(Bernoulli(σ(logits_a)) ‖ Poisson(rate_b)).

    Over k ∈ {0, 1}: KL = p₀(log p₀ + λ) + p₁(log p₁ − log λ + λ), p₁ = σ(a), p₀ = σ(−a).
    It is evaluated as the sum of two non-negative terms,
    KL = p₁·φ(log(λ/p₁)) + p₀·φ(−log p₀), φ(x) = e^x − 1 − x,
    so it stays accurate near its minimum (λ = p₁, KL = p₁ + p₀ log p₀ ≈ p₁²/2) and is
    finite for any finite λ > 0 and any logit including ±inf.

    Args:
      logits_a: ``[...]``, not NaN.
      rate_b: λ > 0, ``[...]``, broadcasting with ``logits_a``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(bernoulli_poisson(0.0, 0.5)), 4)
      0.1534
    """
    a, rate = as_float(logits_a, rate_b)
    a, rate = broadcast_named("jaxkl.analytic.bernoulli_poisson", logits_a=a, rate_b=rate)
    log_p1 = jax.nn.log_sigmoid(a)
    log_p0 = jax.nn.log_sigmoid(-a)
    # p₁(λ/p₁ − 1 − log(λ/p₁)) = λ − p₁ − p₁ log(λ/p₁); p₀(1/p₀ − 1 + log p₀) = p₁ + p₀ log p₀.
    # Each term tends to λ resp. 1 (not 0) as its weight → 0, so the exact limits are
    # filled in for logits ±inf; for finite logits the weights may underflow to 0 but the
    # terms are still formed correctly from the logs.
    log_rate = jnp.log(rate)
    # w·e^x is exactly λ resp. 1 here, so it is passed in rather than rounded through logs.
    one = _weighted_expm1_minus_x(log_p1, log_rate - log_p1, log_rate)
    zero = _weighted_expm1_minus_x(log_p0, -log_p0, jnp.zeros_like(log_p0))
    one = jnp.where(log_p1 > -jnp.inf, one, rate)
    zero = jnp.where(log_p0 > -jnp.inf, zero, 1.0)
    return one + zero


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(a: Bernoulli, b: Bernoulli):
    return bernoulli(a.logits, b.logits)


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(a: Categorical, b: Categorical):
    if a.num_categories != b.num_categories:
        raise ValueError(
            "kl(Categorical, Categorical): number of categories differs: "
            f"a has K={a.num_categories}, b has K={b.num_categories}"
        )
    return categorical(a.logits, b.logits)


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(a: Poisson, b: Poisson):
    return poisson(a.rate, b.rate)


@register_kl(Bernoulli, Poisson)
def _kl_bernoulli_poisson(a: Bernoulli, b: Poisson):
    return bernoulli_poisson(a.logits, b.rate)
