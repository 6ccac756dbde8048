"""KL penalties on a categorical policy: the regularised optima, the penalties' gradients.

A policy q = softmax(θ) over K categories is regularised towards a reference p, as in RLHF
code: tokens x_i ~ q are sampled and held fixed, and k1, k2 or k3 of
log q_θ(x_i) − log p(x_i) is the loss (:func:`jaxkl.fit.sampled_kl_penalty`). Theory
(``PREDICTED``) says k1's expected gradient is 0, k2's is ∇KL(q‖p) and k3's is ∇KL(p‖q):

* :func:`penalty_gradient_bias` tests that on replicated gradients at one policy;
* :func:`penalty_trajectories` trains with each penalty (and the exact KLs) towards
  E_q[r] − β·penalty;
* :func:`regularised_optima` gives where each objective should end.

The experiment ``experiments/kl_penalty.py`` reports all three.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxkl.analytic.discrete import categorical
from jaxkl.distributions import Categorical
from jaxkl.estimators.estimate import Estimate
from jaxkl.fit.loop import fit
from jaxkl.fit.objectives import sampled_kl_penalty

__all__ = [
    "OBJECTIVES",
    "PENALTIES",
    "PREDICTED",
    "penalty_gradient_bias",
    "penalty_trajectories",
    "regularised_optima",
]

PENALTIES = ("k1", "k2", "k3")
OBJECTIVES = ("exact_reverse", "exact_forward", *PENALTIES)
# What each penalty's expected gradient is, in theory (see sampled_kl_penalty).
PREDICTED = {"k1": "zero", "k2": "reverse", "k3": "forward"}


def regularised_optima(ref_logits, reward, beta: float) -> dict:
    """Maximisers of E_q[r] − β·KL over categorical q, for the reverse and the forward KL.

    Reverse: q ∝ p·exp(r/β) (closed form). Forward: stationarity of
    Σ q r − β Σ p log(p/q) on the simplex gives q_k = β p_k / (λ − r_k) with λ > max r
    chosen so that Σ q = 1; the sum decreases in λ, so bisection finds it. Unregularised
    (β = 0): the point mass on argmax r, with KL(q‖p) = −log p(argmax r).

    Args:
      ref_logits: ``[K]`` logits of the reference p.
      reward: ``[K]`` reward per category.
      beta: the penalty's weight, > 0.

    Returns:
      ``{"reverse", "forward", "unregularised"}``, each ``{"kl_qp", "kl_pq", "reward"}`` of
      that optimum (float64, computed in numpy).

    Example:
      >>> import jax.numpy as jnp
      >>> opt = regularised_optima(jnp.zeros(3), jnp.array([1.0, 0.0, 0.0]), 1.0)
      >>> round(opt["reverse"]["reward"], 6)  # e/(e + 2): q ∝ p·exp(r/β)
      0.576117
    """
    log_p = np.asarray(jax.nn.log_softmax(ref_logits), np.float64)
    r = np.asarray(reward, np.float64)
    p = np.exp(log_p)

    def describe(log_q):
        q = np.exp(log_q)
        return {
            "kl_qp": float(np.sum(q * (log_q - log_p))),
            "kl_pq": float(np.sum(p * (log_p - log_q))),
            "reward": float(q @ r),
        }

    a = log_p + r / beta
    rev = describe(a - np.logaddexp.reduce(a))
    lo, hi = r.max(), r.max() + beta  # Σ β p/(λ − r) ≤ β/(λ − max r) ≤ 1 at λ = max r + β
    for _ in range(200):
        lam = 0.5 * (lo + hi)
        if np.sum(beta * p / (lam - r)) > 1.0:
            lo = lam
        else:
            hi = lam
    q_f = beta * p / (hi - r)
    fwd = describe(np.log(q_f / q_f.sum()))
    # No penalty at all: q collapses onto the best token; KL(p‖q) is then infinite.
    best = int(np.argmax(r))
    unreg = {"kl_qp": float(-log_p[best]), "kl_pq": math.inf, "reward": float(r[best])}
    return {"reverse": rev, "forward": fwd, "unregularised": unreg}


def penalty_gradient_bias(key, theta0, ref, num_tokens: int, replicates: int) -> dict:
    """Each penalty's gradient at ``theta0``, replicated, against ∇KL(q‖p) and ∇KL(p‖q).

    Replicate r samples ``num_tokens`` tokens of q = softmax(θ) with ``fold_in(key, r)``
    and differentiates k1, k2 and k3 on them (the same tokens for all three: a paired
    comparison). The mean gradient is tested along u_rev = ∇KL(q‖p)/‖·‖ and along the
    unit part of ∇KL(p‖q) orthogonal to it, against each hypothesis of ``PREDICTED``.

    Args:
      key: a PRNG key.
      theta0: ``[K]`` logits of the policy q.
      ref: ``[K]`` logits of the reference p.
      num_tokens: tokens per replicate (≥ 2).
      replicates: gradients per penalty (≥ 2).

    Returns:
      ``{"predicted_projections", "exact", "num_tokens", "replicates", "k1", "k2", "k3"}``;
      each penalty's entry holds cosines, relative errors with delta-method SEs, the
      projections of its mean gradient and the z-score of each hypothesis
      (see :func:`_bias_stats`).
    """
    p = Categorical(ref)
    n, reps = num_tokens, replicates

    @jax.jit
    def replicate(r):
        k = jax.random.fold_in(key, r)
        out = {}
        for name in PENALTIES:

            def value(th, name=name):
                return sampled_kl_penalty(k, Categorical(th), p, n, estimator=name).value

            # Same tokens for all three penalties (same key): a paired comparison.
            out[name] = jax.value_and_grad(value)(theta0)
        return out

    draws = jax.vmap(replicate)(jnp.arange(reps))
    g_rev = np.asarray(jax.grad(lambda th: categorical(th, ref))(theta0), np.float64)
    g_fwd = np.asarray(jax.grad(lambda th: categorical(ref, th))(theta0), np.float64)
    kl_qp = float(categorical(theta0, ref))
    kl_pq = float(categorical(ref, theta0))
    u_rev = g_rev / np.linalg.norm(g_rev)
    perp = g_fwd - (g_fwd @ u_rev) * u_rev
    u_perp = perp / np.linalg.norm(perp)
    predicted = {"zero": np.zeros_like(g_rev), "reverse": g_rev, "forward": g_fwd}
    dirs = {"u_rev": u_rev, "u_perp": u_perp}
    norm_rev = np.linalg.norm(g_rev)
    out = {
        "predicted_projections": {
            hyp: {d: float(g_hyp @ u / norm_rev) for d, u in dirs.items()}
            for hyp, g_hyp in predicted.items()
        },
        "exact": {
            "kl_qp": kl_qp,
            "kl_pq": kl_pq,
            "grad_rev_norm": float(np.linalg.norm(g_rev)),
            "grad_fwd_norm": float(np.linalg.norm(g_fwd)),
            "cos_grad_rev_grad_fwd": float(u_rev @ g_fwd / np.linalg.norm(g_fwd)),
        },
        "num_tokens": n,
        "replicates": reps,
    }
    for name in PENALTIES:
        vals, grads = draws[name]
        g = np.asarray(grads, np.float64)  # [R, K]
        out[name] = _bias_stats(
            g, np.asarray(vals, np.float64), g_rev, g_fwd, kl_qp, dirs, predicted
        )
    return out


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.shape[0]))


def _bias_stats(g, vals, g_rev, g_fwd, kl_qp, dirs, predicted) -> dict:
    """Cosines, relative errors (delta-method SE) and projection z-scores of gradients g [R, K].

    A smooth statistic h(ḡ) of the mean gradient has SE ≈ sd_r(⟨g_r, ∇h(ḡ)⟩)/√R (delta
    method with the replicate covariance, without forming the K×K matrix).
    """
    reps = g.shape[0]
    gbar = g.mean(0)
    norm_rev = np.linalg.norm(g_rev)

    def delta_se(direction):
        return float(np.std(g @ direction, ddof=1) / math.sqrt(reps))

    def cos_stat(target):
        t = target / np.linalg.norm(target)
        nb = np.linalg.norm(gbar)
        c = float(gbar @ t / nb)
        return c, delta_se((t - c * gbar / nb) / nb)

    cos_rev, cos_rev_se = cos_stat(g_rev)
    cos_fwd, cos_fwd_se = cos_stat(g_fwd)
    diff = gbar - g_rev
    rel = float(np.linalg.norm(diff) / norm_rev)
    rel_se = delta_se(diff / (np.linalg.norm(diff) * norm_rev))
    # ‖ḡ − g‖ from noise alone, if the estimator were unbiased: √(tr Σ̂ / R).
    noise_floor = float(np.sqrt(np.sum(g.var(0, ddof=1)) / reps) / norm_rev)
    per_cos = (g @ (g_rev / norm_rev)) / np.linalg.norm(g, axis=1)
    per_rel = np.linalg.norm(g - g_rev, axis=1) / norm_rev
    z = {}
    for hyp, g_hyp in predicted.items():
        z[hyp] = {d: float((gbar @ u - g_hyp @ u) / delta_se(u)) for d, u in dirs.items()}
    # ⟨ḡ, u⟩ in units of ‖∇KL(q‖p)‖: (1, 0) is honest, (0, 0) is no signal.
    proj = {d: [float(gbar @ u / norm_rev), delta_se(u) / norm_rev] for d, u in dirs.items()}
    value, value_se = _mean_se(vals)
    return {
        "mean_grad_cos_rev": cos_rev,
        "mean_grad_cos_rev_se": cos_rev_se,
        "mean_grad_cos_fwd": cos_fwd,
        "mean_grad_cos_fwd_se": cos_fwd_se,
        "mean_grad_rel_err": rel,
        "mean_grad_rel_err_se": rel_se,
        "mean_grad_rel_err_noise_floor": noise_floor,
        "mean_grad_norm_over_exact": float(np.linalg.norm(gbar) / norm_rev),
        "per_step_cos_rev": _mean_se(per_cos),
        "per_step_rel_err": _mean_se(per_rel),
        "z": z,
        "projections": proj,
        "value": value,
        "value_se": value_se,
        "value_z": (value - kl_qp) / value_se,
    }


def penalty_trajectories(
    key,
    theta0,
    ref,
    reward,
    beta: float,
    objectives,
    *,
    num_tokens: int,
    num_steps: int,
    learning_rate: float,
    seeds: int,
) -> dict:
    """Maximise E_q[r] − β·penalty by adam with each objective, from ``theta0``, per seed.

    The reward term is exact (over every category), so the penalty is the only noise.
    Objectives: ``OBJECTIVES`` — the exact reverse or forward KL, or k1/k2/k3 on
    ``num_tokens`` sampled tokens; seed s uses ``fold_in(key, s)``.

    Returns:
      ``{objective: {"kl_qp", "kl_pq", "reward", and each with "_se"}}``: per step, the
      true KLs and expected reward, mean and SE over seeds (lists of float64).
    """
    p = Categorical(ref)
    n = num_tokens
    cat = categorical

    def loss(theta, key, which):
        q = Categorical(theta)
        neg_reward = -jnp.sum(q.probs * reward)

        def exact(kl_fn):
            def branch():
                value = kl_fn()
                # stderr 0: nothing is sampled; num_samples only matches the other branches.
                return Estimate(value, jnp.zeros_like(value), n)

            return branch

        def sampled(name):
            def branch():
                est = sampled_kl_penalty(key, q, p, n, estimator=name)
                # Value and stderr only: every switch branch must return one structure,
                # and the estimators' diagnostics differ (k3 carries its ratio check).
                return Estimate(est.value, est.stderr, n)

            return branch

        # `which` is not batched, so the switch stays a conditional: one compiled program
        # for every objective, each running only its own branch.
        pen = jax.lax.switch(
            which,
            [
                exact(lambda: cat(theta, ref)),
                exact(lambda: cat(ref, theta)),
                *(sampled(k) for k in PENALTIES),
            ],
        )
        return Estimate(neg_reward + beta * pen.value, beta * pen.stderr, pen.num_samples)

    def metrics(theta, which):
        del which
        return {
            "kl_qp": cat(theta, ref),
            "kl_pq": cat(ref, theta),
            "reward": jnp.sum(jax.nn.softmax(theta) * reward),
        }

    opt = optax.adam(learning_rate)

    @jax.jit
    def run(keys, which):
        def one(k):
            return fit(loss, opt, theta0, k, which, num_steps=num_steps, metrics_fn=metrics).metrics

        return jax.vmap(one)(keys)

    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(seeds))
    out = {}
    for name in objectives:
        m = run(keys, OBJECTIVES.index(name))
        out[name] = {}
        for metric, arr in m.items():
            a = np.asarray(arr, np.float64)  # [seeds, steps]
            out[name][metric] = a.mean(0).tolist()
            out[name][f"{metric}_se"] = (a.std(0, ddof=1) / math.sqrt(a.shape[0])).tolist()
    return out
