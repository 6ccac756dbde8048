"""A KL-regularisation surrogate whose ``jax.grad`` is exactly a named configuration's."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxkl.estimators.gradients import leave_one_out_baseline
from jaxkl.rl._arrays import as_mask, check_no_nan, float_inputs, masked
from jaxkl.rl.aggregate import aggregate_value
from jaxkl.rl.configurations import KLConfig
from jaxkl.rl.importance import log_importance_weights
from jaxkl.rl.token_kl import token_kl

__all__ = ["kl_surrogate"]

sg = jax.lax.stop_gradient


def _reward_to_go(x):
    """G_t = Σ_{s ≥ t} x_s along the last axis."""
    return jnp.flip(jnp.cumsum(jnp.flip(x, -1), axis=-1), -1)


def _leave_one_out(values, mask):
    """b_i = mean of the other *sequences'* values (rows without a token are not ones).

    :func:`leave_one_out_baseline` averages over all B − 1 other rows; empty rows hold 0,
    so rescaling by (B − 1)/(m − 1) makes it the mean over the m − 1 other sequences. With
    fewer than two sequences there is no other one and the baseline is 0.
    """
    b = values.shape[0]
    m = jnp.sum(jnp.any(mask, axis=-1)).astype(values.dtype)
    scale = jnp.where(m >= 2, (b - 1) / jnp.maximum(m - 1.0, 1.0), 0.0)
    return leave_one_out_baseline(values, axis=0) * scale


def kl_surrogate(
    logp,
    ref_logp,
    mask,
    *,
    estimator: str,
    placement: str = "reward",
    old_logp=None,
    correction: str | None = None,
    aggregate: str = "seq-mean-token-sum",
    baseline: str = "none",
    clip_log_ratio: float | None = None,
) -> jax.Array:
    """A scalar whose value is the aggregated KL estimate and whose gradient is the config's.

    RL code puts a sampled KL(π_θ‖π_ref) into its objective in one of several ways; each
    way has its own expected gradient, and only some are the gradient of the sequence-level
    KL_seq(π_θ‖π_ref) = E_{y~π_θ}[Σ_t log π_θ(y_t|y<t) − log π_ref(y_t|y<t)]. This function
    reproduces each of them exactly: its value is the aggregate of the per-token terms
    w_t·k_t (k from :func:`jaxkl.rl.token_kl`, w_t the importance weight of the
    correction, 1 on-policy), and ``jax.grad`` with respect to the policy's parameters,
    through ``logp``, is

    * ``placement="loss"``: ∇ of the aggregate of w_t·k_t, through k and w (the KL as a
      loss term, the tokens held fixed, as GRPO and verl's ``use_kl_loss`` do);
    * ``placement="reward"``: the score-function gradient with the KL as a (negative)
      reward: per token ∇log π_t · (G_t − b_t) with the reward-to-go G_t = Σ_{s≥t} k_s,
      multiplied by w_t for ``correction="token"`` (PPO's ratio); for
      ``correction="prefix"`` each k_s is weighted by its own prefix ratio instead,
      Σ_{t≤s} ∇log π_t · w_s k_s. The reward is held fixed (no gradient through k).

    ``correction`` is the importance ratio π_θ/π_old with its gradient kept: ``"token"``
    (π_θ(y_t)/π_old(y_t), DeepSeek-V3.2's and TRL's ``use_bias_correction_kl``) or
    ``"prefix"`` (Π_{s≤t} π_θ(y_s)/π_old(y_s)). With ``old_logp=None`` the tokens are
    taken to be drawn from π_θ itself: the ratio is exp(logp − sg(logp)), 1 in value.

    **Expected gradients** (derived in :mod:`jaxkl.rl.configurations`; every row is proved
    by enumeration on the toy of :mod:`jaxkl.rl.toy` and by ≥ 20 000 sampled sequences,
    tests/rl/test_surrogate.py). With y ~ π_θ, ∇ = ∇_θ, the tokens held:
    D(k) = E[Σ_t ∇k_t], S(k) = E[Σ_t ∇log π_t Σ_{s≥t} k_s], S₀(k) = E[Σ_t ∇log π_t k_t];
    ∇R_tok = Σ_t E_{y<t}[∇KL(π_θ(·|y<t)‖π_ref(·|y<t))] and ∇F_tok the same with the
    forward KL(π_ref‖π_θ), both with the law of the prefixes y<t held fixed (what a
    per-token penalty sees). "b ≠ π_θ": tokens from a behaviour policy b given as
    ``old_logp``. Per sequence (``aggregate="seq-mean-token-sum"``):

    | placement | k | correction | E[∇] | equals | = ∇KL_seq? | b ≠ π_θ |
    |---|---|---|---|---|---|---|
    | reward | k1 | none | S(k1) | ∇KL_seq | **yes** | no |
    | reward | k1 | token | S(k1) | ∇KL_seq | **yes** | no |
    | reward | k1 | prefix | S(k1) | ∇KL_seq | **yes** | **yes** |
    | reward | k2 | none | S(k2) | S(k2) | no | no |
    | reward | k2 | token | S(k2) | S(k2) | no | no |
    | reward | k2 | prefix | S(k2) | S(k2) | no | no |
    | reward | k3 | none | S(k3) | ∇KL_seq − ∇F_tok | no | no |
    | reward | k3 | token | S(k3) | ∇KL_seq − ∇F_tok | no | no |
    | reward | k3 | prefix | S(k3) | ∇KL_seq − ∇F_tok | no | no |
    | loss | k1 | none | D(k1) | 0 | no | no |
    | loss | k1 | token | D(k1) + S₀(k1) | ∇R_tok | no | no |
    | loss | k1 | prefix | D(k1) + S(k1) | ∇KL_seq | **yes** | **yes** |
    | loss | k2 | none | D(k2) | ∇R_tok | no | no |
    | loss | k2 | token | D(k2) + S₀(k2) | ∇R_tok + S₀(k2) | no | no |
    | loss | k2 | prefix | D(k2) + S(k2) | ∇R_tok + S(k2) | no | no |
    | loss | k3 | none | D(k3) | ∇F_tok | no | no |
    | loss | k3 | token | D(k3) + S₀(k3) | ∇R_tok | no | no |
    | loss | k3 | prefix | D(k3) + S(k3) | ∇KL_seq | **yes** | **yes** |
    | loss | k3+ | none | D(k2) | ∇R_tok | no | no |
    | loss | k3+ | token | D(k2) + S₀(k3) | 2·∇R_tok − ∇F_tok | no | no |
    | loss | k3+ | prefix | D(k2) + S(k3) | ∇KL_seq + ∇R_tok − ∇F_tok | no | no |

    Reading it: the KL in the reward with k1 is exact; a per-token estimator used as a
    loss follows ∇R_tok (k2, k3+, k1 or k3 with the per-token ratio) or ∇F_tok (k3) or
    nothing (k1), because it differentiates each token's KL but not the effect of that
    token on the prefixes of the later ones — exact for one step (T = 1), not for
    sequences. Only the ratio of the whole prefix turns a loss into ∇KL_seq (k1 and k3),
    and only it stays unbiased off-policy. The value of every k1 and k3 configuration is
    an unbiased estimate of KL_seq on-policy; the gradient is another matter.

    Aggregation (other than ``"seq-mean-token-sum"``): ``"seq-sum"`` multiplies the
    expected gradient by the number of sequences; ``"token-mean"`` divides the batch sum
    by the batch's token count, a ratio whose expectation tends to E[∇]/E[L] as the batch
    grows, with an O(1/B) bias at batch size B; ``"seq-mean-token-mean"`` weights each
    sequence by 1/L, which is (E[∇])/T only if every sequence has length T: with variable
    lengths (an end token) L is correlated with the tokens and the expectation is
    E[(1/L)·(per-sequence gradient)], not proportional to any row above.
    ``baseline="loo"`` (reward only, B ≥ 2) subtracts from G_t the mean of the other
    sequences' G_t at the same position (RLOO per position; 0 past their end): independent
    of the row, so the expectation is unchanged (on-policy, or off-policy with a
    correction; without one E_b[∇log π_t] ≠ 0 and the baseline moves it) and the
    variance is lower.

    Masked positions may hold anything: the per-token terms, the ratios and the returns
    are exactly 0 there in value and gradient.

    Args:
      logp: ``[B, T]`` log π_θ of the sampled tokens (differentiable).
      ref_logp: ``[B, T]`` log π_ref of the same tokens.
      mask: ``[B, T]`` bool or 0/1.
      estimator: ``"k1"``, ``"k2"``, ``"k3"`` or ``"k3+"`` (k3's value, k2's gradient; loss
        only).
      placement: ``"reward"`` (default) or ``"loss"``.
      old_logp: optional ``[B, T]`` log π_old (the behaviour policy that drew the tokens).
      correction: ``None`` (default), ``"token"`` or ``"prefix"``.
      aggregate: one of :data:`jaxkl.rl.AGGREGATIONS` (default ``"seq-mean-token-sum"``).
      baseline: ``"none"`` (default) or ``"loo"`` (reward only, B ≥ 2).
      clip_log_ratio: opt-in clamp of log(π_ref/π_θ) to [−c, c]: it biases value and
        gradient (see :func:`jaxkl.rl.token_kl`). Default ``None``: no clamp.

    Returns:
      A scalar of the inputs' dtype.

    Raises:
      ValueError: shapes, unknown options, ``"k3+"`` or a baseline with
        ``placement="reward"``/``"loss"`` mismatched, ``baseline="loo"`` with B < 2.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxkl.rl import kl_surrogate, sequence_kl, toy
      >>> problem = toy.SequenceToy(vocab_size=3, horizon=2)
      >>> theta, ref = problem.random_logits(0, scale=1.0), problem.random_logits(1)
      >>> batch = problem.sample(2, theta, 20_000)
      >>> def grad(**config):
      ...     f = lambda th: kl_surrogate(batch.log_probs(th), batch.log_probs(ref),
      ...                                 batch.mask, **config)
      ...     return jax.grad(f)(theta)
      >>> exact = jax.grad(problem.kl_seq, argnums=0)(theta, ref)
      >>> err = lambda g: float(jnp.linalg.norm(g - exact) / jnp.linalg.norm(exact))
      >>> err(grad(estimator="k1", placement="reward")) < 0.1  # unbiased: noise only
      True
      >>> err(grad(estimator="k3", placement="loss")) > 0.3  # follows ∇F_tok, not ∇KL_seq
      True
    """
    config = KLConfig(placement, estimator, correction, aggregate, baseline)
    where = "jaxkl.rl.kl_surrogate"
    logp, ref_logp, old_logp = float_inputs(where, logp=logp, ref_logp=ref_logp, old_logp=old_logp)
    mask = as_mask(where, mask, logp.shape)
    check_no_nan(where, mask, old_logp=old_logp)
    if config.baseline == "loo" and logp.shape[0] < 2:
        raise ValueError(f"{where}: baseline='loo' needs B >= 2 rows; got B = {logp.shape[0]}")
    k = token_kl(logp, ref_logp, mask, estimator=estimator, clip_log_ratio=clip_log_ratio)
    w = jnp.exp(log_importance_weights(logp, old_logp, mask, correction))
    if placement == "loss":
        terms = w * k
    else:
        reward = sg(k)
        lever = masked(logp, mask) if correction is None else w  # value-free: x − sg(x)
        lever = lever - sg(lever)
        if correction == "prefix":
            # Σ_s (w_s − sg w_s) k_s: each k_s reaches every ∇log π_t, t ≤ s, through w_s.
            score = lever * reward
            if baseline == "loo":
                b = _leave_one_out(_reward_to_go(reward), mask)
                score = score - sg(w) * (masked(logp, mask) - sg(masked(logp, mask))) * sg(b)
        else:
            advantage = _reward_to_go(reward)
            if baseline == "loo":
                advantage = advantage - _leave_one_out(advantage, mask)
            score = lever * sg(masked(advantage, mask))
        terms = sg(w) * reward + score
    return aggregate_value(terms, mask, aggregate)
