"""Section ``knn``: ``knn_kl`` time per call and peak memory as n = m grows."""

from __future__ import annotations

import time
from typing import Any

import jax.numpy as jnp
import numpy as np

import jaxkl
from benchmarks.throughput.harness import (
    compile_bound,
    compile_fields,
    maxrss_bytes,
    median,
    time_calls,
    xla_diagnostics,
)
from benchmarks.throughput.records import new_row


def run_knn(cfg: dict[str, Any]) -> dict[str, Any]:
    """knn_kl time per call and peak memory, smallest size first.

    The first call after compiling is the warm-up and gives the estimate; then up to
    ``knn.repeats`` calls are timed, as many as fit in ``knn.max_seconds`` (if not even
    one fits, the warm-up call's time is reported, with ``timed_calls = 0``).
    Memory, two ways: XLA's buffer assignment for the compiled call (arguments + outputs +
    temporaries, exact for what XLA allocates) and the growth of the process's resident
    high-water mark (``ru_maxrss``) over the section — a high-water mark only grows, so
    sizes run in increasing order and each figure is the peak up to that size.
    """
    kc = cfg["knn"]
    rng = np.random.default_rng(cfg["seed"] + 2)
    d, k = kc["dim"], kc["k"]
    exact = 0.5 * d * 0.25  # KL(N(0, I) ‖ N(0.5·1, I)) = ½‖δ‖²
    base_rss = maxrss_bytes()
    rows = []
    for i, n in enumerate(sorted(kc["sizes"])):
        x = jnp.asarray(rng.standard_normal((n, d), dtype=np.float32))
        y = jnp.asarray(rng.standard_normal((n, d), dtype=np.float32) + np.float32(0.5))
        try:

            def knn_value_stderr(x, y):
                est = jaxkl.knn_kl(x, y, k=k)
                return est.value, est.stderr

            c = compile_bound(knn_value_stderr, x, y)
        except NotImplementedError:
            rows.append(
                new_row(
                    "knn",
                    "knn_kl",
                    "jaxkl",
                    batch=n,
                    event=d,
                    note="knn_kl is not implemented in this checkout",
                )
            )
            break
        mem = c.executable.memory_analysis()
        xla_bytes = None
        if mem is not None:
            xla_bytes = int(
                mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
            )
        t0 = time.perf_counter()
        value, stderr = (float(v) for v in c.call())
        first = time.perf_counter() - t0
        calls = min(kc["repeats"], int(kc["max_seconds"] // first))
        t = [time_calls(c.call, 1) for _ in range(calls)] or [first]
        pairs = n * n
        # The retrace check calls the kernel twice more: done at the smallest size only.
        fields = (
            compile_fields(c)
            if i == 0
            else {"trace_s": c.trace_s, "compile_s": c.compile_s, **xla_diagnostics(c)}
        )
        rows.append(
            new_row(
                "knn",
                "knn_kl",
                "jaxkl",
                batch=n,
                event=d,
                count=pairs,
                seconds=median(t),
                throughput=pairs / median(t) / 1e6,
                unit="M pairs/s",
                timed_calls=calls,
                **fields,
                value=value,
                stderr=stderr,
                exact=exact,
                xla_peak_bytes=xla_bytes,
                rss_peak_growth_bytes=maxrss_bytes() - base_rss,
            )
        )
    return {"rows": rows}
