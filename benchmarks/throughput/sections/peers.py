"""Section ``peers``: the largest diagonal-Gaussian workloads, analytic and Monte Carlo,
through jaxkl's front doors, textbook formulas, NumPy and every importable peer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import jaxkl
from benchmarks.throughput.harness import Compiled, Timing, compile_bound, read_ceiling, rng_ceiling
from benchmarks.throughput.inputs import random_normal_params
from benchmarks.throughput.peer_libraries import (
    numpy_mvn_diag,
    peer_analytic_calls,
    peer_mc_calls,
    peer_status,
    textbook_mc_k1,
    textbook_mvn_diag,
)
from benchmarks.throughput.records import new_row
from benchmarks.throughput.sections.analytic import analytic_row
from benchmarks.throughput.sections.monte_carlo import mc_row, mvn_diag_mc


def run_peers(cfg: dict[str, Any]) -> dict[str, Any]:
    """The largest diag-Gaussian workloads through jaxkl's front doors and other libraries."""
    a, timing = cfg["analytic"], Timing.from_config(cfg)
    status = peer_status()
    rng = np.random.default_rng(cfg["seed"] + 3)
    rows = []
    b, d = max(a["batch_sizes"]), max(a["event_sizes"])
    arrays = random_normal_params(rng, (b, d))

    def via_kl(la, sa, lb, sb):
        return jaxkl.kl(jaxkl.MultivariateNormalDiag(la, sa), jaxkl.MultivariateNormalDiag(lb, sb))

    def via_independent(la, sa, lb, sb):
        qa = jaxkl.Independent(jaxkl.Normal(la, sa), 1)
        qb = jaxkl.Independent(jaxkl.Normal(lb, sb), 1)
        return jaxkl.kl(qa, qb)

    impls: dict[str, Compiled | Callable] = {
        "jaxkl.analytic.mvn_diag": compile_bound(jaxkl.analytic.mvn_diag, *arrays),
        "jaxkl.kl(MultivariateNormalDiag)": compile_bound(via_kl, *arrays),
        "jaxkl.kl(Independent(Normal))": compile_bound(via_independent, *arrays),
        "jax textbook formula (jit)": compile_bound(textbook_mvn_diag, *arrays),
    }
    host = [np.asarray(x) for x in arrays]
    impls["numpy textbook formula"] = lambda: numpy_mvn_diag(*host)
    try:
        impls.update(peer_analytic_calls(status, arrays))
    except Exception as err:  # report, do not crash, if a peer's API has moved
        rows.append(new_row("peers", "mvn_diag", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = read_ceiling(arrays)
    for impl, kernel in impls.items():
        try:
            row = analytic_row("mvn_diag", impl, kernel, timing, ceiling, batch=b, event=d)
        except Exception as err:
            row = new_row("analytic", "mvn_diag", impl, batch=b, event=d, note=f"failed: {err!r}")
        row["section"] = "peers"
        rows.append(row)
    del arrays, host, ceiling, impls

    bm, n, dm = max(cfg["monte_carlo"]["cases"], key=lambda c: c[0] * c[1] * c[2])
    params = random_normal_params(rng, (bm, dm))
    key = jax.random.key(cfg["seed"])
    mc_impls: dict[str, Compiled | Callable] = {
        "jaxkl.mc_kl k1": compile_bound(mvn_diag_mc("k1", n), key, *params),
        "jax textbook k1 (jit)": compile_bound(textbook_mc_k1(n), key, *params),
        # The same mc_kl with XLA's counter-based generator instead of threefry: what the
        # choice of PRNG costs (the ceiling stays the default threefry one).
        "jaxkl.mc_kl k1, unsafe_rbg key": compile_bound(
            mvn_diag_mc("k1", n), jax.random.key(cfg["seed"], impl="unsafe_rbg"), *params
        ),
    }
    host = [np.asarray(x) for x in params]
    gen = np.random.default_rng(cfg["seed"])

    def numpy_k1():
        eps = gen.standard_normal((n, bm, dm), dtype=np.float32)
        x = host[0] + host[1] * eps
        zp = (x - host[2]) / host[3]
        return np.mean(0.5 * np.sum(zp * zp - eps * eps, -1), 0) + np.sum(
            np.log(host[3] / host[1]), -1
        )

    mc_impls["numpy textbook k1"] = numpy_k1
    try:
        mc_impls.update(peer_mc_calls(status, key, params, n))
    except Exception as err:
        rows.append(new_row("peers", "mc_kl_k1", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = rng_ceiling((n, bm, dm), key)
    for impl, call in mc_impls.items():
        try:
            row = mc_row("mc_kl_k1", impl, call, timing, ceiling, batch=bm, samples=n, event=dm)
        except Exception as err:
            row = new_row("monte_carlo", "mc_kl_k1", impl, note=f"failed: {err!r}")
        row["section"] = "peers"
        rows.append(row)
    return {"rows": rows, "status": status}
