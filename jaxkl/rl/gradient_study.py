"""Bias and variance of each configuration's gradient against the number of sequences N.

On the enumerable toy (:mod:`jaxkl.rl.toy`) every configuration's gradient is computed
exactly as a user computes it — ``jax.grad`` of :func:`jaxkl.rl.kl_surrogate` on sampled
``[N, T]`` arrays — and compared with the exact ∇KL_seq and with the expectation that
the table of ``kl_surrogate`` states.

Design: each replicate draws N_max sequences once; the gradient at N is that of the first
N rows (the others masked: rows without a token are not sequences for any aggregation, so
this is exactly the N-row batch). Estimates at different N within a replicate are
therefore dependent, and every interval here comes from a bootstrap over whole
replicates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import check_sizes
from jaxkl._keys import as_key
from jaxkl.rl.configurations import KLConfig, is_unbiased
from jaxkl.rl.surrogate import kl_surrogate
from jaxkl.rl.toy import SequenceToy

# Relative distance below which two exact float32 gradients are the same (the enumeration
# of the toy rounds at ~1e-7 relative; the biases of the table are ≥ 1e-2 there).
EXACT_TOLERANCE = 1e-4

__all__ = [
    "followed_gradient",
    "gradient_metrics",
    "natural_scale",
    "sampled_gradients",
    "study_configs",
    "variance_slope",
]


def sampled_gradients(
    problem: SequenceToy,
    theta,
    ref,
    configs: Sequence[KLConfig],
    key,
    *,
    replicates: int,
    num_sequences: int,
    sizes: Sequence[int] | None = None,
    behaviour=None,
    chunk: int = 8,
    **kwargs,
) -> np.ndarray:
    """Gradients of every configuration on the same sampled sequences.

    Replicate r draws ``num_sequences`` sequences from π_θ (or from ``behaviour``, whose
    log-probabilities are then passed as ``old_logp``) with ``fold_in(key, r)``, so the
    result does not depend on ``chunk``. All configurations see the same sequences
    (common random numbers). The compiled program is cached by problem, configurations
    and shapes: ``theta``, ``ref`` and ``behaviour`` are its arguments (passing
    ``behaviour=theta`` is on-policy through the off-policy program).

    Args:
      problem: the toy.
      theta, ref: ``[num_states, V]`` logits of π_θ and π_ref.
      configs: the configurations.
      key: typed key, legacy key or int seed.
      replicates: R.
      num_sequences: sequences per replicate (N_max with ``sizes``).
      sizes: optional increasing N ≤ num_sequences: the gradient of the first N rows.
      behaviour: optional ``[num_states, V]`` logits of the sampling policy.
      chunk: replicates per vectorised step (memory only).
      **kwargs: more ``kl_surrogate`` keywords (``clip_log_ratio``).

    Returns:
      float64 ``[C, R, P]`` (``sizes`` None) or ``[C, R, J, P]``, P = num_states·V.
    """
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"sampled_gradients: replicates must be a positive int; got {replicates}")
    if sizes is not None:
        sizes = check_sizes(sizes, num_sequences)
    run = _compiled_gradients(
        problem,
        tuple(configs),
        num_sequences,
        None if sizes is None else tuple(int(n) for n in sizes),
        behaviour is not None,
        chunk,
        tuple(sorted(kwargs.items())),
    )
    law = theta if behaviour is None else behaviour
    out = np.asarray(run(theta, ref, law, as_key(key), jnp.arange(replicates)), np.float64)
    return np.moveaxis(out, -2, 0)  # [R, (J,) C, P] -> [C, R, (J,) P]


@functools.lru_cache(maxsize=32)
def _compiled_gradients(problem, configs, num_sequences, sizes, off_policy, chunk, kwargs):
    """One compiled program per study shape, reused across policies, keys and calls."""
    rows = jnp.arange(num_sequences)
    options = dict(kwargs)

    def grads(theta, ref, law, batch, mask):
        lq = batch.log_probs(ref)
        old = batch.log_probs(law) if off_policy else None
        out = []
        for c in configs:
            cfg = c.kwargs()

            def f(th, cfg=cfg):
                return kl_surrogate(batch.log_probs(th), lq, mask, old_logp=old, **cfg, **options)

            out.append(jax.grad(f)(theta).ravel())
        return jnp.stack(out)  # [C, P]

    @jax.jit
    def run(theta, ref, law, key, idx):
        def replicate(r):
            batch = problem.sample(jax.random.fold_in(key, r), law, num_sequences)
            if sizes is None:
                return grads(theta, ref, law, batch, batch.mask)
            return jax.vmap(
                lambda n: grads(theta, ref, law, batch, batch.mask & (rows < n)[:, None])
            )(jnp.asarray(sizes))

        return jax.lax.map(replicate, idx, batch_size=chunk)

    return run


def natural_scale(problem: SequenceToy, law, config: KLConfig, sizes) -> np.ndarray:
    """What divides the gradient at N so that it is comparable to a per-sequence one.

    ``"seq-sum"``: N (a sum over N sequences); ``"token-mean"``: 1/E[L] (its limit as
    N → ∞ is E[per-sequence]/E[L]); ``"seq-mean-token-mean"``: E[1/L] (what it would be if
    a sequence's length were independent of its tokens); otherwise 1. E over the law
    the sequences are drawn from.
    """
    sizes = np.asarray(sizes, np.float64)
    probs = np.exp(np.asarray(problem.sequence_log_probs(law), np.float64))
    lengths = np.asarray(problem.sequences.mask, np.float64).sum(-1)
    scale = {
        "seq-sum": sizes,
        "token-mean": np.full_like(sizes, 1.0 / float(probs @ lengths)),
        "seq-mean-token-mean": np.full_like(sizes, float(probs @ (1.0 / lengths))),
    }
    return scale.get(config.aggregate, np.ones_like(sizes))


def _loglog_fit(log_n: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of the rows of ``log_y`` [..., J] against ``log_n`` [J]."""
    xc = log_n - log_n.mean()
    return (log_y - log_y.mean(-1, keepdims=True)) @ xc / (xc @ xc)


def variance_slope(
    grads: np.ndarray, sizes, *, min_n: int = 1, bootstrap: int = 400, seed: int = 0
) -> dict:
    """Log-log slope of the total gradient variance against N, with a bootstrap interval.

    The variance at N is tr Cov = mean over replicates of ‖g_r(N) − ḡ(N)‖² (ddof 1).
    The interval resamples whole replicates (the estimates at different N of one replicate
    share its sequences, so the points of the fit are not independent: the ordinary
    regression interval would be wrong) and takes the 2.5 % and 97.5 % quantiles.

    Args:
      grads: ``[R, J, P]``.
      sizes: the J values of N.
      min_n: fit only N ≥ ``min_n``.
      bootstrap: resamples.
      seed: of the resampling.

    Returns:
      ``{"slope", "lo", "hi", "points"}``.
    """
    sizes = np.asarray(sizes, np.float64)
    keep = sizes >= min_n
    g = grads[:, keep]
    r = g.shape[0]
    sq = np.sum(g * g, axis=-1)  # [R, J]

    def variances(weights):  # weights [K, R] (counts/R): the variance at each N per resample
        mean = np.einsum("kr,rjp->kjp", weights, g)
        return (weights @ sq - np.sum(mean * mean, -1)) * r / (r - 1)

    log_n = np.log(sizes[keep])
    point = _loglog_fit(log_n, np.log(variances(np.full((1, r), 1.0 / r))))[0]
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, r, r), minlength=r) for _ in range(bootstrap)])
    boot = _loglog_fit(log_n, np.log(np.maximum(variances(counts / r), 1e-300)))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"slope": float(point), "lo": float(lo), "hi": float(hi), "points": int(keep.sum())}


