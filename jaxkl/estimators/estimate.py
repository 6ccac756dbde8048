"""Result types of the estimators: a value always travels with its standard error."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Estimate", "ImportanceEstimate", "mean_with_stderr"]


class Estimate(NamedTuple):
    """A Monte Carlo estimate with its standard error (a pytree).

    Attributes:
      value: the estimate, with the batch shape of the problem.
      stderr: standard error of ``value`` (sample standard deviation / √n), same shape;
        ``inf`` when it cannot be estimated (n = 1) or when ``value`` is infinite.
      num_samples: n, the number of samples averaged.
    """

    value: jax.Array
    stderr: jax.Array
    num_samples: int


class ImportanceEstimate(NamedTuple):
    """An importance-sampling estimate with its diagnostics (a pytree).

    Attributes:
      value, stderr, num_samples: as in :class:`Estimate`.
      ess: Kish effective sample size (Σw)² / Σw², in [1, n].
      pareto_k: PSIS k̂ of the log weights: < 0.5 good, 0.5–0.7 usable, > 0.7 unreliable.
    """

    value: jax.Array
    stderr: jax.Array
    num_samples: int
    ess: jax.Array
    pareto_k: jax.Array


def mean_with_stderr(samples: jax.Array, axis: int = 0) -> Estimate:
    """Mean of ``samples`` along ``axis`` with its standard error.

    Args:
      samples: per-sample values ``[..., n, ...]``.
      axis: the sample axis.

    Returns:
      ``Estimate`` whose value and stderr have ``samples``' shape without ``axis``.
      With n = 1 the standard error is ``inf``; where the mean is infinite so is stderr
      (instead of the NaN a variance of infinities would give).

    Example:
      >>> est = mean_with_stderr(jnp.array([1.0, 2.0, 3.0]))
      >>> float(est.value), round(float(est.stderr), 4)
      (2.0, 0.5774)
    """
    samples = jnp.asarray(samples)
    n = samples.shape[axis]
    if n < 1:
        raise ValueError(f"need at least one sample along axis {axis}; got shape {samples.shape}")
    value = jnp.mean(samples, axis=axis)
    if n == 1:
        stderr = jnp.full_like(value, jnp.inf)
    else:
        stderr = jnp.sqrt(jnp.var(samples, axis=axis, ddof=1) / n)
        stderr = jnp.where(jnp.isinf(value), jnp.inf, stderr)
    return Estimate(value, stderr, n)
