"""Figures, metrics rows and the markdown report of the bias–variance study."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxkl.study.bias_variance import THEORY, slopes_table
from jaxkl.study.plotting import new_figure

__all__ = ["METRIC_COLUMNS", "figures", "metric_rows", "report_markdown"]

METRIC_COLUMNS = (
    "case",
    "estimator",
    "n",
    "truth",
    "mean",
    "bias",
    "se_bias",
    "variance",
    "mse",
    "rel_rmse",
    "coverage",
    "finite",
    "mean_ess",
    "mean_pareto_k",
    "seconds_per_estimate",
    "precision_per_second",
    "replicates",
    "truth_source",
)

STYLE = {
    "k1": ("tab:blue", "o"),
    "k2": ("tab:orange", "s"),
    "k3": ("tab:green", "^"),
    "importance": ("tab:purple", "v"),
    "importance_snis": ("tab:pink", "D"),
    "knn": ("tab:brown", "P"),
    "density_weighted": ("tab:gray", "x"),
}
LABEL = {
    "k1": "k1",
    "k2": "k2",
    "k3": "k3",
    "importance": "IS",
    "importance_snis": "SNIS",
    "knn": "k-NN",
    "density_weighted": "q·(log q − log p) (pitfall)",
}


def metric_rows(records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Flatten cell records into the rows of ``metrics.csv``."""
    rows = []
    for rec in records:
        for r in rec["rows"]:
            row = {c: r.get(c, "") for c in METRIC_COLUMNS}
            row.update(
                case=rec["case"],
                estimator=rec["estimator"],
                truth=rec["truth"],
                replicates=rec["replicates"],
                truth_source=rec["truth_source"],
            )
            rows.append(row)
    return rows


def _by_case(records):
    cases: dict[str, list] = {}
    for rec in records:
        cases.setdefault(rec["case"], []).append(rec)
    return cases


def _grid(n_panels):
    ncols = min(4, n_panels)
    nrows = math.ceil(n_panels / ncols)
    return nrows, ncols


