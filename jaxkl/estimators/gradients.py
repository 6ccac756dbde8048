"""Score-function surrogates: what ``jax.grad`` of a Monte Carlo KL means when x is data.

For draws x ~ q_θ held fixed (``stop_gradient``), the gradient of E_q[k(x; θ)] is
E_q[∇θ k + k·∇θ log q]. A surrogate adds a term whose value is exactly 0 and whose
gradient is the score part, so that ``jax.grad`` of the mean of the surrogate is the
score-function estimator while its value is the plain estimate. One implementation serves
``mc_kl`` and ``jaxkl.fit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["leave_one_out_baseline", "score_surrogate"]


def leave_one_out_baseline(terms: jax.Array, axis: int = 0) -> jax.Array:
    """bᵢ = mean_{j≠i} kⱼ along ``axis`` (RLOO; Kool, van Hoof & Welling 2019).

    bᵢ does not depend on xᵢ, so E[bᵢ ∇θ log q(xᵢ)] = 0 and subtracting it keeps the
    score estimator unbiased while removing most of its variance. Needs n ≥ 2 terms along
    ``axis``.

    Example:
      >>> leave_one_out_baseline(jnp.array([1.0, 2.0, 6.0])).tolist()
      [4.0, 3.5, 1.5]
    """
    n = terms.shape[axis]
    if n < 2:
        raise ValueError(f"leave_one_out_baseline: needs at least 2 terms; got {n}")
    return (jnp.sum(terms, axis=axis, keepdims=True) - terms) / (n - 1)


def score_surrogate(terms_fn, log_q: jax.Array, *, baseline: str = "none") -> jax.Array:
    """Per-draw surrogate: value kᵢ, gradient the score-function estimator of ∇E_q[k].

    With the draws xᵢ held fixed, a term k(xᵢ) depends on q's parameters θ only through
    log q(xᵢ), so its full per-draw gradient is ∇θk + k∇θ log q = (aᵢ + kᵢ)·∇θ log q(xᵢ)
    with aᵢ = ∂kᵢ/∂log q(xᵢ) (1 for k1, k1 for k2, 1 − r for k3). The surrogate

        k(sg(log q)) + sg(wᵢ − bᵢ)·(log q − sg(log q)),   wᵢ = aᵢ + kᵢ,

    has value exactly k (sg = ``stop_gradient``) and θ-gradient (wᵢ − bᵢ)∇θ log q(xᵢ);
    gradients with respect to anything else inside ``terms_fn`` (p's parameters) flow as
    usual. ``baseline="none"``: bᵢ = 0, unbiased for ∇E_q[k]. ``"loo"``: bᵢ = mean_{j≠i} wⱼ,
    which does not depend on xᵢ, so still unbiased, with much less variance; for k1
    (wᵢ = kᵢ + 1) the constant 1 cancels and the per-draw gradient is exactly 0 when q = p.

    A term that is +inf (q puts mass where p has none) keeps the value +inf: the score
    part is added only where its weight is finite, so no inf·0 = NaN reaches the value.
    (The gradient of an infinite KL means nothing; it is not made finite.)

    Args:
      terms_fn: ``log_q [n, ...] -> terms [n, ...]``, elementwise in log q (any coupling
        across draws must be stop-gradiented, as the control variate's β is).
      log_q: log q_θ(x) at the stopped draws ``[n, ...]``.
      baseline: ``"none"`` or ``"loo"``.

    Returns:
      The surrogate, ``log_q``'s shape.
    """
    if baseline not in ("none", "loo"):
        raise ValueError(f"score_surrogate: baseline must be 'none' or 'loo'; got {baseline!r}")
    fixed = jax.lax.stop_gradient(log_q)
    terms, slope = jax.jvp(terms_fn, (fixed,), (jnp.ones_like(fixed),))
    weight = jax.lax.stop_gradient(slope + terms)
    if baseline == "loo":
        weight = weight - leave_one_out_baseline(weight)
    finite = jnp.isfinite(weight)
    score = log_q - fixed  # value 0, gradient ∇ log q
    return terms + jnp.where(finite, jnp.where(finite, weight, 0.0) * score, 0.0)
