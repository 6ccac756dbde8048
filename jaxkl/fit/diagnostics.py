"""The mean and variance of a stochastic gradient, from independent replicates."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._keys import as_key
from jaxkl.estimators.estimate import Estimate, mean_with_stderr

__all__ = ["GradientStats", "gradient_stats"]


class GradientStats(NamedTuple):
    """Moments of a stochastic gradient g over R independent replicates (a pytree).

    Attributes:
      mean: ḡ, a pytree like the parameters.
      variance: the per-element sample variance (ddof = 1), a pytree like the parameters.
      total_variance: tr Cov(g) = E‖g − E g‖², the sum of ``variance`` over all elements,
        as an ``Estimate`` with its standard error across replicates.
      mean_sq_norm: ‖ḡ‖², the squared norm of the mean (a scalar).
    """

    mean: Any
    variance: Any
    total_variance: Estimate
    mean_sq_norm: jax.Array


def gradient_stats(loss_fn, params, key, num_replicates: int, *args) -> GradientStats:
    """Replicate the gradient of ``loss_fn(params, key_r, *args).value`` and summarise it.

    Replicate r uses ``fold_in(key, r)``; the replicates run under ``vmap``. The total
    variance is tr Σ̂ = (1/(R−1)) Σ_r ‖g_r − ḡ‖²; its standard error is that of the mean
    of the R terms R/(R−1)·‖g_r − ḡ‖² (a plug-in: the terms share ḡ, which matters only
    at O(1/R)).

    Args:
      loss_fn: ``(params, key, *args) -> Estimate`` with a scalar value.
      params: the point at which the gradient is taken, a pytree of arrays.
      key: typed key, legacy key or int seed.
      num_replicates: R ≥ 2 (static).
      *args: extra arguments of ``loss_fn``.

    Returns:
      ``GradientStats(mean, variance, total_variance, mean_sq_norm)``.

    Example:
      >>> import jaxkl
      >>> from jaxkl.fit import gradient_stats, reverse_kl
      >>> p = jaxkl.Normal(0.0, 1.0)
      >>> loss = lambda m, key: reverse_kl(key, jaxkl.Normal(m, 1.0), p, 8, gradient="stl")
      >>> float(gradient_stats(loss, 0.0, 0, 100).total_variance.value)  # q = p
      0.0
    """
    if not isinstance(num_replicates, int | np.integer) or isinstance(num_replicates, bool):
        raise TypeError(
            f"gradient_stats: num_replicates must be a Python int; got {num_replicates}"
        )
    if num_replicates < 2:
        raise ValueError(f"gradient_stats: num_replicates must be >= 2; got {num_replicates}")
    key = as_key(key)
    params = jax.tree_util.tree_map(jnp.asarray, params)

    def one(r):
        return jax.grad(lambda prm: loss_fn(prm, jax.random.fold_in(key, r), *args).value)(params)

    grads = jax.vmap(one)(jnp.arange(num_replicates))
    mean = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)
    variance = jax.tree_util.tree_map(lambda g: jnp.var(g, axis=0, ddof=1), grads)

    def sq_dev(g, m):
        dev = g - m[None]
        return jnp.sum(jnp.reshape(jnp.square(dev), (num_replicates, -1)), axis=1)

    per_rep = sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(sq_dev, grads, mean)))
    total = mean_with_stderr(per_rep * (num_replicates / (num_replicates - 1)), axis=0)
    mean_sq_norm = sum(jnp.sum(jnp.square(m)) for m in jax.tree_util.tree_leaves(mean))
    return GradientStats(mean, variance, total, mean_sq_norm)
