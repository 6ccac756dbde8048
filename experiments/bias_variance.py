"""The bias–variance study of KL estimators — jaxkl's main job.

Usage (from the repository root):
    python experiments/bias_variance.py [--config configs/bias_variance.toml]
        [--set sweep.replicates=2000] [--set cases.close.p.loc=0.5] [--out results]

Writes results/bias_variance/<run-name>/: config.toml, cells/ (one file per finished
(case, estimator) cell: a killed run resumes where it stopped), metrics.csv,
summary.json, bias_vs_n.png, variance_vs_n.png, coverage_vs_n.png, reliable_vs_n.png and
report.md. To publish a run into the README (its bias–variance section and docs/ figures):
    python -m jaxkl.study.readme_section --run results/bias_variance/<run-name> --write
Replicates are sharded over jax.devices(). On several processes the same command runs
on each: under SLURM or on a Cloud TPU pod slice add --distributed (JAX detects the
cluster); on one machine, python -m jaxkl.study.launch --processes 2 -- <this command>.
Process 0 alone writes the results folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from jaxkl.study import cell_id
from jaxkl.study.bias_variance import estimator_groups, run_group, validate_config
from jaxkl.study.bias_variance_report import (
    METRIC_COLUMNS,
    case_rankings,
    figures,
    metric_rows,
    report_markdown,
)
from jaxkl.study.cases import build_case
from jaxkl.study.experiment import Experiment, Outputs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "bias_variance.toml"


def compute(cfg, run) -> dict[str, Any]:
    """Every process computes; the records are read back on the writer (None elsewhere)."""
    key = jax.random.key(cfg["seed"])
    cases = [build_case(name, spec) for name, spec in cfg["cases"].items()]
    plan = [
        (ci, case, group, names)
        for ci, case in enumerate(cases)
        for group, names in estimator_groups(cfg, case).items()
    ]
    ids = [cell_id(case=c.name, est=n) for _, c, _, names in plan for n in names]
    finished = run.plan(ids)  # the writer's answer, so every process runs the same groups
    records = []
    for ci, case, group, names in plan:
        cids = {n: cell_id(case=case.name, est=n) for n in names}
        # Only the estimators whose cells are missing run (a kill can land between two
        # cells of one group); fold_in by case index and group gives them the same
        # draws as in an uninterrupted run.
        missing = [n for n in names if not finished[cids[n]]]
        if missing:
            group_key = jax.random.fold_in(jax.random.fold_in(key, ci), hash_group(group))
            for name, rec in run_group(cfg, case, group, missing, group_key).items():
                run.save(cids[name], rec)
        records += [run.load(cids[n]) for n in names]
    return {"cases": cases, "records": records, "cells": len(ids)}


def report(results, cfg, run) -> Outputs:
    records, cases = results["records"], results["cases"]
    devices = [str(d) for d in jax.devices()]
    return Outputs(
        report_markdown(
            records,
            cfg,
            wall_seconds=run.wall_seconds,
            devices=devices,
            load_average=run.load_average,
        ),
        metrics=metric_rows(records),
        metrics_columns=METRIC_COLUMNS,
        figures=figures(records),
        summary={
            "cells": results["cells"],
            "cells_computed_this_run": len(run.folder.cells.saved_this_run),
            "truths": {c.name: {"kl": c.truth, "source": c.truth_source} for c in cases},
            "rankings": case_rankings(records),
        },
    )


def hash_group(group: str) -> int:
    """A stable small integer per group name (Python's hash() is salted per process)."""
    return {"q": 0, "importance": 1, "knn": 2}[group]


EXPERIMENT = Experiment(
    "bias_variance",
    DEFAULT,
    __doc__,
    compute,
    report,
    example="sweep.replicates=2000",
    validate=validate_config,
    distributed=True,
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
