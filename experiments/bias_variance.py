"""The bias–variance study of KL estimators — jaxkl's main job.

Usage (from the repository root):
    python experiments/bias_variance.py [--config configs/bias_variance.toml]
        [--set sweep.replicates=2000] [--set cases.close.p.loc=0.5] [--out results]

Writes results/bias_variance/<run-name>/: config.toml, cells/ (one file per finished
(case, estimator) cell: a killed run resumes where it stopped), metrics.csv,
summary.json, bias_vs_n.png, variance_vs_n.png, coverage_vs_n.png, reliable_vs_n.png and
report.md. To publish a run into the README (its bias–variance section and docs/ figures):
    python -m jaxkl.study.readme_section --run results/bias_variance/<run-name> --write
Replicates are sharded over jax.devices(); on a multi-host cluster call
jax.distributed.initialize() first and the same mesh spans every host.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
from tqdm import tqdm

from jaxkl.study import RunDir, cell_id, experiment_parser, parse_experiment_args
from jaxkl.study.bias_variance import estimator_groups, run_group, validate_config
from jaxkl.study.bias_variance_report import (
    METRIC_COLUMNS,
    case_rankings,
    figures,
    metric_rows,
    report_markdown,
)
from jaxkl.study.cases import build_case

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "bias_variance.toml"


def main(argv=None) -> Path:
    parser = experiment_parser("bias_variance", default_config=DEFAULT, description=__doc__)
    args, cfg = parse_experiment_args(parser, argv, validate=validate_config)
    t0 = time.perf_counter()
    run = RunDir.open(args.out, "bias_variance", cfg, run_name=args.run_name, stem=args.config.stem)
    key = jax.random.key(cfg["seed"])
    cases = [build_case(name, spec) for name, spec in cfg["cases"].items()]
    plan = [
        (ci, case, group, names)
        for ci, case in enumerate(cases)
        for group, names in estimator_groups(cfg, case).items()
    ]
    total = sum(len(names) for *_, names in plan)
    done = sum(run.cells.has(cell_id(case=c.name, est=n)) for _, c, _, names in plan for n in names)
    if done:
        print(f"resuming {run.path}: {done} of {total} cells already finished")
    records = []
    with tqdm(total=total, initial=done, desc="cells", unit="cell", file=sys.stderr) as bar:
        for ci, case, group, names in plan:
            ids = {n: cell_id(case=case.name, est=n) for n in names}
            # Only the estimators whose cells are missing run (a kill can land between two
            # cells of one group); fold_in by case index and group gives them the same
            # draws as in an uninterrupted run.
            missing = [n for n in names if not run.cells.has(ids[n])]
            if missing:
                group_key = jax.random.fold_in(jax.random.fold_in(key, ci), hash_group(group))
                for name, rec in run_group(cfg, case, group, missing, group_key).items():
                    run.cells.save(ids[name], rec)
                    bar.update(1)
            records += [run.cells.load(ids[n]) for n in names]
    wall = time.perf_counter() - t0
    load = list(os.getloadavg())
    run.write_metrics(metric_rows(records), METRIC_COLUMNS)
    for fname, fig in figures(records).items():
        run.write_figure(fname, fig)
    devices = [str(d) for d in jax.devices()]
    run.write_report(
        report_markdown(records, cfg, wall_seconds=wall, devices=devices, load_average=load)
    )
    run.write_summary(
        {
            "cells": total,
            "cells_computed_this_run": len(run.cells.saved_this_run),
            "truths": {c.name: {"kl": c.truth, "source": c.truth_source} for c in cases},
            "rankings": case_rankings(records),
        },
        seed=cfg["seed"],
        study_wall_seconds=wall,
        load_average=load,
    )
    print(f"report: {run.file('report.md')}")
    return run.path


def hash_group(group: str) -> int:
    """A stable small integer per group name (Python's hash() is salted per process)."""
    return {"q": 0, "importance": 1, "knn": 2}[group]


if __name__ == "__main__":
    main()
