"""Throughput of jaxkl against this machine's own ceilings, all measured in one process.

Every speed is reported next to a ceiling timed in the same run, back to back with it:

* read ceiling — the fastest way found to read the same bytes: a jitted ``jnp.sum`` over
  the kernel's own input arrays or ``numpy.sum`` over them, whichever is faster in that
  repeat. Analytic kernels are reported in GB/s of parameter bytes read.
* RNG ceiling — ``jax.random.normal`` (the default threefry key) for the same count of
  numbers as the estimator draws, either written out or summed inside the same jitted
  function, whichever is faster. Monte Carlo is reported in M sample-dims/s
  (samples × batch × event size per second).

Sections (``sections`` in the config, run in this order):

* ``knn``: ``knn_kl`` for n = m up to 100 000 in d = 10, with peak memory (XLA's buffer
  assignment for the compiled call, and the process's resident-set high-water mark).
* ``knn_tree``: ``knn_kl``'s two searches (k-d tree, brute force) against scipy's
  ``cKDTree`` computing the same estimate directly, over a grid of d × n.
* ``analytic``: Normal and MultivariateNormalDiag over a grid of B × D, MultivariateNormalTriL
  for d ∈ {8, 64}, Categorical for K up to 32 768; each against the read ceiling.
* ``monte_carlo``: ``mc_kl`` (k1, k3) and ``importance_kl`` against the RNG ceiling.
* ``peers``: the largest analytic and Monte Carlo workloads through ``jaxkl.kl``, a
  textbook jitted formula, NumPy, and torch / distrax / numpyro when importable.
* ``anatomy``: probes on one [B, D] array — a row sum with 0, 1 and 11 ops fused in, with
  a select, and an elementwise map — to show what bounds the analytic kernels.
* ``variance``: precision per second, 1 / (variance × seconds per estimate), of each
  variance-reduction option of ``mc_kl`` against plain k1, with a 5-SE unbiasedness check.
* ``retrace``: traces and compiles during the second of two eager calls.

Timing: each function is compiled with ``jax.jit(f).lower(...).compile()`` (trace and
compile times recorded), called ``warmup`` times, then timed ``repeats`` times; each timed
repeat loops the call until it lasts ``min_time`` and ends with ``block_until_ready``.
Medians are reported; the fraction of a ceiling is the median of per-repeat ratios.
Retracing: a Python counter in the traced function counts traces over the compile and two
more calls of the ``jax.jit`` wrapper with the same arguments (``traces`` = 1 means none).

Run from the repository root (``experiments/throughput.py`` runs the same command):
    .venv/bin/python -m benchmarks.throughput --config configs/throughput.toml

Writes results/throughput/<run-name>/: config.toml, cells/, metrics.csv, summary.json,
throughput.png, report.md and README_SECTION.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax

from benchmarks.throughput.config import validate
from benchmarks.throughput.harness import load_average
from benchmarks.throughput.records import COLUMNS
from benchmarks.throughput.report import (
    PUBLISHED,
    evaluate_targets,
    figure,
    readme_section,
    report_markdown,
    update_readme,
)
from benchmarks.throughput.sections import RUNNERS, SECTIONS
from jaxkl.study import (
    RunDir,
    atomic_write_bytes,
    cell_id,
    experiment_parser,
    parse_experiment_args,
)

EXPERIMENT = "throughput"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / f"{EXPERIMENT}.toml"


def _timed_section(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """One section's record, with its wall and CPU seconds and the load around it."""
    load0, t0, cpu0 = load_average(), time.perf_counter(), time.process_time()
    rec = RUNNERS[name](cfg)
    rec["wall_s"] = time.perf_counter() - t0
    rec["cpu_s"] = time.process_time() - cpu0
    rec["load_average"] = [load0, load_average()]
    return rec


def main(argv=None) -> Path:
    """Run the configured sections (resuming finished ones), write the results folder, and
    with ``--publish`` its committed copy; return the run's folder."""
    parser = experiment_parser(EXPERIMENT, default_config=DEFAULT_CONFIG, description=__doc__)
    parser.prog = "python -m benchmarks.throughput"
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"also copy {', '.join(PUBLISHED)} to <out>/{EXPERIMENT}/ (the committed copy)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="with --publish: replace this README's perf:begin/perf:end section by the run's",
    )
    args, cfg = parse_experiment_args(parser, argv, validate=validate)
    run = RunDir.open(args.out, EXPERIMENT, cfg, run_name=args.run_name, stem=args.config.stem)
    t0 = time.perf_counter()
    records: dict[str, Any] = {}
    for name in SECTIONS:
        if name in cfg["sections"]:
            records[name] = run.cells.get_or_compute(
                cell_id(section=name), lambda name=name: _timed_section(name, cfg)
            )
            rec = records[name]
            print(f"{name}: {rec['wall_s']:.1f} s wall, {rec['cpu_s']:.1f} s CPU")
    # Measurement time of the sections (also right when they were resumed from cells).
    wall = sum(rec["wall_s"] for rec in records.values())
    targets = evaluate_targets(records, cfg)
    devices = [d.platform for d in jax.devices()]
    gpu = any(p in ("gpu", "cuda", "rocm") for p in devices)
    rows = [r for rec in records.values() for r in rec["rows"]]
    run.write_metrics([{k: r.get(k) for k in COLUMNS} for r in rows], columns=COLUMNS)
    run.write_figure("throughput.png", figure(records, cfg), dpi=cfg["plot"]["dpi"])
    run.write_report(report_markdown(records, targets, cfg, wall=wall, gpu=gpu))
    run.write_text("README_SECTION.md", readme_section(records, targets, cfg))
    run.write_summary(
        {"targets": targets, "sections": records},
        gpu_available=gpu,
        measurement_wall_seconds=wall,
        script_wall_seconds=time.perf_counter() - t0,
    )
    if args.publish:
        for name in PUBLISHED:
            atomic_write_bytes(Path(args.out) / EXPERIMENT / name, run.file(name).read_bytes())
        # The README's performance section is this run's, word for word.
        if args.readme is not None:
            update_readme(args.readme, run.file("README_SECTION.md").read_text(encoding="utf-8"))
    print(f"report: {run.file('report.md')}")
    return run.path
