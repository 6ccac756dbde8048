"""Training on the toy: which KL configurations reach the regularised optimum π*?

The objective is J(θ) = E_{π_θ}[R] − β·KL_seq(π_θ‖π_ref), whose maximiser is
π* ∝ π_ref·exp(R/β) (:meth:`jaxkl.rl.toy.SequenceToy.optimum_log_probs`). The reward term
is computed exactly (a sum over all sequences), so the only noise and the only possible
bias come from the KL term, which is the configuration under test: ``β·kl_surrogate`` on
sequences sampled from the current policy at every step. A configuration whose expected
gradient is ∇KL_seq drives π_θ to π* (up to the noise that the decaying step size
leaves); any other one settles where its own expected gradient balances the reward's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxkl._keys import as_key
from jaxkl.fit.loop import fit
from jaxkl.rl.configurations import KLConfig
from jaxkl.rl.surrogate import kl_surrogate
from jaxkl.rl.toy import SequenceToy

__all__ = ["kl_to_optimum", "train"]


def kl_to_optimum(problem: SequenceToy, theta, log_optimum) -> jax.Array:
    """KL_seq(π_θ‖π*) = Σ_y π_θ(y)(log π_θ(y) − log π*(y)), exact; 0 exactly at π*."""
    lp = problem.sequence_log_probs(theta)
    return jnp.sum(jnp.exp(lp) * (lp - log_optimum))


def train(
    problem: SequenceToy,
    ref,
    reward,
    beta: float,
    config: KLConfig | None,
    theta0,
    key,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seeds: int,
) -> dict:
    """Maximise E[R] − β·KL with Adam, the KL term from ``config`` (None: exact), over seeds.

    Adam with a cosine-decayed step size (to 1 % of ``learning_rate``), so that sampling
    noise fades and each run ends near the fixed point of its expected gradient.

    Args:
      problem: the toy.
      ref: ``[num_states, V]`` reference logits.
      reward: ``[S]`` one reward per sequence.
      beta: the KL weight β > 0.
      config: the KL configuration, or ``None`` for the exact KL_seq (no sampling).
      theta0: ``[num_states, V]`` initial logits (the same for every seed).
      key: typed key, legacy key or int seed; seed i uses ``fold_in(key, i)``.
      steps, batch_size, learning_rate, seeds: the run.

    Returns:
      ``{"kl_to_optimum": [seeds, steps], "kl_seq": [seeds, steps],
      "final_kl_to_optimum": (mean, se)}`` (numpy; the metrics before each step, and the
      final value after the last one).
    """
    key = as_key(key)
    log_opt = problem.optimum_log_probs(ref, reward, beta)
    sched = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01)
    opt = optax.adam(sched)

    def loss(theta, step_key):
        neg_reward = -jnp.sum(jnp.exp(problem.sequence_log_probs(theta)) * reward)
        if config is None:
            return neg_reward + beta * problem.kl_seq(theta, ref)
        batch = problem.sample(step_key, jax.lax.stop_gradient(theta), batch_size)
        kl = kl_surrogate(
            batch.log_probs(theta), batch.log_probs(ref), batch.mask, **config.kwargs()
        )
        return neg_reward + beta * kl

    def metrics(theta):
        return {
            "kl_to_optimum": kl_to_optimum(problem, theta, log_opt),
            "kl_seq": problem.kl_seq(theta, ref),
        }

    @jax.jit
    def run(keys):
        def one(k):
            res = fit(loss, opt, theta0, k, num_steps=steps, metrics_fn=metrics)
            return res.metrics, kl_to_optimum(problem, res.params, log_opt)

        return jax.vmap(one)(keys)

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(seeds))
    trace, final = run(keys)
    final = np.asarray(final, np.float64)
    se = final.std(ddof=1) / math.sqrt(seeds) if seeds > 1 else math.inf
    return {
        **{k: np.asarray(v, np.float64) for k, v in trace.items()},
        "final_kl_to_optimum": (float(final.mean()), float(se)),
    }
