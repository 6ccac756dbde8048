"""Estimates at every sample size of a grid from one draw of N_max samples.

The bias–variance study needs, per replicate, the estimate after the first N samples for
every N in a grid. Re-drawing per N would cost one compile and one pass per N; instead
one draw of N_max samples is made and running sums are read off at the grid points. Two
details keep this accurate in float32 and cheap to compile:

* sums of per-sample terms are taken after subtracting a shift (the mean of the first few
  terms), so the variance Σ(t − t̄)² = S₂ − S₁²/N does not cancel catastrophically;
* importance weights are summed in log space with a cumulative log-sum-exp, so no weight
  overflows or underflows however far apart the log weights are.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_sizes", "prefix_mean_stderr", "prefix_self_normalized"]

_SHIFT_SAMPLES = 64


def check_sizes(sizes: Sequence[int], n_max: int | None = None) -> np.ndarray:
    """The grid as an int array; strictly increasing, ≥ 1 and ≤ ``n_max``."""
    arr = np.asarray([int(s) for s in sizes])
    if arr.size == 0 or arr[0] < 1 or np.any(np.diff(arr) <= 0):
        raise ValueError(f"sample sizes must be strictly increasing and >= 1; got {list(arr)}")
    if n_max is not None and arr[-1] > n_max:
        raise ValueError(f"largest sample size {arr[-1]} exceeds the {n_max} samples given")
    return arr


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


def _cum_lse_signed(log_w: jax.Array, f: jax.Array) -> jax.Array:
    """Running log Σ w·f⁺ and log Σ w·f⁻ (log of the positive and negative parts)."""
    log_abs = jnp.log(jnp.abs(f))
    pos = jnp.where(f > 0, log_w + log_abs, -jnp.inf)
    neg = jnp.where(f < 0, log_w + log_abs, -jnp.inf)
    return jax.lax.cumlogsumexp(pos), jax.lax.cumlogsumexp(neg)


def prefix_self_normalized(
    log_w: jax.Array, f: jax.Array, sizes: Sequence[int]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Self-normalised IS mean Σw f / Σw over the first N samples, for every N in ``sizes``.

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
    idx = sizes - 1
    lse_w = jax.lax.cumlogsumexp(log_w)[idx]
    lse_w2 = jax.lax.cumlogsumexp(2.0 * log_w)[idx]

    def ratio(log_num, power):  # Σ(...)/(Σw)^power from a running log-sum
        return jnp.exp(log_num[idx] - power * lse_w)

    # The spread Σw̃²(f − value)² is invariant to shifting f; shifting by the full-sample
    # estimate makes its three sums small and keeps float32 from cancelling.
    w_all = jax.nn.softmax(log_w)
    centre = jax.lax.stop_gradient(jnp.sum(w_all * f))
    centre = jnp.where(jnp.isfinite(centre), centre, 0.0)
    f = f - centre
    f_pos, f_neg = _cum_lse_signed(log_w, f)
    value = ratio(f_pos, 1) - ratio(f_neg, 1)
    g_pos, g_neg = _cum_lse_signed(2.0 * log_w, f)
    w2f = ratio(g_pos, 2) - ratio(g_neg, 2)
    w2f2 = ratio(jax.lax.cumlogsumexp(2.0 * log_w + 2.0 * jnp.log(jnp.abs(f))), 2)
    w2 = jnp.exp(lse_w2 - 2.0 * lse_w)
    spread = w2f2 - 2.0 * value * w2f + jnp.square(value) * w2
    # spread = Σw̃²(f − value)² ≥ 0 exactly; rounding can leave −ε, which is 0.
    stderr = jnp.sqrt(jnp.maximum(spread, 0.0))
    stderr = jnp.where(jnp.asarray(sizes) > 1, stderr, jnp.inf)
    ess = jnp.exp(2.0 * lse_w - lse_w2)
    return value + centre, stderr, ess
