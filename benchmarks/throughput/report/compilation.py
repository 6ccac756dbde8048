"""The report's compile times and retrace counts, over every compiled jaxkl kernel."""

from __future__ import annotations

from benchmarks.throughput.harness import median
from benchmarks.throughput.records import section_rows
from benchmarks.throughput.report.format import markdown_table


def _compiled_rows(records) -> list[dict]:
    """Rows of compiled jaxkl kernels (one per kernel and shape; variance: one per option)."""
    out, seen = [], set()
    for sec in ("knn", "analytic", "monte_carlo", "peers", "variance"):
        for r in section_rows(records, sec):
            if r.get("compile_s") is None or not r["impl"].startswith(("jaxkl", "k1", "k3")):
                continue
            name = r["impl"] if sec in ("peers", "variance") else r["workload"]
            key = (sec, name, r.get("batch"), r.get("event"), r.get("samples"))
            if sec == "variance":
                key = (sec, name)
            if key not in seen:
                seen.add(key)
                out.append({**r, "kernel": f"mc_kl {name}" if sec == "variance" else name})
    return out


def retrace_report(records) -> list[str]:
    """Compile times and traces per kernel, then the eager retrace counts."""
    compiled = _compiled_rows(records)
    out = []
    if compiled:
        by: dict[str, list] = {}
        for r in compiled:
            by.setdefault(r["kernel"], []).append(r)
        body = []
        for name, rs in by.items():
            checked = [r for r in rs if "retraces" in r]
            body.append(
                [
                    name,
                    len(rs),
                    median([r["trace_s"] for r in rs]),
                    median([r["compile_s"] for r in rs]),
                    max(r["compile_s"] for r in rs),
                    max((r["traces"] for r in checked), default=None),
                    sum(r["retraces"] for r in checked) if checked else None,
                    max(r["xla_fusions"] for r in rs),
                ]
            )
        out += [
            "## Compile time and retracing",
            "",
            "Per kernel over the shapes measured: trace+lower and XLA compile seconds; "
            "`traces` counts how often the Python function was traced over the ahead-of-time "
            "compile and two later calls of its `jax.jit` wrapper with the same arguments "
            "(1 = compiled once, never retraced); `retraces` sums the traces those calls "
            "added; `fusions` is the number of fused loops XLA launches per call.",
            "",
            markdown_table(
                [
                    "kernel",
                    "shapes",
                    "trace+lower s",
                    "compile s (median)",
                    "compile s (max)",
                    "traces",
                    "retraces",
                    "fusions",
                ],
                body,
            ),
            "",
        ]
    rows = section_rows(records, "retrace")
    if rows:
        body = [
            [r["workload"], r.get("eager_second_call_traces"), r.get("eager_second_call_compiles")]
            for r in rows
        ]
        out += [
            "Eager use (no `jit` around the call): traces and compiles that "
            "`jax.monitoring` reports during the second of two calls with equal shapes and "
            "new values (0 and 0 = everything reused).",
            "",
            markdown_table(["function", "eager 2nd-call traces", "eager 2nd-call compiles"], body),
            "",
        ]
    return out