def gradient_metrics(
    grads: np.ndarray,
    sizes,
    truth: np.ndarray,
    *,
    stated: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    bootstrap: int = 400,
    seed: int = 0,
) -> dict:
    """Bias, cosine and variance of sampled gradients against the exact one, at every N.

    With ḡ(N) the mean over R replicates of the gradient at N divided by ``scale`` (see
    :func:`natural_scale`) and g* = ``truth``:

    * ``rel_bias`` = ‖ḡ − g*‖/‖g*‖ and its bootstrap standard error ``rel_bias_se``;
      ``noise_floor`` = √(tr Cov/R)/‖g*‖ is what ``rel_bias`` would be for an unbiased
      gradient (pure noise), so a bias is resolved only where ``rel_bias`` exceeds it;
    * ``z_bias``: the component of ḡ − g* along the fixed direction ``stated`` − g*
      (the bias the table predicts), over its standard error across replicates;
    * ``rel_to_stated`` = ‖ḡ − stated‖/‖g*‖ (± SE): how far from what the table says it
      follows (noise level when the table is right);
    * ``cos`` = cos(ḡ, g*) (± SE) and ``step_cos``, the mean cosine of one replicate's
      gradient (what a single optimiser step sees);
    * ``rel_var`` = tr Cov(g(N)) / ‖g*‖².

    Args:
      grads: ``[R, J, P]`` float64.
      sizes: the J values of N.
      truth: ``[P]`` the exact gradient g*.
      stated: optional ``[P]`` the table's expectation (per sequence).
      scale: optional ``[J]`` divisors of the gradients.
      bootstrap: resamples over replicates.
      seed: of the resampling.

    Returns:
      dict of lists over N (float), plus ``variance_slope`` (see :func:`variance_slope`,
      fitted for N ≥ 4).
    """
    sizes = np.asarray(sizes)
    g = grads / (np.ones(len(sizes)) if scale is None else np.asarray(scale))[None, :, None]
    r = g.shape[0]
    norm = float(np.linalg.norm(truth))
    mean = g.mean(0)  # [J, P]
    var = np.sum(g.var(0, ddof=1), axis=-1)  # tr Cov, [J]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, r, (bootstrap, r))
    boot = np.stack([g[i].mean(0) for i in idx])  # [K, J, P]

    def rel(target, m):
        return np.linalg.norm(m - target, axis=-1) / norm

    def cos(m):
        return (m @ truth) / (np.linalg.norm(m, axis=-1) * norm)

    step_cos = (g @ truth) / (np.linalg.norm(g, axis=-1) * norm + 1e-300)
    out = {
        "n": sizes.astype(int).tolist(),
        "rel_bias": rel(truth, mean).tolist(),
        "rel_bias_se": rel(truth, boot).std(0, ddof=1).tolist(),
        "noise_floor": (np.sqrt(var / r) / norm).tolist(),
        "cos": cos(mean).tolist(),
        "cos_se": cos(boot).std(0, ddof=1).tolist(),
        "step_cos": step_cos.mean(0).tolist(),
        "step_cos_se": (step_cos.std(0, ddof=1) / math.sqrt(r)).tolist(),
        "rel_var": (var / norm**2).tolist(),
    }
    if stated is not None:
        out["rel_to_stated"] = rel(stated, mean).tolist()
        out["rel_to_stated_se"] = rel(stated, boot).std(0, ddof=1).tolist()
        d = stated - truth
        # Below this the "bias" is float32 rounding of the enumeration, not a direction.
        if np.linalg.norm(d) > EXACT_TOLERANCE * norm:
            proj = (g - truth) @ (d / np.linalg.norm(d))  # [R, J]
            out["z_bias"] = (proj.mean(0) / (proj.std(0, ddof=1) / math.sqrt(r))).tolist()
    out["variance_slope"] = variance_slope(g, sizes, min_n=4, bootstrap=bootstrap, seed=seed)
    return out


