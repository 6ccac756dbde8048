"""Across-replicate statistics of an estimator at each sample size, and log-log slopes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["loglog_slope", "per_n_metrics", "t_quantile_975"]

# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom (1.96 beyond).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile_975(df: int) -> float:
    """0.975 quantile of Student's t with ``df`` degrees of freedom (normal beyond 30)."""
    if df < 1:
        return math.inf
    return _T975[df - 1] if df <= len(_T975) else 1.96


def per_n_metrics(
    values: np.ndarray,
    stderrs: np.ndarray,
    truth: float,
    sizes: Sequence[int],
    extras: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """Bias, variance, MSE and coverage across replicates at each sample size.

    Args:
      values: ``[R, J]`` estimates of R replicates at J sample sizes.
      stderrs: ``[R, J]`` the standard error each estimate reported.
      truth: the true KL.
      sizes: the J sample sizes.
      extras: optional ``name -> [R, J]`` diagnostics averaged as ``mean_<name>``.

    Returns:
      One dict per sample size: n, mean, bias, se_bias (sd/√R), variance (ddof 1), mse
      (mean squared error about the truth), rel_rmse (√mse/|truth|), coverage (share of
      replicates with |value − truth| ≤ 1.96·stderr, among those with a finite stderr;
      NaN if none), finite (share of finite estimates) and ``mean_<extra>``.
    """
    values = np.asarray(values, np.float64)
    stderrs = np.asarray(stderrs, np.float64)
    r = values.shape[0]
    rows = []
    for j, n in enumerate(sizes):
        v, s = values[:, j], stderrs[:, j]
        finite = np.isfinite(v)
        vf = v[finite]
        mean = vf.mean() if vf.size else math.nan
        var = vf.var(ddof=1) if vf.size > 1 else math.nan
        mse = np.mean(np.square(vf - truth)) if vf.size else math.nan
        has_se = finite & np.isfinite(s)
        coverage = (
            float(np.mean(np.abs(v[has_se] - truth) <= 1.96 * s[has_se]))
            if has_se.any()
            else math.nan
        )
        row = {
            "n": int(n),
            "mean": mean,
            "bias": mean - truth,
            "se_bias": math.sqrt(var / vf.size) if vf.size > 1 else math.nan,
            "variance": var,
            "mse": mse,
            "rel_rmse": math.sqrt(mse) / abs(truth) if truth != 0 else math.nan,
            "coverage": coverage,
            "finite": float(finite.mean()) if r else math.nan,
        }
        for name, arr in (extras or {}).items():
            col = np.asarray(arr, np.float64)[:, j]
            col = col[np.isfinite(col)]
            row[f"mean_{name}"] = float(col.mean()) if col.size else math.nan
        rows.append(row)
    return rows


def loglog_slope(n: Sequence[float], y: Sequence[float], *, min_n: float = 1) -> dict:
    """Least-squares slope of log y against log n, with a 95% confidence interval.

    Points with n < ``min_n`` or a non-finite or non-positive y are left out.

    Returns:
      ``{"slope", "lo", "hi", "points"}``; NaNs when fewer than 3 points remain.

    Example:
      >>> loglog_slope([1, 10, 100], [1.0, 0.1, 0.01])["slope"]
      -1.0
    """
    n, y = np.asarray(n, np.float64), np.asarray(y, np.float64)
    keep = (n >= min_n) & np.isfinite(y) & (y > 0)
    x, z = np.log(n[keep]), np.log(y[keep])
    if x.size < 3:
        return {"slope": math.nan, "lo": math.nan, "hi": math.nan, "points": int(x.size)}
    xc = x - x.mean()
    slope = float(np.sum(xc * (z - z.mean())) / np.sum(xc * xc))
    resid = z - z.mean() - slope * xc
    se = math.sqrt(float(np.sum(resid * resid)) / (x.size - 2) / float(np.sum(xc * xc)))
    half = t_quantile_975(x.size - 2) * se
    return {
        "slope": round(slope, 12),
        "lo": slope - half,
        "hi": slope + half,
        "points": int(x.size),
    }
