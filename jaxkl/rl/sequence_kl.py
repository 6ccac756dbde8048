"""The sequence-level KL(π‖π_ref) of sampled sequences, with a standard error."""

from __future__ import annotations

import jax.numpy as jnp

from jaxkl.estimators.estimate import Estimate
from jaxkl.estimators.monte_carlo import RATIO_CHECK_SE
from jaxkl.rl._arrays import as_mask, check_choice, float_inputs, masked
from jaxkl.rl.aggregate import aggregate, row_mean_stderr
from jaxkl.rl.importance import log_importance_weights
from jaxkl.rl.token_kl import token_kl

__all__ = ["sequence_kl"]


def sequence_kl(
    logp,
    ref_logp,
    mask,
    *,
    estimator: str = "k1",
    old_logp=None,
    clip_log_ratio: float | None = None,
) -> Estimate:
    """KL_seq(π‖π_ref) = E_{y~π}[Σ_t log π(y_t|y_<t) − log π_ref(y_t|y_<t)] from B sequences.

    Each row is one sequence y_b drawn from π (or from π_old, given ``old_logp``) for one
    prompt; its value is v_b = Σ_t w_bt·k_bt over its unmasked tokens, with k the per-token
    estimator (:func:`jaxkl.rl.token_kl`) and w_bt = Π_{s≤t} π(y_s)/π_old(y_s) the prefix
    importance ratio (1 on-policy). The estimate is the mean of v_b over the rows that hold
    a token, with the standard error of that mean (sequences are the independent units).

    * k1 and k3 are unbiased for KL_seq, on-policy and, with ``old_logp``, off-policy:
      E[r_t − 1 | y_<t] = 0 at every step, so k3's extra terms vanish in the sum too.
      k2 is biased (it estimates E[Σ_t ½ log² r_t]).
    * ``jax.grad`` of ``.value`` is the configuration "loss, prefix correction" of
      :func:`jaxkl.rl.kl_surrogate` (the ratio is kept on-policy as exp(logp − sg(logp)),
      whose value is 1): an unbiased estimate of ∇KL_seq for k1 and k3, on- and
      off-policy. (Summing per-token k2 or k3 as a loss *without* that ratio is not.)
    * k3 also carries the check of :func:`jaxkl.estimators.monte_carlo.ratio_diagnostics`
      on sequences: ``mean_r_minus_1`` = mean of Σ_t w_t (r_t − 1), which is 0 in
      expectation, and its stderr; ``checks_passed`` is False where it is more than 3
      standard errors from 0 (π_ref and the sampler disagree, or ``clip_log_ratio``
      binds).

    Rows without a token do not count (see :func:`jaxkl.rl.aggregate`); an all-masked
    batch gives value 0, stderr inf, not ``reliable``.

    Args:
      logp: ``[B, T]`` log π of the sampled tokens (differentiable).
      ref_logp: ``[B, T]`` log π_ref of the same tokens.
      mask: ``[B, T]`` bool or 0/1.
      estimator: ``"k1"`` (default), ``"k2"`` or ``"k3"``.
      old_logp: optional ``[B, T]`` log π_old of the tokens, when they were drawn from
        π_old ≠ π (off-policy).
      clip_log_ratio: opt-in clamp of log(π_ref/π), see :func:`jaxkl.rl.token_kl`: it
        biases the estimate.

    Returns:
      ``Estimate`` (scalar), ``num_samples`` = B, ``dof`` = B − 1, ``pareto_k`` of the
      per-sequence values, ``diagnostics`` ``num_sequences``, ``num_tokens`` (and, for
      k3, ``mean_r_minus_1``, ``mean_r_minus_1_stderr``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxkl.rl import sequence_kl
      >>> logp = jnp.array([[-0.5, -1.0], [-0.2, 0.0]])
      >>> ref = jnp.array([[-1.0, -1.5], [-0.4, 0.0]])
      >>> mask = jnp.array([[1, 1], [1, 0]])
      >>> est = sequence_kl(logp, ref, mask, estimator="k1")
      >>> round(float(est.value), 4), round(float(est.stderr), 4)  # rows: 1.0 and 0.2
      (0.6, 0.4)
    """
    where = "jaxkl.rl.sequence_kl"
    check_choice(where, "estimator", estimator, ("k1", "k2", "k3"))
    logp, ref_logp, old_logp = float_inputs(where, logp=logp, ref_logp=ref_logp, old_logp=old_logp)
    mask = as_mask(where, mask, logp.shape)
    k = token_kl(logp, ref_logp, mask, estimator=estimator, clip_log_ratio=clip_log_ratio)
    w = jnp.exp(log_importance_weights(logp, old_logp, mask, "prefix"))
    est = aggregate(w * k, mask, "seq-mean-token-sum")
    if estimator != "k3":
        return est
    # r − 1 of the estimator's own (possibly clamped) log r, weighted like the terms.
    log_r = masked(ref_logp, mask) - masked(logp, mask)
    if clip_log_ratio is not None:
        log_r = jnp.clip(log_r, -clip_log_ratio, clip_log_ratio)
    units = jnp.sum(masked(w * jnp.expm1(log_r), mask), axis=-1)
    mean, stderr, _ = row_mean_stderr(units, jnp.any(mask, axis=-1))
    diagnostics = {**est.diagnostics, "mean_r_minus_1": mean, "mean_r_minus_1_stderr": stderr}
    passed = ~(jnp.abs(mean) > RATIO_CHECK_SE * stderr) & ~jnp.isnan(mean)
    return Estimate(
        est.value, est.stderr, est.num_samples, est.dof, est.pareto_k, diagnostics, passed
    )
