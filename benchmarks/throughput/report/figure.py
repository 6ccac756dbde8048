"""``throughput.png``: analytic GB/s and fraction of the read ceiling, Monte Carlo against
the RNG ceiling, and the precision-per-second gain of each variance-reduction option."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.throughput.harness import median
from benchmarks.throughput.records import section_rows
from benchmarks.throughput.sections.variance import PAIRS
from jaxkl.study import new_figure

WORKLOAD_STYLE = {
    "normal": ("C0", "o", "Normal [B, D]"),
    "mvn_diag": ("C1", "s", "MultivariateNormalDiag"),
    "mvn_tril": ("C2", "^", "MultivariateNormalTriL"),
    "categorical": ("C3", "D", "Categorical"),
}


def figure(records: dict[str, Any], cfg: dict[str, Any]):
    """Four panels: analytic GB/s, fraction of the read ceiling, Monte Carlo, variance."""
    fig, axes = new_figure(2, 2, figsize=(11.5, 8.5))
    ax_gbs, ax_frac, ax_mc, ax_var = axes.ravel()
    analytic = [r for r in section_rows(records, "analytic") if r.get("fraction") is not None]
    for wl, (color, marker, label) in WORKLOAD_STYLE.items():
        pts = sorted((r for r in analytic if r["workload"] == wl), key=lambda r: r["bytes_in"])
        if not pts:
            continue
        mb = [r["bytes_in"] / 1e6 for r in pts]
        ax_gbs.scatter(mb, [r["throughput"] for r in pts], color=color, marker=marker, label=label)
        ax_frac.scatter(mb, [r["fraction"] for r in pts], color=color, marker=marker, label=label)
    if analytic:
        # One ceiling per byte count (kernels on the same arrays share it): the median.
        by_bytes: dict[int, list] = {}
        for r in analytic:
            by_bytes.setdefault(r["bytes_in"], []).append(r["ceiling"])
        sizes = sorted(by_bytes)
        ax_gbs.plot(
            [nb / 1e6 for nb in sizes],
            [median(by_bytes[nb]) for nb in sizes],
            color="0.5",
            ls="--",
            lw=1,
            label="read ceiling (same bytes, same run)",
        )
    tg = cfg["targets"]
    ax_frac.axhline(
        tg["gaussian_of_read"],
        color="C1",
        ls=":",
        lw=1,
        label=f"target Gaussian {tg['gaussian_of_read']}",
    )
    ax_frac.axhline(
        tg["categorical_of_read"],
        color="C3",
        ls=":",
        lw=1,
        label=f"target Categorical {tg['categorical_of_read']}",
    )
    for ax in (ax_gbs, ax_frac):
        ax.set_xscale("log")
        ax.set_xlabel("parameter bytes read per call (MB)")
        ax.grid(alpha=0.3, which="both")
    ax_gbs.set_yscale("log")
    ax_gbs.set_ylabel("GB/s")
    ax_gbs.set_title("(a) analytic KL throughput")
    if ax_gbs.get_legend_handles_labels()[0]:
        ax_gbs.legend(fontsize=7)
    ax_frac.set_ylabel("fraction of the read ceiling")
    ax_frac.set_title("(b) analytic KL / read ceiling")
    ax_frac.legend(fontsize=7)

    mc = [
        r
        for r in section_rows(records, "monte_carlo") + section_rows(records, "peers")
        if r.get("unit") == "M sample-dims/s" and r.get("throughput")
    ]
    if mc:
        top = max(r["count"] for r in mc)
        mc = [r for r in mc if r["count"] == top]
        ceiling = median([r["ceiling"] for r in mc])
        labels = ["RNG ceiling (threefry)"] + [
            r["workload"].replace("_", " ", 1) if r["section"] == "monte_carlo" else r["impl"]
            for r in mc
        ]
        values = [ceiling] + [r["throughput"] for r in mc]
        colors = ["0.6"] + ["C0" if r["section"] == "monte_carlo" else "C4" for r in mc]
        ys = np.arange(len(values))[::-1]
        ax_mc.barh(ys, values, color=colors)
        ax_mc.set_yticks(ys, labels, fontsize=7)
        for y, val, r in zip(ys[1:], values[1:], mc, strict=True):
            ax_mc.text(val, y, f" {r['fraction']:.2f}", va="center", fontsize=7)
        ax_mc.axvline(
            tg["mc_of_rng"] * ceiling,
            color="k",
            ls=":",
            lw=1,
            label=f"{tg['mc_of_rng']} × RNG ceiling",
        )
        b, n, d = mc[0]["batch"], mc[0]["samples"], mc[0]["event"]
        ax_mc.set_title(f"(c) Monte Carlo, B={b}, N={n}, D={d} (labels: fraction)")
        ax_mc.legend(fontsize=7, loc="lower right")
    ax_mc.set_xlabel("M sample-dims/s")

    var = [r for r in section_rows(records, "variance") if r.get("gain") is not None]
    options = list(dict.fromkeys(r["impl"] for r in var))
    width = 0.8 / max(len(options), 1)
    for i, option in enumerate(options):
        xs, gains = [], []
        for j, pair in enumerate(PAIRS):
            row = next((r for r in var if r["workload"] == pair and r["impl"] == option), None)
            if row is not None and math.isfinite(row["gain"]):
                xs.append(j + (i - (len(options) - 1) / 2) * width)
                gains.append(row["gain"])
        ax_var.bar(xs, gains, width=width, label=option, color=f"C{i}")
    ax_var.axhline(
        tg["close_pair_gain"],
        color="k",
        ls=":",
        lw=1,
        label=f"goal {tg['close_pair_gain']:g}× (close pair)",
    )
    ax_var.axhline(1.0, color="0.5", lw=0.8)
    ax_var.set_xticks(range(len(PAIRS)), [_pair_label(records, p) for p in PAIRS], fontsize=8)
    ax_var.set_yscale("log")
    ax_var.set_ylabel("precision per second / plain k1")
    ax_var.set_title(f"(d) variance reduction, n={cfg['variance']['num_samples']}")
    ax_var.legend(fontsize=7, ncol=2)
    ax_var.grid(alpha=0.3, axis="y", which="both")
    return fig


def _pair_label(records, pair: str) -> str:
    """The variance pair's name with its exact KL."""
    row = next((r for r in section_rows(records, "variance", pair) if "exact" in r), None)
    return pair if row is None else f"{pair}\nKL={row['exact']:.3g}"
