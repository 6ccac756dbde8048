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

import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from jaxkl.study import RunDir, cell_id, distributed, experiment_parser, parse_experiment_args
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


def main(argv=None) -> Path | None:
    parser = experiment_parser("bias_variance", default_config=DEFAULT, description=__doc__)
    distributed.add_argument(parser)
    # fail_fast: in a multi-process run, an error here ends this process at once so that
    # the others stop too (see jaxkl.study.distributed); alone, errors raise as usual.
    with distributed.fail_fast():
        args, cfg = parse_experiment_args(
            parser,
            argv,
            validate=validate_config,
            before_config=lambda a: _join(parser, a.distributed),
        )
        return study(args, cfg)


def _join(parser, requested: bool) -> None:
    """Join a multi-process run if launched as one; a failure is one clear error, exit 2."""
    try:
        distributed.initialize(requested)
    except distributed.DistributedSetupError as err:
        parser.error(str(err))


def study(args, cfg) -> Path | None:
    """Every process computes; process 0 alone reads and writes the run folder (the
    others return None)."""
    t0 = time.perf_counter()
    writer = distributed.is_writer()
    run = None
    if writer:
        run = RunDir.open(
            args.out, "bias_variance", cfg, run_name=args.run_name, stem=args.config.stem
        )
    key = jax.random.key(cfg["seed"])
    cases = [build_case(name, spec) for name, spec in cfg["cases"].items()]
    plan = [
        (ci, case, group, names)
        for ci, case in enumerate(cases)
        for group, names in estimator_groups(cfg, case).items()
    ]
    ids = [cell_id(case=c.name, est=n) for _, c, _, names in plan for n in names]
    # The writer says which cells are finished; every process then runs the same groups.
    finished = np.array([writer and run.cells.has(i) for i in ids], np.int32)
    finished = dict(zip(ids, distributed.from_writer(finished).astype(bool), strict=True))
    total, done = len(ids), sum(finished.values())
    if done and writer:
        print(f"resuming {run.path}: {done} of {total} cells already finished")
    records = []
    bar = tqdm(
        total=total, initial=done, desc="cells", unit="cell", file=sys.stderr, disable=not writer
    )
    with bar:
        for ci, case, group, names in plan:
            cids = {n: cell_id(case=case.name, est=n) for n in names}
            # Only the estimators whose cells are missing run (a kill can land between two
            # cells of one group); fold_in by case index and group gives them the same
            # draws as in an uninterrupted run.
            missing = [n for n in names if not finished[cids[n]]]
            if missing:
                group_key = jax.random.fold_in(jax.random.fold_in(key, ci), hash_group(group))
                for name, rec in run_group(cfg, case, group, missing, group_key).items():
                    if writer:
                        run.cells.save(cids[name], rec)
                    bar.update(1)
            if writer:
                records += [run.cells.load(cids[n]) for n in names]
    if not writer:
        return None
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
