"""The report's "jaxkl ÷ fastest peer" tables (also the README's summary)."""

from __future__ import annotations

from typing import Any

from benchmarks.throughput.records import section_rows
from benchmarks.throughput.report.format import format_value, markdown_table


def versus_tables(records) -> tuple[list[list[Any]], list[list[Any]]]:
    """(summary rows: workload, B, event, jaxkl, fastest peer, its fraction, ratio; detail)."""
    summary, detail = [], []
    for r in section_rows(records, "versus"):
        if r["impl"] == "jaxkl" and r.get("vs_fastest_peer") is not None:
            peer = next(
                p
                for p in section_rows(records, "versus")
                if p["workload"] == r["workload"]
                and p["batch"] == r["batch"]
                and p["event"] == r["event"]
                and p["impl"] == r["fastest_peer"]
            )
            summary.append(
                [
                    r["workload"],
                    r["batch"],
                    r["event"],
                    r["fraction"],
                    f"{r['fastest_peer']} {format_value(peer['fraction'])}",
                    f"**{r['vs_fastest_peer']:.2f}×**"
                    if r["vs_fastest_peer"] < 1.0
                    else f"{r['vs_fastest_peer']:.2f}×",
                ]
            )
        detail.append(
            [
                r["workload"],
                r["batch"],
                r["event"],
                r["impl"],
                r.get("throughput"),
                r.get("fraction"),
                r.get("note"),
            ]
        )
    for r in section_rows(records, "knn_tree"):
        if r.get("vs_fastest_peer") is None:
            continue
        ratio = r["vs_fastest_peer"]
        summary.append(
            [
                "knn",
                r["batch"],
                r["event"],
                f"{r['seconds']:.3g} s",
                f"scipy cKDTree {r['ceiling'] ** -1:.3g} s ({r['search']})",
                f"**{ratio:.2f}×**" if ratio < 1.0 else f"{ratio:.2f}×",
            ]
        )
    return summary, detail


def versus_report(records) -> list[str]:
    """Section ``versus``: the summary table, then every implementation's row."""
    rec = records.get("versus")
    if rec is None:
        return []
    summary, detail = versus_tables(records)
    status = ", ".join(f"{k}: {v}" for k, v in rec["status"].items())
    return [
        "## jaxkl ÷ fastest peer",
        "",
        "Each implementation is timed in turn with the read ceiling of the same arrays, "
        "repeat after repeat; its figure is the median of its per-repeat ratios to that "
        "ceiling, and the last column is jaxkl's figure over the fastest peer's (≥ 1 means "
        "jaxkl is at least as fast). `event` is D for the diagonal Gaussian, K for "
        "Categorical and d for MultivariateNormalTriL. `mc_kl_k1` rows (B, event = D, "
        "N draws in the detail table) are reparameterised k1 on a small batch, each timed "
        "with the RNG ceiling for its draws instead of the read ceiling (their GB/s column "
        "below is M sample-dims/s); jaxkl's call "
        "returns the whole Estimate (stderr, tail diagnostic), the peers' the mean. "
        "Peers in this run: " + status + ". A peer that is not installed or "
        "does not import is skipped; the reason is the text after its name.",
        "",
        markdown_table(
            ["workload", "B", "event", "jaxkl", "fastest peer (fraction)", "jaxkl ÷ fastest"],
            summary,
        ),
        "",
        "k-NN rows (`knn`, B = n = m, event = d) compare seconds per estimate of "
        '`knn_kl(method="tree")` and of scipy\'s `cKDTree` computing the same estimate '
        "(section `knn_tree` below).",
        "",
        "Every implementation, same run (GB/s of input bytes; fraction of the read ceiling):",
        "",
        markdown_table(
            ["workload", "B", "event", "implementation", "GB/s", "fraction", "note"], detail
        ),
        "",
    ]
