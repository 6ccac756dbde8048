"""Across-replicate statistics of an estimator at each sample size, from its own verdicts.

Every statistic is read off the :class:`jaxkl.Estimate` the public estimator returned for
each replicate: its interval is ``est.ci(0.95)`` (Student-t with the estimator's own
``dof``), its verdict ``est.reliable``, its tail diagnostic ``est.pareto_k``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jaxkl.estimators.estimate import Estimate, t_quantile
from jaxkl.study.bootstrap import LEVEL, bootstrap_mse

__all__ = ["per_n_metrics", "share"]


def share(hits: np.ndarray) -> tuple[float, float, int]:
    """(share of True, its binomial standard error √(s(1 − s)/m), m); NaN when m = 0."""
    hits = np.asarray(hits, bool)
    m = int(hits.size)
    if m == 0:
        return math.nan, math.nan, 0
    s = float(hits.mean())
    return s, math.sqrt(s * (1.0 - s) / m), m


def per_n_metrics(
    estimates: Sequence[Estimate],
    truth: float,
    counts: np.ndarray,
    level: float = LEVEL,
) -> list[dict]:
    """Bias, variance, MSE, coverage and reliability across replicates at each sample size.

    Args:
      estimates: one :class:`Estimate` per sample size, each field ``[R]`` over replicates
        (``num_samples`` is N, ``dof`` the estimator's own).
      truth: the true KL.
      counts: ``[B, R]`` bootstrap resample counts, for the MSE interval.
      level: the interval level (0.95).

    Returns:
      One dict per sample size:

      * n, dof, t (the Student-t quantile the interval uses);
      * mean, bias, se_bias (sd/√R), bias_z (bias/se_bias), variance (ddof 1), finite
        (share of finite values; mean/variance are over those);
      * mse about the truth and its bootstrap interval mse_lo, mse_hi (inf when any value
        is not finite), rel_rmse;
      * coverage, coverage_se, coverage_m: share of replicates whose ``ci(level)`` holds the
        truth, among those with a finite interval (an infinite interval — stderr = inf,
        e.g. N = 1 — says nothing and is not counted);
      * coverage_mean, coverage_mean_se: the same for the estimator's own mean at this N
        (the across-replicate mean): whether the stderr describes the spread, whatever
        the bias;
      * reliable, reliable_se: share of replicates with ``est.reliable``;
      * coverage_reliable, coverage_reliable_se, coverage_reliable_m: coverage among the
        reliable replicates;
      * median_pareto_k: median of ``est.pareto_k`` (NaN where the estimator reports none);
      * mean_ess: mean Kish ESS (importance sampling only).
    """
    values = np.stack([np.asarray(e.value, np.float64) for e in estimates], axis=1)
    mse_lo, mse_hi = bootstrap_mse(values, counts, truth, level)
    rows = []
    for j, est in enumerate(estimates):
        v = values[:, j]
        low, high = (np.asarray(a, np.float64) for a in est.ci(level))
        reliable = np.asarray(est.reliable, bool)
        finite = np.isfinite(v)
        vf = v[finite]
        mean = float(vf.mean()) if vf.size else math.nan
        var = float(vf.var(ddof=1)) if vf.size > 1 else math.nan
        se_bias = math.sqrt(var / vf.size) if vf.size > 1 else math.nan
        mse = float(np.mean(np.square(v - truth))) if finite.all() else math.inf
        bounded = finite & np.isfinite(low) & np.isfinite(high)
        covered = (low <= truth) & (truth <= high)
        cov, cov_se, cov_m = share(covered[bounded])
        cov_mean, cov_mean_se, _ = share(((low <= mean) & (mean <= high))[bounded])
        rel, rel_se, _ = share(reliable)
        cov_r, cov_r_se, cov_r_m = share(covered[reliable & bounded])
        k = np.asarray(est.pareto_k, np.float64)
        k = k[~np.isnan(k)]
        row = {
            "n": int(est.num_samples),
            "dof": int(est.dof),
            "t": t_quantile(0.5 + level / 2.0, est.dof),
            "mean": mean,
            "bias": mean - truth,
            "se_bias": se_bias,
            "bias_z": (mean - truth) / se_bias if se_bias and se_bias > 0 else math.nan,
            "variance": var,
            "finite": float(finite.mean()),
            "mse": mse,
            "mse_lo": float(mse_lo[j]),
            "mse_hi": float(mse_hi[j]),
            "rel_rmse": math.sqrt(mse) / abs(truth) if truth != 0 else math.nan,
            "coverage": cov,
            "coverage_se": cov_se,
            "coverage_m": cov_m,
            "coverage_mean": cov_mean,
            "coverage_mean_se": cov_mean_se,
            "reliable": rel,
            "reliable_se": rel_se,
            "coverage_reliable": cov_r,
            "coverage_reliable_se": cov_r_se,
            "coverage_reliable_m": cov_r_m,
            "median_pareto_k": float(np.median(k)) if k.size else math.nan,
        }
        ess = getattr(est, "ess", None)
        if ess is not None:
            e = np.asarray(ess, np.float64)
            row["mean_ess"] = (
                float(np.mean(e[np.isfinite(e)])) if np.isfinite(e).any() else math.nan
            )
        rows.append(row)
    return rows
