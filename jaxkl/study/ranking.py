"""Which estimator is best on a case: 1 / (MSE × seconds), named only when resolved.

Precision per second 1/(variance × seconds) rewards a biased estimator for its small
variance; the error a user actually gets is the mean squared error about the truth, so
the score is 1/(MSE × seconds per estimate) — the inverse of the error × time product,
which does not depend on N for an unbiased estimator with variance ∝ 1/N.

Both factors are uncertain: the MSE by its bootstrap interval over replicates, the time by
the distribution-free interval of its median over repeated runs. An estimator's score
interval is [1/(MSE_hi · s_hi), 1/(MSE_lo · s_lo)]. The top scorer is named best only
when its interval lies entirely above every other estimator's; otherwise the result is
"not resolved", listing the estimators whose intervals overlap the top one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rank_case", "score"]


def score(row: Mapping[str, Any], timing: Mapping[str, Any] | None) -> dict[str, float]:
    """``{"score", "lo", "hi"}`` = 1/(MSE·s) with its interval; NaN without a timing."""
    if not timing:
        return {"score": math.nan, "lo": math.nan, "hi": math.nan}

    def inv(mse, sec):
        return 1.0 / (mse * sec) if mse > 0 and sec > 0 and math.isfinite(mse * sec) else 0.0

    return {
        "score": inv(row["mse"], timing["median"]),
        "lo": inv(row["mse_hi"], timing["high"]),
        "hi": inv(row["mse_lo"], timing["low"]),
    }


def rank_case(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rank one case's estimators by 1/(MSE·s).

    Args:
      entries: one per estimator: ``{"estimator", "row", "timing"}`` with ``row`` the
        metrics row at the compared N (needs mse, mse_lo, mse_hi) and ``timing`` its
        :func:`jaxkl.study.timing.time_estimator` record.

    Returns:
      ``{"ranked": [{"estimator", "score", "lo", "hi"}, …] (best first), "best": name or
      None, "resolved": bool, "contenders": [names whose interval overlaps the top]}``.
    """
    ranked = []
    for e in entries:
        s = score(e["row"], e.get("timing"))
        if math.isfinite(s["score"]):
            ranked.append({"estimator": e["estimator"], **s})
    ranked.sort(key=lambda r: -r["score"])
    if not ranked:
        return {"ranked": [], "best": None, "resolved": False, "contenders": []}
    top = ranked[0]
    contenders = [r["estimator"] for r in ranked[1:] if r["hi"] >= top["lo"]]
    resolved = not contenders and top["score"] > 0
    return {
        "ranked": ranked,
        "best": top["estimator"] if resolved else None,
        "resolved": resolved,
        "contenders": [top["estimator"], *contenders] if not resolved else [],
    }
