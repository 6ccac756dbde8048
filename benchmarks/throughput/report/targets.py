"""The performance targets of issue #6, each with the figure measured in this run."""

from __future__ import annotations

from typing import Any

from benchmarks.throughput.peer_libraries import PEER_PACKAGES
from benchmarks.throughput.records import largest, section_rows


def evaluate_targets(records: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue #6 with the measured figure and whether it is met."""
    tg = cfg["targets"]
    out = []

    def add(name, row, measured_key, target, what, *, multiple=False):
        measured = None if row is None else row.get(measured_key)
        out.append(
            {
                "target": name,
                "what": what,
                "goal": target,
                "measured": measured,
                "met": None if measured is None else bool(measured >= target),
                # A multiple (×) of a baseline rather than a fraction of a ceiling.
                "multiple": multiple,
            }
        )

    if records.get("analytic") is not None:
        cat = [r for r in section_rows(records, "analytic", "categorical") if r.get("fraction")]
        cat_row = max(cat, key=lambda r: r["event"]) if cat else None
        # Each goal against the strictest read ceiling measured, then against a
        # single-threaded numpy.sum over the same bytes, timed in the same repeats.
        for key, suffix, what in (
            ("fraction", "", "of the read ceiling"),
            ("fraction_of_numpy_read", ", one-thread numpy.sum ceiling", "of the numpy.sum read"),
        ):
            for wl, label in (("normal", "Normal"), ("mvn_diag", "MultivariateNormalDiag")):
                row = largest(section_rows(records, "analytic", wl))
                add(
                    f"analytic {label}{suffix}",
                    row,
                    key,
                    tg["gaussian_of_read"],
                    _size_label(row, what),
                )
            add(
                f"analytic Categorical{suffix}",
                cat_row,
                key,
                tg["categorical_of_read"],
                _size_label(cat_row, what, categorical=True),
            )
    for wl in ("mvn_diag", "categorical", "mvn_tril", "mc_kl_k1", "knn"):
        mine = [
            r
            for r in section_rows(records, "versus", wl)
            if r["impl"] == "jaxkl" and r.get("vs_fastest_peer") is not None
        ]
        if wl == "knn":  # measured in its own section, knn_tree
            mine += [r for r in section_rows(records, "knn_tree") if r.get("vs_fastest_peer")]
        if mine:
            worst = min(mine, key=lambda r: r["vs_fastest_peer"])
            add(
                f"{wl} ÷ fastest peer, every shape",
                worst,
                "vs_fastest_peer",
                1.0,
                f"worst of {len(mine)} shapes: B={worst['batch']}, event={worst['event']}, "
                f"vs {worst['fastest_peer']} (×)",
                multiple=True,
            )
    peer_rows = [r for r in section_rows(records, "peers") if r.get("throughput")]
    for wl, ours in (("mvn_diag", "jaxkl.analytic.mvn_diag"), ("mc_kl_k1", "jaxkl.mc_kl k1")):
        mine = [r for r in peer_rows if r["workload"] == wl and r["impl"] == ours]
        others = [
            r
            for r in peer_rows
            if r["workload"] == wl and r["impl"].split()[0].split(".")[0] in PEER_PACKAGES
        ]
        if mine and others:
            fastest = max(others, key=lambda r: r["throughput"])
            ratio = {"speedup": mine[0]["throughput"] / fastest["throughput"]}
            add(
                f"{wl} against the fastest peer",
                ratio,
                "speedup",
                1.0,
                f"{ours} ÷ {fastest['impl']} (×), same run",
                multiple=True,
            )
    if records.get("monte_carlo") is not None:
        for est in cfg["monte_carlo"]["estimators"]:
            row = largest(section_rows(records, "monte_carlo", f"mc_kl_{est}"), key="count")
            add(
                f"mc_kl {est}",
                row,
                "fraction",
                tg["mc_of_rng"],
                _size_label(row, "of the RNG ceiling"),
            )
    if records.get("variance") is not None:
        close = [r for r in section_rows(records, "variance", "close") if r.get("gain") is not None]
        best = max(close, key=lambda r: r["gain"]) if close else None
        add(
            "precision per second, close pair",
            best,
            "gain",
            tg["close_pair_gain"],
            "best option over plain k1" + (f" ({best['impl']})" if best else ""),
            multiple=True,
        )
    return out


def _size_label(row, what, categorical=False) -> str:
    """Where a target was measured: ``what`` and the row's shape."""
    if row is None:
        return what
    if row["section"] == "monte_carlo":
        return f"{what}, B={row['batch']}, N={row['samples']}, D={row['event']}"
    if categorical:
        return f"{what}, K={row['event']}, B={row['batch']}"
    return f"{what}, B={row['batch']}, D={row['event']}"
