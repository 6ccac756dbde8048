"""Section ``analytic``: the closed-form kernels against the read ceiling of their inputs.

Normal and MultivariateNormalDiag over a grid of B × D, MultivariateNormalTriL for the
configured (d, B), Categorical for K up to 32 768 (B·K fixed). Throughput is in GB/s of
parameter bytes read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import jaxkl
from benchmarks.throughput.harness import (
    Compiled,
    Timing,
    best_of,
    compile_bound,
    compile_fields,
    fraction_of,
    median,
    read_ceiling,
    time_interleaved,
)
from benchmarks.throughput.inputs import random_logits, random_normal_params, random_tril_params
from benchmarks.throughput.records import new_row


def analytic_row(
    workload: str,
    impl: str,
    kernel: Compiled | Callable,
    timing: Timing,
    ceiling: tuple[dict[str, Callable], int],
    *,
    batch: int,
    event: int,
    stream: Callable | None = None,
) -> dict[str, Any]:
    """Time one analytic kernel back to back with the read ceiling of its own inputs."""
    ceiling_calls, nbytes = ceiling
    call = kernel.call if isinstance(kernel, Compiled) else kernel
    calls = {"kernel": call, **ceiling_calls}
    if stream is not None:
        calls["stream"] = stream
    t = time_interleaved(calls, timing)
    best = best_of(t["read_jax_sum"], t["read_numpy_sum"])
    row = new_row(
        "analytic",
        workload,
        impl,
        batch=batch,
        event=event,
        bytes_in=nbytes,
        seconds=median(t["kernel"]),
        throughput=nbytes / median(t["kernel"]) / 1e9,
        unit="GB/s",
        ceiling=nbytes / median(best) / 1e9,
        fraction=fraction_of(t["kernel"], best),
        # A single-threaded numpy.sum over the same bytes, timed in the same repeats.
        fraction_of_numpy_read=fraction_of(t["kernel"], t["read_numpy_sum"]),
        read_jax_sum_gbs=nbytes / median(t["read_jax_sum"]) / 1e9,
        read_numpy_sum_gbs=nbytes / median(t["read_numpy_sum"]) / 1e9,
    )
    if isinstance(kernel, Compiled):
        row.update(compile_fields(kernel))
    if stream is not None:
        row["stream_gbs"] = nbytes / median(t["stream"]) / 1e9
        row["fraction_of_stream"] = fraction_of(t["kernel"], t["stream"])
    return row


def run_analytic(cfg: dict[str, Any]) -> dict[str, Any]:
    """The analytic grid, each kernel timed with the read ceiling of its inputs."""
    a, timing = cfg["analytic"], Timing.from_config(cfg)
    rng = np.random.default_rng(cfg["seed"])
    rows = []
    for b in a["batch_sizes"]:
        for d in a["event_sizes"]:
            arrays = random_normal_params(rng, (b, d))
            ceiling = read_ceiling(arrays)
            # The elementwise Normal kernel's own traffic: read four arrays, write one.
            stream = compile_bound(lambda w, x, y, z: (w + x) + (y + z), *arrays).call
            kernel = compile_bound(jaxkl.analytic.normal, *arrays)
            rows.append(
                analytic_row(
                    "normal", "jaxkl", kernel, timing, ceiling, batch=b, event=d, stream=stream
                )
            )
            kernel = compile_bound(jaxkl.analytic.mvn_diag, *arrays)
            rows.append(
                analytic_row("mvn_diag", "jaxkl", kernel, timing, ceiling, batch=b, event=d)
            )
            del arrays, ceiling, stream, kernel
    for d, b in a["tril_cases"]:
        arrays = random_tril_params(rng, b, d)
        kernel = compile_bound(jaxkl.analytic.mvn_tril, *arrays)
        row = analytic_row(
            "mvn_tril", "jaxkl", kernel, timing, read_ceiling(arrays), batch=b, event=d
        )
        # One triangular solve with d + 1 right-hand sides: d² flops per right-hand side.
        row["gflops"] = b * d * d * (d + 1) / row["seconds"] / 1e9
        rows.append(row)
        del arrays, kernel
    for k in a["categorical_categories"]:
        b = a["categorical_elements"] // k
        arrays = random_logits(rng, b, k)
        kernel = compile_bound(jaxkl.analytic.categorical, *arrays)
        rows.append(
            analytic_row(
                "categorical", "jaxkl", kernel, timing, read_ceiling(arrays), batch=b, event=k
            )
        )
        del arrays, kernel
    return {"rows": rows}
