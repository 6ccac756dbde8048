"""The README's bias–variance text and figures, generated from a committed run of the study.

Every number the README states about the study comes from the run folder committed under
``results/bias_variance/`` (its cell records and ``summary.json``), through the same
functions that write the run's ``report.md``. Two blocks of README.md are generated —
between ``<!-- bias-variance:begin … -->`` / ``<!-- bias-variance:end -->`` and
``<!-- bias-variance-pitfall:begin … -->`` / ``<!-- bias-variance-pitfall:end -->`` — and
the figures the README shows are copied to ``docs/``::

    python -m jaxkl.study.readme_section --write   # regenerate README.md blocks and docs/
    python -m jaxkl.study.readme_section           # check only: exit 1 if anything is stale

``--run DIR`` publishes another run folder (default: the folder ``make run`` writes for
``configs/bias_variance.toml``). ``tests/test_readme.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxkl.study.bias_variance import ALL_ESTIMATORS, PAIRED_MIN_N, compared_row
from jaxkl.study.bias_variance_report import (
    BIAS_Z,
    CV_LIMIT,
    LABEL,
    PITFALL,
    by_case,
    findings,
    fmt,
    fmt_pm,
    ranking_sentence,
)
from jaxkl.study.config import load_toml, resolve_config
from jaxkl.study.results import cell_id, derive_run_name

__all__ = [
    "BLOCKS",
    "FIGURES",
    "default_run",
    "expected_blocks",
    "load_records",
    "main",
    "update",
]

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python -m jaxkl.study.readme_section --write"
BLOCKS = ("bias-variance", "bias-variance-pitfall")
# The run's figures the README shows or links, copied to docs/bias_variance<suffix>.png.
FIGURES = {
    f"{stem}_vs_n.png": f"docs/bias_variance{suffix}.png"
    for stem, suffix in (
        ("variance", ""),
        ("bias", "_bias"),
        ("coverage", "_coverage"),
        ("reliable", "_reliable"),
    )
}


def default_run(root: Path = ROOT) -> Path:
    """The folder ``make run`` writes for the default config (its name hashes the config)."""
    cfg = resolve_config(root / "configs" / "bias_variance.toml")
    return root / "results" / "bias_variance" / derive_run_name(cfg, "bias_variance")


def load_records(run: Path) -> tuple[list[dict], dict, dict]:
    """``(records, config, summary)`` of a finished run, records in the run's own order."""
    cfg = load_toml(run / "config.toml")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    records = []
    for case in cfg["cases"]:
        for est in ALL_ESTIMATORS:
            path = run / "cells" / f"{cell_id(case=case, est=est)}.json"
            if path.is_file():
                records.append(json.loads(path.read_text(encoding="utf-8")))
    return records, cfg, summary


def _rel(run: Path, root: Path) -> str:
    try:
        return run.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return run.as_posix()


def _rec(records, case, est):
    return next((r for r in records if r["case"] == case and r["estimator"] == est), None)


def _slope_sentence(records) -> str:
    held, missed, infinite = 0, [], []
    for rec in records:
        v = rec["slopes"]["variance"]
        theory = rec["theory"]["variance_slope"]
        if theory is None:
            infinite.append(
                f"{LABEL[rec['estimator']]} on `{rec['case']}` ({rec['theory']['variance']}; "
                f"measured slope {fmt(v['slope'], '.2f')} [{fmt(v['lo'], '.2f')}, "
                f"{fmt(v['hi'], '.2f')}])"
            )
        elif math.isfinite(v["lo"]) and v["lo"] <= theory <= v["hi"]:
            held += 1
        else:
            missed.append(
                f"{LABEL[rec['estimator']]} on `{rec['case']}` {fmt(v['slope'], '.2f')} "
                f"[{fmt(v['lo'], '.2f')}, {fmt(v['hi'], '.2f')}]"
            )
    total = held + len(missed)
    text = (
        f"**Variance** falls as 1/N where theory says the terms have a finite variance: the "
        f"bootstrap 95 % interval of the log-log variance slope holds −1 in {held} of those "
        f"{total} (case, estimator) cells"
    )
    text += "; it does not for " + "; ".join(missed) + "." if missed else "."
    if infinite:
        text += " Where theory gives no slope: " + "; ".join(infinite) + "."
    return text


