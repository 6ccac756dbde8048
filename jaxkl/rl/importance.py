"""Importance ratios π_θ/π_old of sampled tokens: per token, or of the whole prefix."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxkl.rl._arrays import masked

__all__ = ["CORRECTIONS", "log_importance_weights"]

CORRECTIONS = (None, "token", "prefix")


def log_importance_weights(logp, old_logp, mask, kind: str | None) -> jax.Array:
    """log w_t of the correction ``kind`` for tokens drawn from π_old; 0 at masked positions.

    * ``None``: w_t = 1 (no correction);
    * ``"token"``: w_t = π_θ(y_t | y_<t) / π_old(y_t | y_<t), the per-token ratio of PPO and
      of DeepSeek-V3.2's KL correction;
    * ``"prefix"``: w_t = Π_{s ≤ t} π_θ(y_s | y_<s) / π_old(y_s | y_<s), the ratio of the
      whole prefix y_≤t, which is what makes E_old[w_t f(y_≤t)] = E_θ[f(y_≤t)] for any f.

    Gradients flow through ``logp`` (not through ``old_logp``, which is data). Summed in
    log space, so a long prefix does not overflow before the exponential is taken.

    Args:
      logp, old_logp: ``[B, T]``, already checked; ``old_logp`` may be ``None``, which
        means on-policy: π_old = π_θ in value (w_t = 1) with the gradient kept.
      mask: ``[B, T]`` bool.
      kind: ``None``, ``"token"`` or ``"prefix"``.

    Returns:
      ``[B, T]`` log weights.

    Example:
      >>> import jax.numpy as jnp
      >>> lp, old = jnp.log(jnp.array([[0.5, 0.2]])), jnp.log(jnp.array([[0.25, 0.4]]))
      >>> mask = jnp.ones((1, 2), bool)
      >>> jnp.exp(log_importance_weights(lp, old, mask, "prefix")).round(4).tolist()
      [[2.0, 1.0]]
    """
    lp = masked(logp, mask)
    if kind is None:
        return jnp.zeros_like(lp)
    old = jax.lax.stop_gradient(lp if old_logp is None else masked(old_logp, mask))
    log_ratio = lp - old
    if kind == "token":
        return log_ratio
    # Past the end of a sequence the cumulative sum is carried along; it is masked there.
    return masked(jnp.cumsum(log_ratio, axis=-1), mask)
