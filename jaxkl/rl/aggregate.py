"""Aggregating per-token terms ``[B, T]`` over a mask: the four conventions of RL libraries."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxkl.estimators.estimate import Estimate
from jaxkl.estimators.psis import tail_khat
from jaxkl.rl._arrays import as_mask, check_choice, float_inputs, masked

__all__ = ["AGGREGATIONS", "aggregate", "aggregate_value", "row_mean_stderr"]

AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-sum")


def _rows(x, mask):
    """Per-row token sums s_b, lengths L_b and the rows that hold a token."""
    sums = jnp.sum(masked(x, mask), axis=-1)
    lengths = jnp.sum(mask, axis=-1).astype(x.dtype)
    return sums, lengths, lengths > 0


def _per_sequence(mode, sums, lengths, present):
    if mode == "seq-mean-token-mean":
        # An empty row's mean is 0, not 0/0; it is excluded from every count anyway.
        return sums / jnp.where(present, lengths, 1.0)
    return sums


def aggregate_value(x, mask, mode: str) -> jax.Array:
    """The scalar of :func:`aggregate` alone (what a loss needs; no standard error).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
      >>> mask = jnp.array([[1, 1, 1], [1, 0, 0]])
      >>> [float(aggregate_value(x, mask, m)) for m in AGGREGATIONS]
      [2.5, 5.0, 3.0, 10.0]
    """
    where = "jaxkl.rl.aggregate"
    check_choice(where, "mode", mode, AGGREGATIONS)
    (x,) = float_inputs(where, x=x)
    mask = as_mask(where, mask, x.shape)
    sums, lengths, present = _rows(x, mask)
    if mode == "seq-sum":
        return jnp.sum(sums)
    if mode == "token-mean":
        return jnp.sum(sums) / jnp.maximum(jnp.sum(lengths), 1.0)
    values = _per_sequence(mode, sums, lengths, present)
    m = jnp.sum(present).astype(x.dtype)
    return jnp.sum(jnp.where(present, values, 0.0)) / jnp.maximum(m, 1.0)


def row_mean_stderr(values, present):
    """Mean of ``values`` over the ``present`` rows, its standard error, and their count.

    Args:
      values: ``[B]`` one value per row (independent sequences).
      present: ``[B]`` bool, the rows that count.

    Returns:
      ``(mean, stderr, m)``: mean 0 and stderr inf when no row counts, stderr inf when
      one does (no spread to measure); m = number of present rows, in ``values``' dtype.
    """
    m = jnp.sum(present).astype(values.dtype)
    mean = jnp.sum(jnp.where(present, values, 0.0)) / jnp.maximum(m, 1.0)
    dev = jnp.where(present, values - mean, 0.0)
    var = jnp.sum(dev * dev) / jnp.maximum(m - 1.0, 1.0)
    stderr = jnp.where(m >= 2, jnp.sqrt(var / jnp.maximum(m, 1.0)), jnp.inf)
    stderr = jnp.where(jnp.isinf(mean), jnp.inf, stderr)
    return mean, stderr, m


def _khat(units, present, fill):
    """k̂ of the tail of the per-row units; absent rows take a value inside the body."""
    return tail_khat(jnp.where(present, units, fill))


def aggregate(x, mask, mode: str) -> Estimate:
    """Aggregate per-token terms over a mask, with a standard error across sequences.

    Rows are sequences, the independent units: tokens of one sequence are not independent
    (later tokens depend on earlier ones), so every standard error here is computed from
    per-sequence quantities. A row without any unmasked token is not a sequence (padding
    of the batch): it is left out of every count. With s_b = Σ_t x_bt·mask_bt,
    L_b = Σ_t mask_bt and the m rows with L_b > 0:

    ========================  ==========================  =================================
    mode                      value                       estimates (stderr across rows)
    ========================  ==========================  =================================
    ``"seq-mean-token-sum"``  (1/m) Σ_b s_b               E[Σ_t x_t], e.g. the sequence KL
    ``"seq-mean-token-mean"`` (1/m) Σ_b s_b / L_b         E[(1/L) Σ_t x_t]
    ``"token-mean"``          Σ_b s_b / Σ_b L_b           E[Σ_t x_t] / E[L] (a ratio)
    ``"seq-sum"``             Σ_b s_b                     m·E[Σ_t x_t] (the batch total)
    ========================  ==========================  =================================

    These are verl's ``loss_agg_mode`` conventions (``"seq-mean-token-sum-norm"`` and Dr.
    GRPO's constant normaliser are ``"seq-sum"`` divided by a constant) and TRL's
    (``"grpo"`` is seq-mean-token-mean, ``"bnpo"``/``"dapo"`` token-mean), except that a
    row with no token does not count as a sequence (verl divides by B); with no empty row
    they agree exactly.

    The token-mean's standard error is the delta-method (linearised ratio) one:
    SE² = Σ_b (s_b − R̂ L_b)² / (m (m − 1) L̄²), R̂ the value and L̄ the mean length. It is
    the uncertainty of the token-mean as an estimate of E[Σ_t x_t]/E[L], the per-token
    average over the distribution of sequences; it is *not* sd(x)/√(number of tokens),
    which would treat dependent tokens as independent. The ratio is biased by O(1/m).

    No token at all (an all-masked batch): value 0, stderr inf, not ``reliable``; with one
    sequence stderr is inf. ``dof`` is static, B − 1, counting every row: where some rows
    are empty the true count is ``diagnostics["num_sequences"]`` − 1 and :meth:`ci` is
    slightly too narrow. Never raises under ``jit`` for any mask.

    Args:
      x: ``[B, T]`` per-token terms (anything at masked positions: it is never used, and
        its gradient is exactly 0).
      mask: ``[B, T]`` bool or 0/1.
      mode: one of ``AGGREGATIONS``.

    Returns:
      ``Estimate`` with scalar value and stderr, ``num_samples`` = B, ``dof`` = B − 1,
      ``pareto_k`` the tail diagnostic of the per-sequence values (NaN for B ≤ 20) and
      ``diagnostics`` ``num_sequences`` (m) and ``num_tokens`` (Σ L_b).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxkl.rl import aggregate
      >>> x = jnp.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
      >>> mask = jnp.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # the last row is padding
      >>> est = aggregate(x, mask, "seq-mean-token-sum")
      >>> float(est.value), float(est.stderr), float(est.diagnostics["num_sequences"])
      (5.0, 1.0, 2.0)
      >>> float(aggregate(x, jnp.zeros((3, 3), bool), "token-mean").stderr)  # no token
      inf
    """
    value = aggregate_value(x, mask, mode)
    (x,) = float_inputs("jaxkl.rl.aggregate", x=x)
    mask = as_mask("jaxkl.rl.aggregate", mask, x.shape)
    sums, lengths, present = _rows(x, mask)
    if mode == "token-mean":
        # Linearised ratio: the units e_b = s_b − R̂ L_b have mean 0 and give R̂'s error.
        units = sums - value * lengths
        _, se_units, m = row_mean_stderr(units, present)
        mean_length = jnp.sum(lengths) / jnp.maximum(m, 1.0)
        stderr = jnp.where(mean_length > 0, se_units / jnp.maximum(mean_length, 1.0), jnp.inf)
        # mean_length ≥ 1 whenever a row is present, so the maximum above never binds.
        pareto_k = _khat(units, present, 0.0)
    else:
        values = _per_sequence(mode, sums, lengths, present)
        mean, stderr, m = row_mean_stderr(values, present)
        if mode == "seq-sum":
            stderr = jnp.where(m >= 2, m * stderr, jnp.inf)  # never 0·inf
        pareto_k = _khat(values, present, mean)
    stderr = jnp.where(jnp.isinf(value), jnp.inf, stderr)
    b = x.shape[0]
    diagnostics = {"num_sequences": m, "num_tokens": jnp.sum(lengths)}
    return Estimate(value, stderr, b, max(b - 1, 0), pareto_k, diagnostics)