def _bias_sentence(found, records, n_max) -> str:
    on = [LABEL[e] for e, b in found["bias"].items() if not b["theory_off"]]
    parts = [
        f"**Bias** ([figure](docs/bias_variance_bias.png)): within {BIAS_Z:g} SE of its "
        f"theoretical value at every N on every case: {', '.join(on)}."
    ]
    for est, b in found["bias"].items():
        if not b["theory_off"]:
            continue
        cases = ", ".join(f"`{c}` ({len(rows)} of the N)" for c, rows in b["theory_off"].items())
        parts.append(
            f"{LABEL[est]} departs from it by more than {BIAS_Z:g} SE on {cases} "
            f"({sum(len(r) for r in b['theory_off'].values())} of {b['theory_rows']} rows; "
            f"{math.erfc(BIAS_Z / math.sqrt(2)) * b['theory_rows']:.1f} expected by chance)."
        )
    for case in ("far", "mixture"):
        rec = _rec(records, case, "k3")
        if rec is None or rec["theory"]["bias_value"] in (None, 0.0):
            continue
        row = compared_row(rec["rows"], n_max)
        parts.append(
            f"k3 on `{case}` is biased by the float32 sampler, which never draws beyond "
            f"≈ 5.2σ: measured {fmt_pm(row['bias'], row['se_bias'])} at N = {row['n']}, "
            f"predicted {rec['theory']['bias_value']:+.4f} from E_s[r] = "
            f"{rec['facts']['sampler_q']['w']:.4f} (exact enumeration of the sampler's 2²³ "
            "values, `jaxkl/study/sampler_range.py`)."
        )
    k2 = _rec(records, "close", "k2")
    if k2 is not None:
        row = compared_row(k2["rows"], n_max)
        parts.append(
            f"k2 keeps its constant offset ½E_q[(log r)²] − KL (on `close` "
            f"{k2['theory']['bias_value']:+.4f}; measured {fmt_pm(row['bias'], row['se_bias'])} "
            f"at N = {row['n']})."
        )
    return " ".join(parts)


def _reliability_sentence(found) -> str:
    parts = [
        "**Error bars** ([coverage](docs/bias_variance_coverage.png), "
        "[reliable share](docs/bias_variance_reliable.png)):"
    ]
    unreliable = [
        f"{LABEL[est]} on `{case}` (reliable in {100 * row['reliable']:.0f} % of replicates at "
        f"N = {row['n']}, coverage {fmt_pm(row['coverage'], row['coverage_se'])})"
        for case, est, row in found["unreliable"]
    ]
    if unreliable:
        parts.append(
            "each estimate says itself when its standard error means nothing; below 95 % "
            "reliable at N ≈ 1000: " + "; ".join(unreliable) + "."
        )
    low = []
    # k2 has a constant bias on every case (theory column): its interval misses the truth
    # by design, summarised in one clause instead of one per case.
    k2_rows = []
    for est, by_case_rows in found["low_coverage"].items():
        for case, rows in by_case_rows.items():
            if est == "k2":
                k2_rows += [(case, r) for r in rows]
                continue
            worst = min(rows, key=lambda r: r["coverage_reliable"])
            ns = [r["n"] for r in rows]
            span = f"N = {ns[0]}" if len(ns) == 1 else f"{len(ns)} N from {ns[0]} to {ns[-1]}"
            low.append(
                f"{LABEL[est]} on `{case}` at {span} (lowest "
                f"{fmt_pm(worst['coverage_reliable'], worst['coverage_reliable_se'])})"
            )
    if low:
        parts.append(
            "Coverage of the truth by ci(0.95) among reliable replicates is below 0.95 by "
            "more than 2 SE for " + "; ".join(low) + "."
        )
    if k2_rows:
        case, worst = max(k2_rows, key=lambda cr: cr[1]["coverage_reliable"])
        parts.append(
            f"k2 estimates ½E_q[(log r)²], not KL, so its ci(0.95) misses the truth by design: "
            f"coverage at most {fmt_pm(worst['coverage_reliable'], worst['coverage_reliable_se'])} "
            f"(`{case}`, N = {worst['n']}) over {len(k2_rows)} (case, N) rows on "
            f"{len({c for c, _ in k2_rows})} cases."
        )
    return " ".join(parts)


