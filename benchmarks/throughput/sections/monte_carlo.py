"""Section ``monte_carlo``: ``mc_kl`` (k1, k3) and ``importance_kl`` against the RNG ceiling.

Throughput is in M sample-dims/s (samples × batch × event size per second); the ceiling is
``jax.random.normal`` drawing as many numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
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
    rng_ceiling,
    time_interleaved,
)
from benchmarks.throughput.inputs import random_normal_params
from benchmarks.throughput.records import new_row


def mvn_diag_mc(estimator: str, n: int) -> Callable:
    """``mc_kl`` between two MultivariateNormalDiag, as a function of arrays."""

    def f(key, loc_q, scale_q, loc_p, scale_p):
        q = jaxkl.MultivariateNormalDiag(loc_q, scale_q)
        p = jaxkl.MultivariateNormalDiag(loc_p, scale_p)
        return jaxkl.mc_kl(key, q, p, n, estimator=estimator)

    return f


def mvn_diag_importance(n: int, widen: float) -> Callable:
    """``importance_kl`` with a proposal ``widen`` times wider than q."""

    def f(key, loc_q, scale_q, loc_p, scale_p):
        q = jaxkl.MultivariateNormalDiag(loc_q, scale_q)
        p = jaxkl.MultivariateNormalDiag(loc_p, scale_p)
        proposal = jaxkl.MultivariateNormalDiag(loc_q, widen * scale_q)
        return jaxkl.importance_kl(key, q, p, proposal, n)

    return f


def mc_row(
    workload,
    impl,
    kernel: Compiled | Callable,
    timing,
    ceiling: dict[str, Callable],
    *,
    batch,
    samples,
    event,
) -> dict[str, Any]:
    """Time one Monte Carlo call back to back with the RNG ceiling for its draws."""
    count = batch * samples * event
    call = kernel.call if isinstance(kernel, Compiled) else kernel
    t = time_interleaved({"kernel": call, **ceiling}, timing)
    best = best_of(t["rng_written"], t["rng_summed"])
    row = new_row(
        "monte_carlo",
        workload,
        impl,
        batch=batch,
        event=event,
        samples=samples,
        count=count,
        seconds=median(t["kernel"]),
        throughput=count / median(t["kernel"]) / 1e6,
        unit="M sample-dims/s",
        ceiling=count / median(best) / 1e6,
        fraction=fraction_of(t["kernel"], best),
        rng_written_mps=count / median(t["rng_written"]) / 1e6,
        rng_summed_mps=count / median(t["rng_summed"]) / 1e6,
        repeats=len(t["kernel"]),
    )
    if isinstance(kernel, Compiled):
        row.update(compile_fields(kernel))
    return row


def run_monte_carlo(cfg: dict[str, Any]) -> dict[str, Any]:
    """Each configured (B, N, D): every estimator and ``importance_kl``."""
    m, timing = cfg["monte_carlo"], Timing.from_config(cfg)
    rng = np.random.default_rng(cfg["seed"] + 1)
    key = jax.random.key(cfg["seed"])
    rows = []
    for b, n, d in m["cases"]:
        params = random_normal_params(rng, (b, d))
        ceiling = rng_ceiling((n, b, d), key)
        for est in m["estimators"]:
            c = compile_bound(mvn_diag_mc(est, n), key, *params)
            rows.append(
                mc_row(f"mc_kl_{est}", "jaxkl", c, timing, ceiling, batch=b, samples=n, event=d)
            )
        c = compile_bound(mvn_diag_importance(n, m["importance_scale"]), key, *params)
        rows.append(
            mc_row("importance_kl", "jaxkl", c, timing, ceiling, batch=b, samples=n, event=d)
        )
    return {"rows": rows}
