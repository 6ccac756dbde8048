"""Importance-weighted KL(q‖p) from samples of a third distribution, with ESS and PSIS k̂."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxkl._checks import is_concrete, require_values
from jaxkl.analytic.registry import NoAnalyticKL, kl
from jaxkl.convert import as_sampleable
from jaxkl.distributions.base import Distribution
from jaxkl.estimators.estimate import PLAIN_KHAT_THRESHOLD, ImportanceEstimate, mean_with_stderr
from jaxkl.estimators.psis import pareto_khat, psis_smooth
from jaxkl.estimators.samplers import broadcast_batches, check_num_samples, draw

__all__ = ["importance_kl", "kish_ess", "smoothed_khat_threshold"]


def kish_ess(log_weights, axis: int = 0) -> jax.Array:
    """Kish effective sample size (Σw)²/Σw² = exp(2·logsumexp(lw) − logsumexp(2·lw)).

    Args:
      log_weights: ``[..., n, ...]`` log importance weights (any additive constant).
      axis: the sample axis.

    Returns:
      ``log_weights``' shape without ``axis``, in [1, n] (clipped there, which only removes
      rounding error: the exact value always lies in that range). NaN if every weight is 0.

    Example:
      >>> float(kish_ess(jnp.zeros(10)))
      10.0
    """
    lw = jnp.asarray(log_weights)
    n = lw.shape[axis]
    log_ess = 2.0 * logsumexp(lw, axis=axis) - logsumexp(2.0 * lw, axis=axis)
    return jnp.clip(jnp.exp(log_ess), 1.0, float(n))


def _require_distribution(name: str, d) -> None:
    if not isinstance(d, Distribution):
        raise TypeError(
            f"importance_kl: {name} must be a jaxkl distribution (with sample/log_prob); "
            f"got {type(d).__name__}"
        )


def importance_kl(
    key,
    q: Distribution,
    p,
    proposal: Distribution,
    num_samples: int,
    *,
    self_normalized: bool = False,
    smooth: bool = False,
) -> ImportanceEstimate:
    """Importance-sampling estimate of KL(q‖p) from draws x ~ proposal, with diagnostics.

    KL(q‖p) = E_q[f(x)], f = log q − log p, is rewritten as E_proposal[w(x)·f(x)] with
    log weights log w = log q(x) − log proposal(x), which stay in log space throughout.

    * Plain (``self_normalized=False``): value = (1/n) Σ wᵢfᵢ, unbiased when q and the
      proposal are normalised and the proposal covers q's support. stderr = sample sd of
      w·f / √n (``inf`` for n = 1). The largest log weight is factored out before
      exponentiating, so weights of e⁵⁰⁰ neither overflow nor lose the others.
    * Self-normalised: value = Σ w̃ᵢfᵢ with w̃ = softmax(log w). The weights' normalising
      constant cancels, and the value is a convex combination of the fᵢ, which tames
      heavy weights; the price is a bias −E_proposal[w²(f − KL)]/n + O(n⁻²). stderr is
      the delta-method √(Σ w̃ᵢ²(fᵢ − value)²) (``inf`` for n = 1). Only w's constant
      cancels, not f's: with q̃ = Z_q·q and p̃ = Z_p·p the value estimates
      KL(q‖p) + log Z_q − log Z_p.

    * Pareto-smoothed (``smooth=True``, with either of the above): the largest
      M = ⌈min(n/5, 3√n)⌉ weights are replaced by the expected order statistics of a
      generalised Pareto fit (:func:`jaxkl.estimators.psis.psis_smooth`), which trades a
      small bias for a finite variance when the raw weights have none (Vehtari et al.
      2024). stderr is the same formula on the smoothed weights.

    Diagnostics: ``ess`` = Kish (Σw)²/Σw² ∈ [1, n] (of the smoothed weights when
    smoothing) and ``pareto_k`` = PSIS k̂ of log w (:func:`jaxkl.pareto_khat`; +inf for
    n ≤ 20). How to read k̂ depends on the estimate:

    * plain (unsmoothed) weights: k̂ ≥ 0.5 means the weights' variance is infinite, so
      the stderr means nothing — ``reliable`` is False there (``khat_threshold`` 0.5);
    * Pareto-smoothed: the PSIS thresholds apply — k̂ < min(0.7, 1 − 1/log₁₀ n) and the
      smoothed estimate converges at a usable rate; above, it does not
      (``khat_threshold`` min(0.7, 1 − 1/log₁₀ n)).

    A proposal with lighter tails than q gives heavy weights: a small ESS, a large k̂, and
    a stderr that can look small while the value is far off.

    **The proposal must cover q's support.** Where it puts no mass and q does, no draw
    ever lands there: the weights look healthy (ESS ≈ n, k̂ < 0) and the estimate is
    confidently wrong, even negative. Wherever ``jaxkl.kl(q, proposal)`` has a closed form
    it is checked: +inf (the proposal misses part of q's support, or is so far from q that
    the weights' second moment, ≥ e^KL, overflows) raises ``ValueError`` for concrete
    parameters, fails :func:`jaxkl.checked` under tracing, and makes ``value`` and
    ``stderr`` NaN under plain ``jit``. For pairs without a closed form (a Mixture
    proposal, a user distribution) covering the support is the caller's responsibility.

    Terms with w = 0 (q(x) = 0) count 0 whatever f is (0·log 0 = 0). Where p(x) = 0 with
    q(x) > 0 the value is +inf (and so is stderr), the honest KL. NaN log densities are
    not masked: they propagate into ``value``. Invalid concrete parameters already raise
    ``ValueError`` when the distributions are built.

    Gradients: the draws from the proposal do not depend on q's or p's parameters, so
    ``jax.grad`` flows through log q in both w and f (and through log p in f); for the
    plain estimator that is an unbiased gradient of KL(q‖p). If the proposal shares
    parameters with q or p (for example ``proposal=q``), gradients also pass through its
    draws and log density. For a reparameterised proposal that extra part has zero
    expectation (the plain estimate's mean does not depend on the proposal), so it only
    adds noise; for one that is not reparameterised it is a bias. Either way
    ``jax.lax.stop_gradient(proposal)`` removes it. ``ess`` is differentiable too (useful
    to tune a proposal); ``pareto_k`` has zero gradient.

    Args:
      key: typed key, legacy ``uint32[2]`` key or int seed.
      q: the distribution of the expectation (normalised), batch ``Bq``, event ``E``.
      p: a distribution with event ``E`` (batch ``Bp``), or a callable log density
        ``x [n, *B, *E] -> [n, *B]``. An unnormalised p̃ = Z·p gives KL(q‖p̃) =
        KL(q‖p) − log Z.
      proposal: the distribution sampled, with ``sample`` and ``log_prob``; batch ``Br``,
        event ``E``. Its support must contain q's.
      num_samples: n ≥ 1, static. Leading batch axes that the proposal lacks become extra
        sample axes, so every batch member gets its own n draws.
      self_normalized: use the self-normalised estimator (see above).
      smooth: Pareto-smooth the largest weights first (see above).

    Returns:
      ``ImportanceEstimate`` with ``value``, ``stderr``, ``pareto_k`` and ``ess`` of the
      batch shape B = broadcast(Bq, Bp, Br), dof = n − 1 and ``khat_threshold`` as
      above.

    Raises:
      TypeError: ``q`` or ``proposal`` is not a jaxkl distribution, ``p`` is neither a
        distribution nor callable, or ``num_samples`` is not an int.
      ValueError: ``num_samples < 1``, event shapes differ, batch shapes do not
        broadcast, a callable p returns the wrong shape, or (concrete parameters) the
        proposal misses part of q's support (KL(q‖proposal) = +inf, see above).

    Example:
      >>> import jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.2)
      >>> wide = jaxkl.Normal(0.0, 2.0)
      >>> est = jaxkl.importance_kl(0, q, p, wide, 20_000)
      >>> abs(float(est.value) - float(jaxkl.kl(q, p))) < 5 * float(est.stderr)
      True
      >>> # Forward KL(p‖q) from samples of q only: x ~ q, reweighted by p/q.
      >>> fwd = jaxkl.importance_kl(1, p, q, proposal=q, num_samples=20_000)
      >>> abs(float(fwd.value) - float(jaxkl.kl(p, q))) < 5 * float(fwd.stderr)
      True
      >>> bool(fwd.pareto_k < 0.7)
      True

    References:
      Kish (1965), Survey Sampling (effective sample size). Owen (2013), Monte Carlo
      theory, methods and examples, ch. 9 (self-normalised importance sampling and its
      delta-method variance). Vehtari, Simpson, Gelman, Yao, Gabry (2024), Pareto
      smoothed importance sampling, JMLR 25(72).
    """
    n = check_num_samples("importance_kl", num_samples)
    # numpyro/distrax/TFP objects: converted, or wrapped with their own sample/log_prob.
    q, p, proposal = as_sampleable(q), as_sampleable(p), as_sampleable(proposal)
    _require_distribution("q", q)
    _require_distribution("proposal", proposal)
    p_is_dist = isinstance(p, Distribution)
    if not p_is_dist and not callable(p):
        raise TypeError(
            "importance_kl: p must be a jaxkl distribution or a callable log density "
            f"x -> log p(x); got {type(p).__name__}"
        )

    event = tuple(q.event_shape)
    named_events = {"q": event, "proposal": tuple(proposal.event_shape)}
    if p_is_dist:
        named_events["p"] = tuple(p.event_shape)
    if len(set(named_events.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in named_events.items())
        raise ValueError(f"importance_kl: event shapes must agree; got {listed}")
    named_batches = {"q": q.batch_shape, "proposal": proposal.batch_shape}
    if p_is_dist:
        named_batches["p"] = p.batch_shape
    batch = broadcast_batches("importance_kl", **named_batches)

    covered = _proposal_covers(q, proposal)

    x = draw(key, proposal, n, batch=batch, where="importance_kl")
    shape = (n, *batch)
    log_q = jnp.broadcast_to(q.log_prob(x), shape)
    log_r = jnp.broadcast_to(proposal.log_prob(x), shape)
    log_p = p.log_prob(x) if p_is_dist else jnp.asarray(p(x))
    try:
        fits = log_p.ndim == len(shape) and np.broadcast_shapes(log_p.shape, shape) == shape
    except ValueError:  # numpy's own message names neither p nor the expected shape
        fits = False
    if not fits:
        raise ValueError(
            f"importance_kl: p(x) must return log densities of shape {shape} "
            f"([num_samples, *batch]) for x of shape {x.shape}; got {log_p.shape}"
        )
    log_p = jnp.broadcast_to(log_p, shape)

    value, stderr, ess, pareto_k = _weighted_kl(log_q, log_r, log_p, self_normalized, smooth)
    if covered is not None:  # reached only when traced (concrete failures raised above)
        value = jnp.where(covered, value, jnp.nan)
        stderr = jnp.where(covered, stderr, jnp.nan)
    threshold = smoothed_khat_threshold(n) if smooth else PLAIN_KHAT_THRESHOLD
    return ImportanceEstimate(value, stderr, n, n - 1, pareto_k, khat_threshold=threshold, ess=ess)


def _proposal_covers(q, proposal):
    """``KL(q‖proposal) < inf`` where a closed form exists (else ``None``); raises if not.

    A concrete failure raises ``ValueError`` naming the offending batch entries; under
    :func:`jaxkl.checked` a traced one fails the check; the returned mask lets plain
    ``jit`` turn those entries' estimates into NaN rather than a wrong number.
    """
    try:
        kl_qr = jax.lax.stop_gradient(kl(q, proposal))
    except NoAnalyticKL:
        return None
    covered = kl_qr < jnp.inf
    require_values(
        "importance_kl",
        "KL(q‖proposal)",
        kl_qr,
        covered,
        rule=(
            "be finite: the proposal must put mass wherever q does (with +inf it misses "
            "part of q's support, so no draw lands there and the estimate is confidently "
            "wrong)"
        ),
    )
    return None if is_concrete(covered) else covered


def smoothed_khat_threshold(num_samples: int) -> float:
    """min(0.7, 1 − 1/log₁₀ S): the k̂ below which a Pareto-smoothed estimate is usable.

    Vehtari et al. (2024), §3: with S draws the smoothed estimate's error converges at a
    practically useful rate only for k̂ below this; 0.7 from S ≈ 2200 on.

    Example:
      >>> smoothed_khat_threshold(100), smoothed_khat_threshold(10_000)
      (0.5, 0.7)
    """
    if num_samples <= 10:
        return 0.0
    return min(0.7, 1.0 - 1.0 / math.log10(num_samples))


# One compiled program per shape; eager callers would otherwise dispatch op by op.
@functools.partial(jax.jit, static_argnums=(3, 4))
def _weighted_kl(log_q, log_r, log_p, self_normalized: bool, smooth: bool):
    """Value, stderr, ESS and k̂ from log densities ``[n, *B]`` at x ~ proposal."""
    n = log_q.shape[0]
    log_w = log_q - log_r
    if smooth:
        log_w, pareto_k = psis_smooth(log_w, axis=0)
    else:
        pareto_k = pareto_khat(log_w, axis=0)
    # 0·log 0 = 0: a draw where q vanishes contributes nothing, even if f there is NaN.
    zero_w = log_w == -jnp.inf
    f = jnp.where(zero_w, 0.0, log_q - log_p)
    # p(x) = 0 where q(x) > 0 makes KL infinite; answered below, and kept out of the sums
    # so that an underflowed weight times inf cannot turn it into NaN.
    f_inf = f == jnp.inf
    f = jnp.where(f_inf, 0.0, f)

    if self_normalized:
        w_tilde = jax.nn.softmax(log_w, axis=0)
        value = jnp.sum(w_tilde * f, axis=0)
        dev = jnp.where(zero_w, 0.0, f - value[None])
        stderr = jnp.sqrt(jnp.sum(jnp.square(w_tilde * dev), axis=0))
        if n == 1:
            stderr = jnp.full_like(value, jnp.inf)
    else:
        # Factor out the largest weight: exact for any shift, so it carries no gradient.
        top = jax.lax.stop_gradient(jnp.max(log_w, axis=0, keepdims=True))
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        est = mean_with_stderr(jnp.exp(log_w - top) * f, axis=0, tail=False)
        scale = jnp.exp(top[0])
        value, stderr = scale * est.value, scale * est.stderr
    infinite = jnp.any(f_inf, axis=0)
    value = jnp.where(infinite, jnp.inf, value)
    stderr = jnp.where(infinite | jnp.isinf(value), jnp.inf, stderr)

    return value, stderr, kish_ess(log_w, axis=0), pareto_k