def _cv_sentence(found, records) -> str:
    close = _rec(records, "close", "control_variate")
    text = "**Control variate** (k1 − β̂(r − 1), β̂ cross-fitted): "
    if close is not None:
        row = compared_row(close["rows"], 1024)
        if "mse_ratio_k1" in row:
            gain = 1.0 / row["mse_ratio_k1"]
            gain_se = row["mse_ratio_k1_se"] / row["mse_ratio_k1"] ** 2
            text += (
                f"on the KL = 0.5 pair (`close`) its MSE is "
                f"{fmt_pm(row['mse_ratio_k1'], row['mse_ratio_k1_se'])} × plain k1's at "
                f"N = {row['n']}, a gain of {fmt_pm(gain, gain_se)}×. "
            )
    off = [
        f"`{r['case']}`"
        for r in records
        if r["estimator"] == "control_variate" and r["facts"]["cv_gate"] == "off"
    ]
    if off:
        text += f"On {', '.join(off)} the closed-form gate switches it off (β = 0: it is k1). "
    worst = [(case, cv["worst"]) for case, cv in found["control_variate"].items() if cv["rows"]]
    above = [case for case, cv in found["control_variate"].items() if cv.get("above_limit")]
    if worst:
        case, w = max(worst, key=lambda t: t[1]["mse_ratio_k1"])
        text += (
            f"Its MSE ratio to k1 at N ≥ {PAIRED_MIN_N} is at most "
            f"{fmt_pm(w['mse_ratio_k1'], w['mse_ratio_k1_se'])} (`{case}`, N = {w['n']}); "
            + (
                f"above {CV_LIMIT}× on " + ", ".join(f"`{c}`" for c in above) + "."
                if above
                else f"within {CV_LIMIT}× on every case."
            )
        )
    return text


def _ranking_sentence(found) -> str:
    parts = [
        f"`{case}`: {ranking_sentence(r).rstrip('.')}" for case, r in found["rankings"].items()
    ]
    return (
        "**Best by 1/(MSE × seconds)** at N ≈ 1000 (each estimator timed alone; named only "
        "when its interval lies above every other's): " + "; ".join(parts) + "."
    )


