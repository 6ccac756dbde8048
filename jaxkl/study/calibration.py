"""Calibration of an estimator against a known KL: bias, honesty of its stderr, coverage.

From replicates of (value, stderr) of one estimator on independent draws of a problem
whose KL is known in closed form, :func:`calibration_summary` gives each figure with its
own standard error: the bias (sd/√R), the replicates' sd over the root-mean-square
stderr (1 when the stderr is calibrated; SE ratio/√(2(R − 1))), and the coverage of the
truth by value ± q·stderr for the Student-t and the normal quantile (binomial SE).
:func:`kl_diag_gaussians` is the float64 truth for pairs of diagonal Gaussians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["calibration_summary", "kl_diag_gaussians"]


def kl_diag_gaussians(case: Mapping[str, Any]) -> float:
    """KL(N(μp, diag σp²) ‖ N(μq, diag σq²)) in float64.

    Args:
      case: ``p_loc``, ``p_scale``, ``q_loc``, ``q_scale``, each a list of d floats.

    Example:
      >>> kl_diag_gaussians({"p_loc": [0.0], "p_scale": [1.0], "q_loc": [1.0], "q_scale": [1.0]})
      0.5
    """
    sp, sq = np.asarray(case["p_scale"], float), np.asarray(case["q_scale"], float)
    dmu = np.asarray(case["q_loc"], float) - np.asarray(case["p_loc"], float)
    r = sp / sq
    return float(0.5 * np.sum(r**2 + (dmu / sq) ** 2 - 1.0 - 2.0 * np.log(r)))


def calibration_summary(draws: np.ndarray, truth: float, groups: int) -> dict[str, Any]:
    """Bias, stderr calibration and interval coverage of replicates, each with its SE.

    Args:
      draws: ``[R, 2]`` float64, one (value, stderr) per replicate.
      truth: the exact KL.
      groups: how many subsample groups the stderr is computed from: intervals use the
        97.5 % quantile of Student-t with ``groups − 1`` degrees of freedom.

    Returns:
      A dict of floats: ``bias`` ± ``bias_se``, ``relative_bias`` ± ``relative_bias_se``,
      ``sd_over_rms_stderr`` ± its SE, ``coverage_t`` and ``coverage_normal`` ± their
      SEs, and the inputs behind them (``replicates``, ``truth``, ``mean``, ``sd``,
      ``rms_stderr``, ``groups``, ``t_quantile``, ``nonfinite``).

    Example:
      >>> s = calibration_summary(np.array([[0.4, 0.045], [0.6, 0.045]]), 0.5, 10)
      >>> round(s["bias"], 12), s["coverage_t"], s["coverage_normal"]
      (0.0, 1.0, 0.0)
    """
    value, stderr = draws[:, 0], draws[:, 1]
    reps = len(value)
    sd = float(np.std(value, ddof=1))
    rms = float(np.sqrt(np.mean(stderr**2)))
    t = float(stats.t.ppf(0.975, groups - 1))
    out = {
        "replicates": reps,
        "truth": truth,
        "mean": float(np.mean(value)),
        "bias": float(np.mean(value)) - truth,
        "bias_se": sd / math.sqrt(reps),
        "relative_bias": (float(np.mean(value)) - truth) / truth,
        "relative_bias_se": sd / math.sqrt(reps) / truth,
        "sd": sd,
        "rms_stderr": rms,
        "sd_over_rms_stderr": sd / rms,
        "sd_over_rms_stderr_se": sd / rms / math.sqrt(2 * (reps - 1)),
        "groups": groups,
        "t_quantile": t,
        "nonfinite": int(np.sum(~np.isfinite(value))),
    }
    for name, q in (("t", t), ("normal", 1.96)):
        c = float(np.mean(np.abs(value - truth) <= q * stderr))
        out[f"coverage_{name}"] = c
        out[f"coverage_{name}_se"] = math.sqrt(c * (1 - c) / reps)
    return out
