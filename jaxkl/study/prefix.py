"""Estimates at every sample size of a grid from one draw of N_max samples.

The bias–variance study needs, per replicate, the estimate after the first N samples for
every N in a grid. Re-drawing per N would cost one compile and one pass per N; instead
one draw of N_max samples is made and running sums are read off at the grid points. Two
details keep this accurate in float32 and cheap to compile:

* sums of per-sample terms are taken after subtracting a shift (the mean of the first few
  terms), so the variance Σ(t − t̄)² = S₂ − S₁²/N does not cancel catastrophically;
* importance weights are scaled by a running maximum before they are summed, so no
  weight overflows however far apart the log weights are.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import check_sizes

__all__ = ["check_sizes", "prefix_mean_stderr", "prefix_self_normalized"]

_SHIFT_SAMPLES = 64


def prefix_mean_stderr(terms: jax.Array, sizes: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """Mean and standard error of ``terms[:N]`` for every N in ``sizes``.

    Args:
      terms: per-sample values ``[N_max]``.
      sizes: strictly increasing sample sizes ≤ N_max (static).

    Returns:
      ``(mean [J], stderr [J])`` with J = len(sizes). stderr = sd/√N (ddof 1); ``inf`` at
      N = 1 and wherever the mean is infinite.

    Example:
      >>> m, s = prefix_mean_stderr(jnp.arange(8.0), (2, 8))
      >>> m.tolist()
      [0.5, 3.5]
    """
    if terms.ndim != 1:
        raise ValueError(f"terms must be one-dimensional [N_max]; got {terms.shape}")
    sizes = check_sizes(sizes, terms.shape[0])
    shift = jax.lax.stop_gradient(jnp.mean(terms[: min(_SHIFT_SAMPLES, terms.shape[0])]))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    centred = terms - shift
    idx = sizes - 1
    s1 = jnp.cumsum(centred)[idx]
    s2 = jnp.cumsum(jnp.square(centred))[idx]
    n = jnp.asarray(sizes, terms.dtype)
    mean = shift + s1 / n
    # S₂ − S₁²/N ≥ 0 in exact arithmetic; rounding can leave −ε, which is 0.
    m2 = jnp.maximum(s2 - jnp.square(s1) / n, 0.0)
    stderr = jnp.sqrt(m2 / jnp.maximum(n - 1.0, 1.0) / n)
    stderr = jnp.where((n > 1) & jnp.isfinite(mean), stderr, jnp.inf)
    return mean, stderr


def prefix_self_normalized(
    log_w: jax.Array, f: jax.Array, sizes: Sequence[int]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Self-normalised IS mean Σw f / Σw over the first N samples, for every N in ``sizes``.

    Weights are summed segment by segment (the segments end at the grid points), each
    weight scaled by the running maximum of the log weights at the end of its segment, so
    every scaled weight is ≤ 1; segment sums are then merged with the factors
    exp(M_s − M_j) ≤ 1. Nothing overflows, and a weight underflows only when it is below
    1e-38 of a larger weight already in the sum, where it cannot matter.

    Each prefix is the self-normalised estimate of :func:`jaxkl.importance_kl` on the
    same draws (value, stderr and ESS agree to rounding; tests/study/test_prefix.py).

    Args:
      log_w: log importance weights ``[N_max]``.
      f: the integrand at the same samples ``[N_max]``.
      sizes: strictly increasing sample sizes ≤ N_max (static).

    Returns:
      ``(value [J], stderr [J], ess [J])``: the estimate; its delta-method standard error
      √(Σ w̃²(f − value)²) with w̃ = w/Σw; Kish's ESS (Σw)²/Σw².

    Example:
      >>> v, s, e = prefix_self_normalized(jnp.zeros(4), jnp.arange(4.0), (2, 4))
      >>> v.tolist(), e.tolist()
      ([0.5, 1.5], [2.0, 4.0])
    """
    sizes = check_sizes(sizes, log_w.shape[0])
    n = int(sizes[-1])
    log_w, f = log_w[:n], f[:n]
    idx = sizes - 1
    segment = np.searchsorted(sizes, np.arange(n), side="right")  # static, sorted
    num = len(sizes)
    running_max = jax.lax.cummax(log_w)[idx]  # M_j: max log weight among the first N_j
    w = jnp.exp(log_w - running_max[segment])
    w2 = jnp.square(w)

    # Segment s's sums enter grid point j ≥ s rescaled by exp(power·(M_s − M_j)) ≤ 1:
    # a lower-triangular [J, J] matrix of factors.
    gap = running_max[None, :] - running_max[:, None]
    lower = np.tril(np.ones((num, num), bool))

    def merged(values, power):
        seg_sums = jax.ops.segment_sum(values, segment, num, indices_are_sorted=True)
        return jnp.where(lower, jnp.exp(power * gap), 0.0) @ seg_sums

    sw, sw2 = merged(w, 1), merged(w2, 2)
    value = merged(w * f, 1) / sw
    # The spread Σw²(f − value_j)² is summed directly for each grid point j ([N, J] terms),
    # not expanded into Σw²f² − 2v·Σw²f + v²Σw², which cancels when value_j is far from 0
    # relative to the spread.
    dev = jax.ops.segment_sum(
        w2[:, None] * jnp.square(f[:, None] - value[None, :]),
        segment,
        num,
        indices_are_sorted=True,
    )  # [segment s, grid point j]
    spread = jnp.sum(jnp.where(lower, jnp.exp(2.0 * gap), 0.0) * dev.T, axis=1)
    stderr = jnp.where(jnp.asarray(sizes) > 1, jnp.sqrt(spread) / sw, jnp.inf)
    ess = jnp.square(sw) / sw2
    return value, stderr, ess
