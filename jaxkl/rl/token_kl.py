"""Per-token KL terms k1, k2, k3 (and k3+) on ``[B, T]`` log-probabilities with a mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxkl.estimators.monte_carlo import per_sample_kl
from jaxkl.rl._arrays import as_mask, check_choice, check_no_nan, float_inputs, masked

__all__ = ["TOKEN_ESTIMATORS", "token_kl"]

# "k3+" is the straight-through estimator: the value of k3, the gradient of k2.
TOKEN_ESTIMATORS = ("k1", "k2", "k3", "k3+")


def token_kl(logp, ref_logp, mask, *, estimator: str, clip_log_ratio: float | None = None):
    """Per-token KL estimator terms, exactly 0 (value and gradient) at masked positions.

    With log r = ref_logp − logp at each sampled token (:func:`jaxkl.per_sample_kl`):
    k1 = −log r, k2 = ½(log r)², k3 = (r − 1) − log r, and ``"k3+"``, the
    straight-through estimator: the value of k3 with the gradient of k2. Each term
    estimates the KL of one token's distribution; which gradient a sum of them gives a
    *sequence* policy is the subject of :func:`jaxkl.rl.kl_surrogate`.

    Masked positions may hold anything (±1e4, ±inf, NaN: padding often does): they are
    replaced by 0 before any arithmetic, so their terms and their gradients are exactly 0
    and nothing there reaches the other positions. Inside ``jit`` there is no boolean
    indexing, so the shape is static.

    Args:
      logp: ``[B, T]`` log π(y_t | y_<t) of the sampled tokens under the current policy
        (differentiable).
      ref_logp: ``[B, T]`` log π_ref of the same tokens.
      mask: ``[B, T]`` bool or 0/1: which positions are real tokens.
      estimator: ``"k1"``, ``"k2"``, ``"k3"`` or ``"k3+"``.
      clip_log_ratio: ``None`` (default: no clamp) or c > 0: log r is clamped to
        [−c, c] first, as some RL libraries do by default. This is a bias, not a
        safeguard: every token with |log r| > c gets the value of |log r| = c, so the mean
        no longer estimates the KL (for k1 the error is E[(|log r| − c)₊ sign(log r)]),
        and its gradient is exactly 0 (the clamp is flat there), so the tokens furthest
        from π_ref stop being pulled back. Infinite log r are then finite.

    Returns:
      ``[B, T]``, the dtype of the inputs (float32 unless they are float64). Unmasked
      terms are exactly :func:`jaxkl.per_sample_kl`'s; k3 is +inf where log r exceeds the
      dtype's log(max) (≈ 88.7 in float32) — the honest value, not clamped.

    Raises:
      ValueError: shapes are not ``[B, T]`` alike; an unknown estimator; ``clip_log_ratio``
        not > 0; for concrete inputs, a NaN at an unmasked position or a mask that is not
        0/1.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxkl.rl import token_kl
      >>> logp = jnp.array([[-1.0, -2.0, jnp.nan]])  # the last position is padding
      >>> ref = jnp.array([[-1.5, -1.0, 1e4]])
      >>> mask = jnp.array([[1, 1, 0]])
      >>> token_kl(logp, ref, mask, estimator="k1").tolist()
      [[0.5, -1.0, 0.0]]
      >>> g = jax.grad(lambda lp: token_kl(lp, ref, mask, estimator="k3").sum())(logp)
      >>> [round(v, 4) for v in g[0].tolist()]  # ∂k3/∂logp = 1 − r; exactly 0 on padding
      [0.3935, -1.7183, 0.0]
    """
    where = "jaxkl.rl.token_kl"
    check_choice(where, "estimator", estimator, TOKEN_ESTIMATORS)
    logp, ref_logp = float_inputs(where, logp=logp, ref_logp=ref_logp)
    mask = as_mask(where, mask, logp.shape)
    check_no_nan(where, mask, logp=logp, ref_logp=ref_logp)
    log_r = masked(ref_logp, mask) - masked(logp, mask)
    if clip_log_ratio is not None:
        if not float(clip_log_ratio) > 0.0:
            raise ValueError(f"{where}: clip_log_ratio must be > 0 or None; got {clip_log_ratio}")
        log_r = jnp.clip(log_r, -clip_log_ratio, clip_log_ratio)
    # per_sample_kl depends on log r only, so (0, log r) stands for (log q, log p).
    zero = jnp.zeros_like(log_r)
    if estimator == "k3+":
        k2 = per_sample_kl(zero, log_r, "k2")
        # sg(k3) + (k2 − sg(k2)): exactly k3's value, exactly k2's gradient.
        terms = jax.lax.stop_gradient(per_sample_kl(zero, log_r, "k3")) + (
            k2 - jax.lax.stop_gradient(k2)
        )
    else:
        terms = per_sample_kl(zero, log_r, estimator)
    return jnp.where(mask, terms, jnp.zeros((), terms.dtype))