def main_block(records, cfg, summary, run_rel: str) -> str:
    """The generated text between the ``bias-variance`` markers."""
    found = findings(records)
    n_max = 2 ** cfg["sweep"]["log2_max"]
    sizes = sorted({r["n"] for rec in records if rec["group"] == "q" for r in rec["rows"]})
    cases = list(by_case(records))
    estimators = sorted({r["estimator"] for r in records}, key=list(ALL_ESTIMATORS).index)
    load = summary.get("load_average")
    load_text = f", 1-minute load average {load[0]:.1f} at the end" if load else ""
    lines = [
        "",
        "![variance of every estimator against N, one panel per case](docs/bias_variance.png)",
        "",
        f"*Variance of each estimator against N (log-log, one panel per case; dotted: ∝ 1/N), "
        f"from the committed default run [{run_rel}]({run_rel}/report.md): {len(cases)} cases "
        f"× {len(estimators)} estimators ({', '.join(LABEL[e] for e in estimators)}), "
        f"N = {', '.join(str(n) for n in sizes)}, {cfg['sweep']['replicates']} replicates "
        f"per cell (k-NN: {cfg['knn']['replicates']}, N ≤ {cfg['knn']['max_n']}). "
        f"The study took {summary['study_wall_seconds']:.0f} s wall-clock by its own timer "
        f"(`study_wall_seconds` in summary.json: first cell to last, compile and timing runs "
        f"included) on {summary.get('cpu_count', 'this')} CPU cores shared with other "
        f"jobs{load_text}.*",
        "",
        "What that run shows (± one standard error; every figure is from it, and its "
        f"[report]({run_rel}/report.md) has every cell):",
        "",
        f"- {_slope_sentence(records)}",
        f"- {_bias_sentence(found, records, n_max)}",
        f"- {_reliability_sentence(found)}",
        f"- {_cv_sentence(found, records)}",
        f"- {_ranking_sentence(found)}",
        "",
    ]
    return "\n".join(lines)


def pitfall_block(records) -> str:
    """The generated sentence between the ``bias-variance-pitfall`` markers."""
    rec = _rec(records, "close", PITFALL)
    if rec is None:
        return "\n"
    row = rec["rows"][-1]
    return (
        "\nFor q = N(0, 1), p = N(1, 1): q(x)² = e^(−x²)/(2π) = N(x; 0, ½)/(2√π) and "
        "log(q/p) = ½ − x, so the limit is (1/(2√π))·E_N(0,½)[½ − x] = 1/(4√π) ≈ 0.1410 "
        f"(not KL = 0.5). The default study measures {fmt_pm(row['mean'], row['se_bias'])} "
        f"at N = {row['n']} ({rec['replicates']} replicates; `density_weighted` on `close`).\n"
    )


def expected_blocks(run: Path, root: Path = ROOT) -> dict[str, str]:
    """The text each generated block of README.md should hold for ``run``."""
    records, cfg, summary = load_records(run)
    run_rel = _rel(run, root)
    return {
        "bias-variance": main_block(records, cfg, summary, run_rel),
        "bias-variance-pitfall": pitfall_block(records),
    }


def _markers(name: str, run_rel: str) -> tuple[str, str]:
    return (
        f"<!-- {name}:begin (generated by {COMMAND} from {run_rel}) -->",
        f"<!-- {name}:end -->",
    )


def update(readme: Path, run: Path, *, write: bool, root: Path = ROOT) -> list[str]:
    """Compare (or, with ``write``, bring up to date) README.md's blocks and docs/ figures.

    Returns:
      What was stale: block names and docs/ paths (empty when everything is current).
    """
    text = readme.read_text(encoding="utf-8")
    run_rel = _rel(run, root)
    stale = []
    for name, fresh in expected_blocks(run, root).items():
        begin, end = _markers(name, run_rel)
        prefix = f"<!-- {name}:begin"
        if prefix not in text or end not in text:
            raise ValueError(f"{readme}: markers {prefix} … {end} not found")
        start = text.index(prefix)
        stop = text.index(end, start)
        current = text[start:stop]
        wanted = begin + fresh
        if current != wanted:
            stale.append(name)
            text = text[:start] + wanted + text[stop:]
    for src, dst in FIGURES.items():
        data = (run / src).read_bytes()
        target = root / dst
        if not target.is_file() or target.read_bytes() != data:
            stale.append(dst)
            if write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    if write and stale:
        readme.write_text(text, encoding="utf-8")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="run folder to publish")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--write", action="store_true", help="update README.md and docs/")
    args = parser.parse_args(argv)
    run = args.run or default_run()
    stale = update(args.readme, run, write=args.write)
    if stale and not args.write:
        print(f"stale: {', '.join(stale)}; run: {COMMAND}", file=sys.stderr)
        return 1
    print("updated: " + ", ".join(stale) if stale else "README.md and docs/ are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
