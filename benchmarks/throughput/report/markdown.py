"""``report.md``: the run's setting, the targets, every section's table and what bounds them."""

from __future__ import annotations

import os
import platform

import jax

from benchmarks.throughput.report.bounds import bounds_report
from benchmarks.throughput.report.compilation import retrace_report
from benchmarks.throughput.report.format import format_value, markdown_table
from benchmarks.throughput.report.sections import (
    analytic_report,
    anatomy_report,
    knn_report,
    knn_tree_report,
    mc_report,
    peers_report,
    variance_report,
)
from benchmarks.throughput.report.versus import versus_report


def report_markdown(records, targets, cfg, *, wall: float, gpu: bool) -> str:
    """``report.md``: setting, targets, each section's table, bounds, reproduce."""
    env = {
        "jax": jax.__version__,
        "devices": ", ".join(str(d) for d in jax.devices()),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    out = [
        "# Throughput against this machine's ceilings",
        "",
        f"jax {env['jax']} on {env['devices']} ({env['cpus']} CPUs), float32, "
        f"measurement wall time {wall:.0f} s. "
        + (
            "A GPU was available for this run."
            if gpu
            else "No GPU was available for this run; every figure below is CPU-only."
        ),
        "",
        "Every speed is a ratio to a ceiling timed in the same process, back to back with it "
        "in each repeat (median of the per-repeat ratios): the **read ceiling** is the faster "
        "of a jitted `jnp.sum` and `numpy.sum` over the kernel's own input arrays; the **RNG "
        "ceiling** is `jax.random.normal` (threefry) for the same count of numbers, written "
        "out or summed in-jit, whichever is faster. Timing: `jax.jit(f).lower(...).compile()`"
        f", {cfg['timing']['warmup']} warm-up call(s), median of {cfg['timing']['repeats']} "
        f"repeats, each looping the call for ≥ {cfg['timing']['min_time']} s and ending in "
        "`block_until_ready`.",
        "",
        "Load average (1 min) at the start and end of each section: "
        + ", ".join(
            f"{name} {format_value(rec['load_average'][0], 2)}"
            f"→{format_value(rec['load_average'][1], 2)}"
            for name, rec in records.items()
        )
        + ". Ratios are only trustworthy when these are well below the core count.",
        "",
        "## Targets (fractions of ceilings measured in this run)",
        "",
        markdown_table(
            ["target", "measured", "goal", "met", "where"],
            [[t["target"], t["measured"], t["goal"], t["met"], t["what"]] for t in targets],
        ),
        "",
    ]
    out += versus_report(records)
    out += analytic_report(records)
    out += mc_report(records)
    out += peers_report(records)
    out += anatomy_report(records)
    out += knn_report(records)
    out += knn_tree_report(records, cfg)
    out += variance_report(records, cfg)
    out += retrace_report(records)
    out += bounds_report(records, targets, cfg)
    out += [
        "## Reproduce",
        "",
        "```",
        # The script, which runs this package's command line: committed reports cite it.
        ".venv/bin/python experiments/throughput.py --config configs/throughput.toml",
        "```",
        "",
        "on an otherwise idle machine; `configs/throughput_quick.toml` runs every section at "
        "tiny sizes (a smoke test, not a measurement). `make throughput-peers` runs the same "
        "config in a separate environment with torch (CPU build), distrax and numpyro "
        "installed. This run had "
        f"`OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}`; set "
        "to 1, the triangular solves of MultivariateNormalTriL do not compete with XLA's "
        "threads for the cores (1.3× faster at d = 64 on an idle 2-core machine, far more "
        "under load).",
        "",
    ]
    return "\n".join(out)