def _panel_axes(n_panels, title):
    nrows, ncols = _grid(n_panels)
    fig, axes = new_figure(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    fig.suptitle(title)
    flat = axes.ravel()
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat


def _guide(ax, n, anchor_n, anchor_y, slope, label):
    n = np.asarray(n, float)
    ax.plot(n, anchor_y * (n / anchor_n) ** slope, color="black", lw=0.8, ls=":", label=label)


def figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Three figures, one panel per case: |bias| vs N, variance vs N (log-log), coverage."""
    cases = _by_case(records)
    out = {}

    fig, axes = _panel_axes(
        len(cases), "|bias| vs N (filled: > 2 SE from 0; dashed: 2·SE noise floor of k1)"
    )
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            color, marker = STYLE[rec["estimator"]]
            n = np.array([r["n"] for r in rec["rows"]])
            b = np.abs([r["bias"] for r in rec["rows"]])
            se = np.array([r["se_bias"] for r in rec["rows"]])
            sig = b > 2 * se
            ax.plot(n, b, color=color, lw=1, label=LABEL[rec["estimator"]])
            ax.scatter(n[sig], b[sig], color=color, marker=marker, s=14)
            # Open markers: within 2 SE of zero ('x' has no face, so it is drawn thin).
            hollow = (
                {"facecolors": "none", "edgecolors": color}
                if marker != "x"
                else {"color": color, "linewidths": 0.5}
            )
            ax.scatter(n[~sig], b[~sig], marker=marker, s=14, **hollow)
            if rec["estimator"] == "k1":
                ax.plot(n, 2 * se, color=color, ls="--", lw=0.8)
                _guide(ax, n, n[0], 2 * se[0], -0.5, "∝ N^-1/2")
        ax.set(
            xscale="log",
            yscale="log",
            title=f"{name}: KL = {recs[0]['truth']:.4g}",
            xlabel="N samples",
        )
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    out["bias_vs_n.png"] = fig

    fig, axes = _panel_axes(len(cases), "variance of the estimate vs N (dotted: theory ∝ 1/N)")
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            color, marker = STYLE[rec["estimator"]]
            n = np.array([r["n"] for r in rec["rows"]])
            v = np.array([r["variance"] for r in rec["rows"]])
            ax.plot(n, v, color=color, marker=marker, ms=3, lw=1, label=LABEL[rec["estimator"]])
        ref = next((r for r in recs if r["estimator"] == "k1"), recs[0])
        n = np.array([r["n"] for r in ref["rows"]])
        v = np.array([r["variance"] for r in ref["rows"]])
        ok = np.isfinite(v) & (v > 0)
        if ok.any():
            _guide(ax, n, n[ok][0], v[ok][0], -1.0, "∝ 1/N")
        ax.set(
            xscale="log",
            yscale="log",
            title=f"{name}: KL = {recs[0]['truth']:.4g}",
            xlabel="N samples",
        )
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    out["variance_vs_n.png"] = fig

    fig, axes = _panel_axes(len(cases), "coverage of value ± 1.96·stderr (target 0.95)")
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            color, marker = STYLE[rec["estimator"]]
            n = [r["n"] for r in rec["rows"]]
            c = [r["coverage"] for r in rec["rows"]]
            ax.plot(n, c, color=color, marker=marker, ms=3, lw=1, label=LABEL[rec["estimator"]])
        ax.axhline(0.95, color="black", lw=0.8, ls=":")
        ax.set(xscale="log", ylim=(0, 1.02), title=name, xlabel="N samples")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    out["coverage_vs_n.png"] = fig
    return out


def _fmt(x, spec=".3g"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def _nearest_row(rows, n_target):
    return min(rows, key=lambda r: (abs(math.log(r["n"]) - math.log(n_target)), r["n"]))


def report_markdown(
    records: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
    *,
    wall_seconds: float,
    devices: Sequence[str],
) -> str:
    """The study's ``report.md``: cases, slopes vs theory, winners at N ≈ compare_n."""
    cases = _by_case(records)
    min_n = cfg["report"]["slope_min_n"]
    compare_n = cfg["report"]["compare_n"]
    lines = [
        "# Bias–variance study of KL estimators",
        "",
        f"{cfg['sweep']['replicates']} replicates per cell (k-NN: {cfg['knn']['replicates']}), "
        f"N = 2^{cfg['sweep']['log2_min']} … 2^{cfg['sweep']['log2_max']} "
        f"(k-NN up to {cfg['knn']['max_n']}, k = {cfg['knn']['k']}), seed {cfg['seed']}; "
        f"{len(devices)} device(s): {', '.join(devices)}; wall time {wall_seconds:.1f} s.",
        "",
        "![bias](bias_vs_n.png)",
        "",
        "![variance](variance_vs_n.png)",
        "",
        "![coverage](coverage_vs_n.png)",
        "",
        "## Cases",
        "",
        "| case | problem | KL | truth from | IS proposal |",
        "|---|---|---|---|---|",
    ]
    for name, recs in cases.items():
        prop = next((r["proposal"] for r in recs if r["proposal"]), "—")
        lines.append(
            f"| {name} | {recs[0]['description']} | {recs[0]['truth']:.6g} | "
            f"{recs[0]['truth_source']} | {prop} |"
        )
    lines += [
        "",
        "## Slopes against theory",
        "",
        f"Least-squares slopes of log variance and log |bias| against log N for N ≥ {min_n}, "
        "with 95% confidence intervals. For unbiased estimators the measured |bias| is noise "
        "of size SE ∝ N^-1/2, so its slope is not a property of the estimator.",
        "",
        "| case | estimator | variance slope [95% CI] | theory | |bias| slope [95% CI] | "
        "theory of the bias |",
        "|---|---|---|---|---|---|",
    ]
    slopes = {}
    for name, recs in cases.items():
        for rec in recs:
            s = slopes_table(rec, min_n)
            slopes[(name, rec["estimator"])] = s
            v, b = s["variance"], s["abs_bias"]
            lines.append(
                f"| {name} | {LABEL[rec['estimator']]} | {_fmt(v['slope'], '.3f')} "
                f"[{_fmt(v['lo'], '.3f')}, {_fmt(v['hi'], '.3f')}] | "
                f"{_fmt(s['theory_variance_slope'], '.0f')} | {_fmt(b['slope'], '.3f')} "
                f"[{_fmt(b['lo'], '.3f')}, {_fmt(b['hi'], '.3f')}] | {s['theory_bias']} |"
            )
    lines += [
        "",
        f"## Best estimator per case at N ≈ {compare_n}",
        "",
        "By mean squared error about the truth, and by precision per second "
        "1 / (variance × seconds per estimate). The pitfall is excluded from the ranking. "
        "Seconds per estimate: the group's run time (compile excluded) per replicate, "
        "times N / N_max for the one-pass estimators (an estimate at N costs its share of "
        "the N_max pass) and N² / ΣN² for k-NN (each N is computed separately).",
        "",
        "| case | N | best by MSE (MSE) | best by precision/s (1/(var·s)) | all by MSE |",
        "|---|---|---|---|---|",
    ]
    for name, recs in cases.items():
        rated = []
        for rec in recs:
            if rec["estimator"] == "density_weighted":
                continue
            row = _nearest_row(rec["rows"], compare_n)
            rated.append((rec["estimator"], row))
        if not rated:
            continue
        n_used = rated[0][1]["n"]
        by_mse = sorted(rated, key=lambda t: _key(t[1]["mse"]))
        by_pps = sorted(rated, key=lambda t: -_key(t[1]["precision_per_second"], -1.0))
        lines.append(
            f"| {name} | {n_used} | {LABEL[by_mse[0][0]]} ({_fmt(by_mse[0][1]['mse'])}) | "
            f"{LABEL[by_pps[0][0]]} ({_fmt(by_pps[0][1]['precision_per_second'])}) | "
            + ", ".join(f"{LABEL[e]} {_fmt(r['mse'])}" for e, r in by_mse)
            + " |"
        )
    lines += [
        "",
        "## How to read this",
        "",
        "- Each replicate draws N_max samples once and reports the estimate after the first N "
        "for every N, so one replicate's estimates at different N are correlated. Replicates "
        "are independent, so the per-N statistics across replicates (bias, variance, "
        "coverage) are valid; the curves are smoother than independent draws per N would be.",
        "- Coverage is the share of replicates whose value ± 1.96·stderr contains the truth; "
        "with heavy-tailed terms (k3 and IS on far pairs) the stderr itself is unreliable at "
        "small N and coverage falls below 0.95.",
        "- The density-weighted average mean(q(x)·(log q(x) − log p(x))) over x ~ q counts q "
        "twice (once by sampling, once by the factor): its limit is ∫q²·log(q/p), not KL. "
        "The right estimator is the plain mean of log q − log p (k1).",
        "- IS / SNIS estimate KL(q‖p) from the named proposal; mean ESS (every N) and PSIS k̂ "
        "(fitted at N ≈ compare_n and at N_max) are in metrics.csv (k̂ < 0.5 good, 0.5–0.7 "
        "usable, > 0.7 unreliable).",
        "",
        "Theory used above:",
        "",
    ]
    for est, th in THEORY.items():
        lines.append(f"- {LABEL[est]}: variance ∝ N^{th['variance_slope']:.0f}; bias {th['bias']}.")
    return "\n".join(lines) + "\n"


def _key(x, bad=math.inf):
    return x if isinstance(x, float | int) and math.isfinite(x) else bad
