"""Figures, metrics rows, findings and the markdown report of the bias–variance study.

Every sentence the report (and the README section built from it, see
:mod:`jaxkl.study.readme_section`) states about the estimators is computed here from the
run's cell records, with its uncertainty: nothing is written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxkl.study.bias_variance import PAIRED_MIN_N, compared_row
from jaxkl.study.plotting import new_figure
from jaxkl.study.ranking import rank_case

__all__ = [
    "METRIC_COLUMNS",
    "by_case",
    "case_rankings",
    "expected_bias",
    "figures",
    "findings",
    "fmt_pm",
    "metric_rows",
    "ranking_sentence",
    "report_markdown",
    "theory_z",
]

METRIC_COLUMNS = (
    "case",
    "estimator",
    "n",
    "truth",
    "mean",
    "bias",
    "se_bias",
    "bias_z",
    "variance",
    "finite",
    "mse",
    "mse_lo",
    "mse_hi",
    "rel_rmse",
    "dof",
    "t",
    "coverage",
    "coverage_se",
    "coverage_m",
    "coverage_mean",
    "coverage_mean_se",
    "reliable",
    "reliable_se",
    "coverage_reliable",
    "coverage_reliable_se",
    "coverage_reliable_m",
    "median_pareto_k",
    "mean_ess",
    "mse_ratio_k1",
    "mse_ratio_k1_se",
    "replicates",
    "truth_source",
)

STYLE = {
    "k1": ("tab:blue", "o"),
    "k2": ("tab:orange", "s"),
    "k3": ("tab:green", "^"),
    "control_variate": ("tab:olive", "<"),
    "importance": ("tab:purple", "v"),
    "importance_snis": ("tab:pink", "D"),
    "knn": ("tab:brown", "P"),
    "density_weighted": ("tab:gray", "x"),
}
LABEL = {
    "k1": "k1",
    "k2": "k2",
    "k3": "k3",
    "control_variate": "k1 + control variate",
    "importance": "IS",
    "importance_snis": "SNIS",
    "knn": "k-NN",
    "density_weighted": "q·(log q − log p) (pitfall)",
}
PITFALL = "density_weighted"
# Thresholds of the generated statements, in standard errors.
BIAS_Z = 3.0  # a bias is "off the truth" beyond this many SE
COVERAGE_Z = 2.0  # coverage is "below 0.95" when coverage + 2·SE < 0.95
RELIABLE_SHARE = 0.95  # an estimator is called reliable where this share of replicates is
CV_LIMIT = 1.1  # issue #10: the control variate's MSE must stay ≤ 1.1 × k1's


# --------------------------------------------------------------------------- formatting


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def fmt(x, spec: str = ".3g") -> str:
    """A number for a table: '—' for None/NaN, '∞' for inf."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return format(x, spec)


def fmt_pm(value, se) -> str:
    """``value ± se`` with the value rounded to the SE's second significant digit."""
    if not _finite(value):
        return fmt(value)
    if not _finite(se) or se <= 0:
        return fmt(value, ".4g")
    decimals = max(0, 1 - math.floor(math.log10(se)))
    return f"{value:.{decimals}f} ± {se:.2g}"


def _pct(x) -> str:
    return "—" if not _finite(x) else f"{100 * x:.1f} %"


