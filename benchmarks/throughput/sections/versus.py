"""Section ``versus``: jaxkl ÷ the fastest peer, per workload and shape, in this process."""

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
    fraction_of,
    median,
    read_ceiling,
    rng_ceiling,
    time_interleaved,
)
from benchmarks.throughput.inputs import random_logits, random_normal_params, random_tril_params
from benchmarks.throughput.peer_libraries import (
    categorical_peers,
    mvn_diag_peers,
    mvn_tril_peers,
    peer_mc_calls,
    peer_status,
    textbook_mc_k1,
)
from benchmarks.throughput.records import new_row
from benchmarks.throughput.sections.monte_carlo import mc_row, mvn_diag_mc


def _versus_mc_rows(status, rng, key, timing, *, batch, samples, event) -> list[dict[str, Any]]:
    """Reparameterised k1 on a (small) batch: jaxkl.mc_kl ÷ each peer's hand-written k1.

    Every call is timed back to back with the RNG ceiling for its draws (``mc_row``);
    ``vs_fastest_peer`` divides jaxkl's fraction by the fastest peer's. jaxkl returns the
    whole Estimate (value, stderr, tail diagnostic); the peers return the mean only.
    """
    params = random_normal_params(rng, (batch, event))
    calls: dict[str, Compiled | Callable] = {
        "jaxkl": compile_bound(mvn_diag_mc("k1", samples), key, *params),
        "textbook jit": compile_bound(textbook_mc_k1(samples), key, *params),
    }
    rows = []
    try:
        calls.update(peer_mc_calls(status, key, params, samples))
    except Exception as err:
        rows.append(new_row("versus", "mc_kl_k1", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = rng_ceiling((samples, batch, event), key)
    for impl, call in calls.items():
        try:
            row = mc_row(
                "mc_kl_k1", impl, call, timing, ceiling, batch=batch, samples=samples, event=event
            )
        except Exception as err:
            row = new_row("versus", "mc_kl_k1", impl, note=f"failed: {err!r}")
        row["section"] = "versus"
        rows.append(row)
    timed = [r for r in rows if r.get("fraction") is not None]
    mine = next((r for r in timed if r["impl"] == "jaxkl"), None)
    others = [r for r in timed if r["impl"] != "jaxkl"]
    if mine is not None and others:
        fastest = max(others, key=lambda r: r["fraction"])
        mine["fastest_peer"] = fastest["impl"]
        mine["vs_fastest_peer"] = mine["fraction"] / fastest["fraction"]
    return rows


def _versus_rows(
    workload: str, ours: Callable, peers: dict[str, Callable], arrays, timing, *, batch, event
) -> list[dict[str, Any]]:
    """jaxkl and every peer on the same arrays, timed in turn with their read ceiling.

    Each implementation's ``fraction`` is the median of its per-repeat ratios to the read
    ceiling timed back to back with it; the summary row divides jaxkl's by the fastest
    peer's (``vs_fastest_peer``). A peer that fails to compile is reported, not fatal.
    """
    ceiling_calls, nbytes = read_ceiling(arrays)
    calls = {"jaxkl": compile_bound(ours, *arrays).call}
    rows = []
    for name, fn in peers.items():
        try:
            calls[name] = compile_bound(fn, *arrays).call
        except Exception as err:
            rows.append(
                new_row("versus", workload, name, batch=batch, event=event, note=f"failed: {err!r}")
            )
    t = time_interleaved({**calls, **ceiling_calls}, timing)
    best = best_of(t["read_jax_sum"], t["read_numpy_sum"])
    for name in calls:
        rows.append(
            new_row(
                "versus",
                workload,
                name,
                batch=batch,
                event=event,
                bytes_in=nbytes,
                seconds=median(t[name]),
                throughput=nbytes / median(t[name]) / 1e9,
                unit="GB/s",
                ceiling=nbytes / median(best) / 1e9,
                fraction=fraction_of(t[name], best),
                repeats=len(t[name]),
            )
        )
    timed = [r for r in rows if r.get("fraction") is not None]
    mine = next(r for r in timed if r["impl"] == "jaxkl")
    others = [r for r in timed if r["impl"] != "jaxkl"]
    if others:
        fastest = max(others, key=lambda r: r["fraction"])
        mine["fastest_peer"] = fastest["impl"]
        mine["vs_fastest_peer"] = mine["fraction"] / fastest["fraction"]
    return rows


def run_versus(cfg: dict[str, Any]) -> dict[str, Any]:
    """jaxkl ÷ the fastest peer, per workload and shape, all in this process.

    Diagonal Gaussian over the analytic grid (B × D) against numpyro, distrax, TFP and a
    jitted textbook formula; Categorical at LLM vocabulary sizes against optax, TFP and
    the jitted textbook log-softmax form. Peers that are not importable are skipped and
    the report says why (``peer_status``).
    """
    a, v, timing = cfg["analytic"], cfg["versus"], Timing.from_config(cfg)
    status = peer_status()
    rng = np.random.default_rng(cfg["seed"] + 6)
    rows: list[dict[str, Any]] = []
    diag_peers = mvn_diag_peers(status)
    for b in a["batch_sizes"]:
        for d in a["event_sizes"]:
            arrays = random_normal_params(rng, (b, d))
            rows += _versus_rows(
                "mvn_diag", jaxkl.analytic.mvn_diag, diag_peers, arrays, timing, batch=b, event=d
            )
            del arrays
    cat_peers = categorical_peers(status)
    for b, k in v["categorical_cases"]:
        arrays = random_logits(rng, b, k)
        rows += _versus_rows(
            "categorical", jaxkl.analytic.categorical, cat_peers, arrays, timing, batch=b, event=k
        )
        del arrays
    tril_peers = mvn_tril_peers(status)
    for d, b in v["tril_cases"]:
        arrays = random_tril_params(rng, b, d)
        rows += _versus_rows(
            "mvn_tril", jaxkl.analytic.mvn_tril, tril_peers, arrays, timing, batch=b, event=d
        )
        del arrays
    key = jax.random.key(cfg["seed"])
    for b, n, d in v["mc_cases"]:
        rows += _versus_mc_rows(status, rng, key, timing, batch=b, samples=n, event=d)
    # k-NN against scipy's cKDTree is measured by its own function, added separately; its
    # rows go into this section with workload "knn" and the same fields.
    return {"rows": rows, "status": status}