def followed_gradient(problem: SequenceToy, theta, ref, config: KLConfig, behaviour=None):
    """What a configuration's gradient follows, per sequence, exactly (by enumeration).

    The expectation of its gradient over single sequences drawn from π_θ (or from
    ``behaviour``), divided by :func:`natural_scale` — so that it is comparable to
    ∇KL_seq. Two configurations are mapped to what their expectation tends to: a
    ``"token-mean"`` to its limit for many sequences (the same configuration with
    ``"seq-mean-token-sum"``, times E[L]: the O(1/N) ratio bias vanishes), and a baseline
    is dropped (it does not move the expectation on-policy or with a correction).

    Returns:
      ``[P]`` float64, P = num_states·V.
    """
    aggregate = "seq-mean-token-sum" if config.aggregate == "token-mean" else config.aggregate
    plain = dataclasses.replace(config, aggregate=aggregate, baseline="none")
    g = problem.expected_surrogate_gradient(theta, ref, plain, behaviour=behaviour)
    law = theta if behaviour is None else behaviour
    return np.asarray(g, np.float64).ravel() / natural_scale(problem, law, plain, [1])[0]


def study_configs(
    problem: SequenceToy,
    theta,
    ref,
    configs: Sequence[KLConfig],
    key,
    *,
    sizes: Sequence[int],
    replicates: int,
    bootstrap: int,
    behaviour=None,
) -> dict[str, dict]:
    """:func:`gradient_metrics` of every configuration on the same sampled sequences.

    The truth is the exact ∇KL_seq; ``stated`` is :func:`followed_gradient`. Each
    configuration's record also holds ``unbiased`` (the table's verdict for this policy)
    and the norms of the two vectors.

    Returns:
      dict name → record (JSON-able).
    """
    sizes = [int(n) for n in sizes]
    grads = sampled_gradients(
        problem,
        theta,
        ref,
        configs,
        key,
        replicates=replicates,
        num_sequences=sizes[-1],
        sizes=sizes,
        behaviour=behaviour,
    )
    truth = np.asarray(jax.grad(problem.kl_seq)(theta, ref), np.float64).ravel()
    law = theta if behaviour is None else behaviour
    off = behaviour is not None
    out = {}
    for c, g in zip(configs, grads, strict=True):
        follows = followed_gradient(problem, theta, ref, c, behaviour)
        metrics = gradient_metrics(
            g,
            sizes,
            truth,
            stated=follows,
            scale=natural_scale(problem, law, c, sizes),
            bootstrap=bootstrap,
            seed=len(out),
        )
        limit = float(np.linalg.norm(follows - truth) / np.linalg.norm(truth))
        out[c.name] = {
            **metrics,
            "config": c.kwargs(),
            "off_policy": off,
            "unbiased": bool(limit < EXACT_TOLERANCE),
            "unbiased_by_table": is_unbiased(c, off_policy=off)
            if c.aggregate == "seq-mean-token-sum"
            else None,
            "exact_rel_bias": limit,
        }
    return out