def by_case(records: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Records grouped by case, in run order."""
    cases: dict[str, list] = {}
    for rec in records:
        cases.setdefault(rec["case"], []).append(rec)
    return cases


def _rec(recs, name):
    return next((r for r in recs if r["estimator"] == name), None)


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


# --------------------------------------------------------------------------- figures


def _grid(n_panels):
    ncols = min(4, n_panels)
    return math.ceil(n_panels / ncols), ncols


def _panel_axes(n_panels, title):
    nrows, ncols = _grid(n_panels)
    fig, axes = new_figure(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    fig.suptitle(title)
    flat = axes.ravel()
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat


def _series(rec, key):
    return (
        np.array([r["n"] for r in rec["rows"]]),
        np.array([r.get(key, math.nan) for r in rec["rows"]], float),
    )


def figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Four figures, one panel per case: |bias|, variance, coverage and reliable share vs N."""
    cases = by_case(records)
    out = {}

    fig, axes = _panel_axes(
        len(cases), "|bias| vs N (filled: > 3 SE from 0; dashed: 3·SE of k1, the noise floor)"
    )
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            color, marker = STYLE[rec["estimator"]]
            n, bias = _series(rec, "bias")
            _, se = _series(rec, "se_bias")
            b = np.abs(bias)
            sig = b > BIAS_Z * se
            ax.plot(n, b, color=color, lw=1, label=LABEL[rec["estimator"]])
            ax.scatter(n[sig], b[sig], color=color, marker=marker, s=14)
            hollow = (
                {"facecolors": "none", "edgecolors": color}
                if marker != "x"
                else {"color": color, "linewidths": 0.5}
            )
            ax.scatter(n[~sig], b[~sig], marker=marker, s=14, **hollow)
            if rec["estimator"] == "k1":
                ax.plot(n, BIAS_Z * se, color=color, ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", title=f"{name}: KL = {recs[0]['truth']:.4g}", xlabel="N")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    out["bias_vs_n.png"] = fig

    fig, axes = _panel_axes(len(cases), "variance of the estimate vs N (dotted: ∝ 1/N)")
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            color, marker = STYLE[rec["estimator"]]
            n, v = _series(rec, "variance")
            ax.plot(n, v, color=color, marker=marker, ms=3, lw=1, label=LABEL[rec["estimator"]])
        ref = _rec(recs, "k1") or recs[0]
        n, v = _series(ref, "variance")
        ok = np.isfinite(v) & (v > 0)
        if ok.any():
            ax.plot(n, v[ok][0] * (n / n[ok][0]) ** -1.0, color="black", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", title=f"{name}: KL = {recs[0]['truth']:.4g}", xlabel="N")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    out["variance_vs_n.png"] = fig

    out["coverage_vs_n.png"] = _share_figure(
        cases,
        "coverage",
        "coverage of each estimator's own ci(0.95) vs N (solid: all replicates; "
        "dashed: reliable ones)",
        dashed="coverage_reliable",
        target=0.95,
    )
    out["reliable_vs_n.png"] = _share_figure(
        cases, "reliable", "share of replicates whose estimate is `reliable` vs N"
    )
    return out


def _share_figure(cases, key, title, *, dashed=None, target=None):
    """One panel per case of a share in [0, 1] against N (the pitfall left out)."""
    fig, axes = _panel_axes(len(cases), title)
    for ax, (name, recs) in zip(axes, cases.items(), strict=False):
        for rec in recs:
            if rec["estimator"] == PITFALL:
                continue
            color, marker = STYLE[rec["estimator"]]
            n, v = _series(rec, key)
            ax.plot(n, v, color=color, marker=marker, ms=3, lw=1, label=LABEL[rec["estimator"]])
            if dashed:
                ax.plot(n, _series(rec, dashed)[1], color=color, lw=0.8, ls="--")
        if target is not None:
            ax.axhline(target, color="black", lw=0.8, ls=":")
        ax.set(xscale="log", ylim=(-0.02, 1.02), title=name, xlabel="N")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------- findings


def case_rankings(records: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """Per case: the 1/(MSE·s) ranking at each estimator's compared N (pitfall excluded)."""
    out = {}
    for case, recs in by_case(records).items():
        entries = [
            {
                "estimator": r["estimator"],
                "row": compared_row(r["rows"], r["compare_n"]),
                "timing": r.get("timing"),
            }
            for r in recs
            if r["estimator"] != PITFALL
        ]
        ranking = rank_case(entries)
        for item in ranking["ranked"]:
            row = next(e["row"] for e in entries if e["estimator"] == item["estimator"])
            item.update(n=row["n"], bias_z=row["bias_z"], mse=row["mse"])
        out[case] = ranking
    return out


def expected_bias(rec) -> float | None:
    """The bias the study should measure where theory gives one: E[estimate] − truth.

    Theory's ``bias_value`` is E[estimate] − KL with KL exact in float64 (``facts["kl"]``);
    the study measures against the case's ``truth``, which may be KL rounded to float32.
    The difference matters only where the estimate's spread is below float32 rounding of
    KL: the pitfall on ``mvn16`` (values ≈ 3e-9, SE ≈ 1e-11, KL's rounding 7e-8).
    """
    value = rec["theory"]["bias_value"]
    if value is None:
        return None
    return value + (rec["facts"]["kl"] - rec["truth"])


def theory_z(rec, row) -> float:
    """(bias − theory bias)/SE at one row; NaN where theory gives no N-independent value."""
    value = expected_bias(rec)
    if value is None or not _finite(row["se_bias"]) or row["se_bias"] <= 0:
        return math.nan
    return (row["bias"] - value) / row["se_bias"]


def _n_list(rows) -> str:
    ns = [r["n"] for r in rows]
    return f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]} ({len(ns)} sizes)"


def findings(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's conclusions, each with its figures (used by the report and the README).

    Returns a dict with

    * ``bias``: per estimator, the cases where |bias| > 3 SE at some N (``off``), and the
      theory check: rows where |bias − theory bias| > 3 SE (``theory_off``); ``rows``
      counts the (case, N) rows tested;
    * ``unreliable``: (case, estimator, row at N ≈ compare_n) with reliable < 95 %;
    * ``low_coverage``: per estimator and case, the rows whose coverage among reliable
      replicates is below 0.95 by more than 2 SE;
    * ``control_variate``: per case, the MSE ratio to k1 at N ≥ 256;
    * ``rankings``: per case, :func:`case_rankings`.
    """
    out: dict[str, Any] = {
        "bias": {},
        "unreliable": [],
        "low_coverage": {},
        "control_variate": {},
        "rankings": case_rankings(records),
    }
    for rec in records:
        est, case = rec["estimator"], rec["case"]
        if est == PITFALL:
            continue
        b = out["bias"].setdefault(est, {"off": {}, "theory_off": {}, "rows": 0, "theory_rows": 0})
        for row in rec["rows"]:
            if not _finite(row["bias_z"]):
                continue
            b["rows"] += 1
            if abs(row["bias_z"]) > BIAS_Z:
                b["off"].setdefault(case, []).append(row)
            zt = theory_z(rec, row)
            if _finite(zt):
                b["theory_rows"] += 1
                if abs(zt) > BIAS_Z:
                    b["theory_off"].setdefault(case, []).append(row)
        row = compared_row(rec["rows"], rec["compare_n"])
        if _finite(row["reliable"]) and row["reliable"] < RELIABLE_SHARE:
            out["unreliable"].append((case, est, row))
        low = [
            r
            for r in rec["rows"]
            if _finite(r["coverage_reliable"])
            and r["coverage_reliable"] + COVERAGE_Z * r["coverage_reliable_se"] < 0.95
        ]
        if low:
            out["low_coverage"].setdefault(est, {})[case] = low
        if est == "control_variate":
            out["control_variate"][case] = _cv_summary(rec)
    return out


def _cv_summary(cv) -> dict[str, Any]:
    rows = [r for r in cv["rows"] if r["n"] >= PAIRED_MIN_N and "mse_ratio_k1" in r]
    if not rows:
        return {"rows": []}
    worst = max(rows, key=lambda r: r["mse_ratio_k1"] if _finite(r["mse_ratio_k1"]) else -1)
    above = [
        r
        for r in rows
        if _finite(r["mse_ratio_k1"])
        and r["mse_ratio_k1"] - COVERAGE_Z * r["mse_ratio_k1_se"] > CV_LIMIT
    ]
    return {"rows": rows, "worst": worst, "above_limit": above}


# --------------------------------------------------------------------------- report


def _theory_table(cases) -> list[str]:
    lines = [
        "| case | KL | E_q[r²] | E_g[w²] | E_s[r] − 1 (float32 sampler) | SNIS symmetric | "
        "control-variate gate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, recs in cases.items():
        f = recs[0]["facts"]
        r2 = f["log_r2"]
        r2s = "—" if r2 is None else ("∞" if r2 == math.inf else fmt(math.exp(r2), ".4g"))
        w2 = f["w2"]
        w2s = (
            "—"
            if w2 is None
            else fmt(w2[0], ".4g")
            if w2[0] == w2[1]
            else f"[{fmt(w2[0], '.4g')}, {fmt(w2[1], '.4g')}]"
        )
        sq = f["sampler_q"]
        ss = "—" if sq is None else f"{sq['w'] - 1.0:+.3g}"
        sym = "yes" if f["snis_centre"] is not None else "no"
        lines.append(
            f"| {name} | {fmt(f['kl'], '.6g')} | {r2s} | {w2s} | {ss} | {sym} | {f['cv_gate']} |"
        )
    lines += ["", "| case | estimator | bias (theory) | variance (theory) |", "|---|---|---|---|"]
    for name, recs in cases.items():
        for rec in recs:
            th = rec["theory"]
            lines.append(
                f"| {name} | {LABEL[rec['estimator']]} | {th['bias']} | {th['variance']} |"
            )
    return lines


def _honesty_table(recs, sizes) -> list[str]:
    lines = [
        "| estimator | N | bias ± SE (z) | theory bias (z vs theory) | MSE [95 % CI] | "
        "coverage ± SE | of own mean | reliable | coverage where reliable ± SE | median k̂ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in recs:
        th = rec["theory"]
        for target in sizes:
            row = compared_row(rec["rows"], target)
            lines.append(
                f"| {LABEL[rec['estimator']]} | {row['n']} | "
                f"{fmt_pm(row['bias'], row['se_bias'])} ({fmt(row['bias_z'], '+.1f')}) | "
                f"{fmt(th['bias_value'], '+.4g')} ({fmt(theory_z(rec, row), '+.1f')}) | "
                f"{fmt(row['mse'])} [{fmt(row['mse_lo'])}, {fmt(row['mse_hi'])}] | "
                f"{fmt_pm(row['coverage'], row['coverage_se'])} | "
                f"{fmt_pm(row['coverage_mean'], row['coverage_mean_se'])} | "
                f"{_pct(row['reliable'])} | "
                f"{fmt_pm(row['coverage_reliable'], row['coverage_reliable_se'])} | "
                f"{fmt(row['median_pareto_k'], '.2f')} |"
            )
    return lines


def _ranking_lines(name, ranking, recs) -> list[str]:
    by_name = {r["estimator"]: r for r in recs}
    lines = [f"**{name}**: {ranking_sentence(ranking)}", ""]
    if not ranking["ranked"]:
        return lines
    lines += [
        "| estimator | N | bias z | MSE [95 % CI] | µs per estimate, median [interval] | "
        "1/(MSE·s) [interval] |",
        "|---|---|---|---|---|---|",
    ]
    for item in ranking["ranked"]:
        t = by_name[item["estimator"]]["timing"]
        lines.append(
            f"| {LABEL[item['estimator']]} | {item['n']} | {fmt(item['bias_z'], '+.1f')} | "
            f"{fmt(item['mse'])} | {1e6 * t['median']:.3g} [{1e6 * t['low']:.3g}, "
            f"{1e6 * t['high']:.3g}] | {fmt(item['score'])} [{fmt(item['lo'])}, "
            f"{fmt(item['hi'])}] |"
        )
    return lines


def report_markdown(
    records: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
    *,
    wall_seconds: float,
    devices: Sequence[str],
    load_average: Sequence[float] | None = None,
) -> str:
    """The study's ``report.md``: every claim computed from ``records``."""
    cases = by_case(records)
    found = findings(records)
    compare_n = cfg["report"]["compare_n"]
    n_max = 2 ** cfg["sweep"]["log2_max"]
    load = (
        f" 1-minute load average at the end: {load_average[0]:.1f} on {_cores()} cores."
        if load_average
        else ""
    )
    lines = [
        "# Bias–variance study of KL estimators",
        "",
        f"{cfg['sweep']['replicates']} replicates per cell (k-NN: {cfg['knn']['replicates']}), "
        f"N = 2^{cfg['sweep']['log2_min']} … 2^{cfg['sweep']['log2_max']} "
        f"(k-NN up to {cfg['knn']['max_n']}, k = {cfg['knn']['k']}), seed {cfg['seed']}; "
        f"{len(devices)} device(s): {', '.join(devices)}; wall time {wall_seconds:.0f} s "
        f"(compile and timing runs included).{load}",
        "",
        "Every estimate at every N is the public estimator's own `Estimate` on that "
        "replicate's first N draws: coverage is of its own `ci(0.95)` (Student-t with its "
        "`dof`), `reliable` is its own verdict, k̂ its own `pareto_k`. Uncertainties: "
        "± one standard error; MSE and slope intervals are 95 % percentile intervals of "
        f"{cfg['report']['bootstrap']} bootstrap resamples of whole replicates.",
        "",
        "![bias](bias_vs_n.png)",
        "",
        "![variance](variance_vs_n.png)",
        "",
        "![coverage](coverage_vs_n.png)",
        "",
        "![reliable](reliable_vs_n.png)",
        "",
        "## Findings",
        "",
        *[f"- {s}" for s in finding_sentences(found)],
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
        "## Theory, derived from each case",
        "",
        "E_q[r²] = ∫p²/q and E_g[w²] = ∫q²/g (g the IS proposal) in closed form "
        "(`jaxkl.analytic.ratio_moments`); E_s[r] is the mean of r over every value the "
        "float32 sampler can draw (`jaxkl.study.sampler_range`); SNIS is exactly unbiased "
        "where q and g are symmetric about one centre and log q − log p is odd about it "
        "(`jaxkl.study.symmetry`); the control-variate gate is the closed-form one of "
        "`jaxkl.estimators.variance_reduction` (off: β = 0, the estimator is k1).",
        "",
        *_theory_table(cases),
        "",
        f"## Per-cell honesty at N ≈ {compare_n} and N = {n_max}",
        "",
        "z = bias/SE. 'theory bias' is E[estimate] − KL where it is the same at every N and "
        "known exactly (— where it depends on N or has no closed form). Coverage counts "
        "the replicates with a finite interval whose ci(0.95) holds the truth ('of own "
        "mean': holds the across-replicate mean at that N, which tests the stderr whatever "
        "the bias); 'reliable' is the share of replicates the estimator itself calls "
        "reliable.",
        "",
    ]
    for name, recs in cases.items():
        lines += [f"### {name}", "", *_honesty_table(recs, (compare_n, n_max)), ""]
    lines += [
        f"## Control variate against plain k1 (same draws, N ≥ {PAIRED_MIN_N})",
        "",
        f"MSE ratio (control variate / k1) ± its paired delta-method SE; the limit is {CV_LIMIT}×.",
        "",
        "| case | N | MSE ratio ± SE | reliable | coverage where reliable ± SE |",
        "|---|---|---|---|---|",
    ]
    for name, recs in cases.items():
        cv = _rec(recs, "control_variate")
        if cv is None:
            continue
        for row in cv["rows"]:
            if "mse_ratio_k1" not in row:
                continue
            lines.append(
                f"| {name} | {row['n']} | {fmt_pm(row['mse_ratio_k1'], row['mse_ratio_k1_se'])} | "
                f"{_pct(row['reliable'])} | "
                f"{fmt_pm(row['coverage_reliable'], row['coverage_reliable_se'])} |"
            )
    lines += [
        "",
        f"## Slopes against theory (N ≥ {cfg['report']['slope_min_n']})",
        "",
        "Least-squares slopes of log variance and log |bias| against log N, with 95 % "
        "intervals from the bootstrap over whole replicates. 'theory' is −1 where the "
        "variance is finite and ∝ 1/N; — where it is infinite. For an unbiased estimator "
        "the measured |bias| is noise (∝ N^-1/2), not a property of the estimator.",
        "",
        "| case | estimator | variance slope [95 % CI] | theory | in CI | |bias| slope [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for name, recs in cases.items():
        for rec in recs:
            v, b = rec["slopes"]["variance"], rec["slopes"]["abs_bias"]
            th = rec["theory"]["variance_slope"]
            inside = (
                "—"
                if th is None or not _finite(v["lo"])
                else ("yes" if v["lo"] <= th <= v["hi"] else "**no**")
            )
            lines.append(
                f"| {name} | {LABEL[rec['estimator']]} | {fmt(v['slope'], '.3f')} "
                f"[{fmt(v['lo'], '.3f')}, {fmt(v['hi'], '.3f')}] | {fmt(th, '.0f')} | {inside} | "
                f"{fmt(b['slope'], '.3f')} [{fmt(b['lo'], '.3f')}, {fmt(b['hi'], '.3f')}] |"
            )
    lines += [
        "",
        f"## Best estimator per case at N ≈ {compare_n}: 1 / (MSE × seconds)",
        "",
        "MSE about the truth (with its bootstrap interval) times the seconds per estimate "
        "of the estimator timed alone: its own compiled public call (`mc_kl`, "
        "`importance_kl`, or sampling plus `knn_kl`) over "
        f"{cfg['timing']['batch']} replicates, {cfg['timing']['repeats']} timed repeats; "
        "the time interval brackets the median (distribution-free, ≥ 95 %). A winner is "
        "named only when its 1/(MSE·s) interval lies above every other estimator's.",
        "",
    ]
    for name, recs in cases.items():
        lines += [*_ranking_lines(name, found["rankings"][name], recs), ""]
    lines += [
        "## How to read this",
        "",
        "- Each replicate draws N_max samples once and reports the estimate after the first "
        "N for every N, so one replicate's estimates at different N are correlated. "
        "Replicates are independent, so the per-N statistics across replicates are valid, "
        "and intervals of statistics across N come from resampling whole replicates.",
        "- A coverage below 0.95 among *reliable* replicates is a failure of the estimator's "
        "own error bar; among all replicates it may just be the estimator saying its error "
        "bar means nothing (reliable = False).",
        "- The density-weighted average mean(q(x)·(log q(x) − log p(x))) over x ~ q counts q "
        "twice: it converges to ∫q²·log(q/p), not KL. It is shown as a pitfall and never "
        "ranked; its 'reliable' only says its stderr is finite.",
        "- k-NN reports no tail diagnostic (k̂ —); its stderr comes from 10 disjoint "
        "subsamples (dof 9).",
    ]
    return "\n".join(lines) + "\n"


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _chance(rows: int) -> str:
    """Expected count of |z| > BIAS_Z among ``rows`` normal z-scores, by chance alone."""
    p = math.erfc(BIAS_Z / math.sqrt(2.0))
    return f"{p * rows:.1f}"


def finding_sentences(found: Mapping[str, Any]) -> list[str]:
    """Plain sentences, each carrying its measured figures and uncertainty."""
    out = []
    on, off = [], []
    for est, b in found["bias"].items():
        (off if b["theory_off"] else on).append(est)
    if on:
        out.append(
            "Bias consistent with theory (within "
            f"{BIAS_Z:g} SE of its exact value, 0 for the unbiased ones) at every N on every "
            f"case where theory gives a value: {', '.join(LABEL[e] for e in on)}."
        )
    for est in off:
        b = found["bias"][est]
        parts = []
        for case, rows in b["theory_off"].items():
            worst = max(rows, key=lambda r: abs(r["bias_z"]))
            parts.append(
                f"{case} at {len(rows)} of the N (largest: N = {worst['n']}, bias "
                f"{fmt_pm(worst['bias'], worst['se_bias'])})"
            )
        out.append(
            f"{LABEL[est]} departs from its theoretical bias by more than {BIAS_Z:g} SE on "
            + "; ".join(parts)
            + f" — {sum(len(r) for r in b['theory_off'].values())} of {b['theory_rows']} rows "
            f"tested, {_chance(b['theory_rows'])} expected by chance."
        )
    for case, est, row in found["unreliable"]:
        out.append(
            f"{case}: {LABEL[est]} is reliable in {_pct(row['reliable'])} of replicates at "
            f"N = {row['n']} (median k̂ {fmt(row['median_pareto_k'], '.2f')}); coverage of "
            f"its ci(0.95) over all replicates there: "
            f"{fmt_pm(row['coverage'], row['coverage_se'])}."
        )
    for est, by_case_rows in found["low_coverage"].items():
        parts = []
        for case, rows in by_case_rows.items():
            worst = min(rows, key=lambda r: r["coverage_reliable"])
            parts.append(
                f"{case} at {_n_list(rows)}, lowest "
                f"{fmt_pm(worst['coverage_reliable'], worst['coverage_reliable_se'])} at "
                f"N = {worst['n']}"
            )
        out.append(
            f"{LABEL[est]}: coverage of the truth among reliable replicates is below 0.95 by "
            f"more than {COVERAGE_Z:g} SE on " + "; ".join(parts) + "."
        )
    for case, cv in found["control_variate"].items():
        if not cv["rows"]:
            continue
        w = cv["worst"]
        verdict = (
            f"above {CV_LIMIT}× by more than {COVERAGE_Z:g} SE at N = "
            + ", ".join(str(r["n"]) for r in cv["above_limit"])
            if cv["above_limit"]
            else f"within {CV_LIMIT}×"
        )
        out.append(
            f"{case}: control variate / k1 MSE at N ≥ {PAIRED_MIN_N}: largest "
            f"{fmt_pm(w['mse_ratio_k1'], w['mse_ratio_k1_se'])} (N = {w['n']}), {verdict}."
        )
    for case, ranking in found["rankings"].items():
        out.append(f"{case}: {ranking_sentence(ranking)}")
    return out


def ranking_sentence(ranking: Mapping[str, Any]) -> str:
    """'best by 1/(MSE·s): X (resolved)' or 'not resolved between …' or 'not timed'."""
    if not ranking["ranked"]:
        return "not timed in this run (no 1/(MSE·s) ranking)."
    if ranking["resolved"]:
        return f"best by 1/(MSE·s): {LABEL[ranking['best']]} (resolved)."
    return (
        "best by 1/(MSE·s) not resolved between "
        + ", ".join(LABEL[c] for c in ranking["contenders"])
        + "."
    )
