"""Section ``knn_tree``: ``knn_kl``'s two searches against scipy's ``cKDTree`` computing the
same estimate directly, over a grid of d × n."""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl
from benchmarks.throughput.harness import compile_bound, fraction_of, median
from benchmarks.throughput.records import new_row


def _scipy_knn_estimate(x: np.ndarray, y: np.ndarray, k: int, groups: int = 10):
    """knn_kl's value and subsample stderr computed directly with scipy's cKDTree.

    What one would write by hand (queries on all cores); it does not handle exact copies:
    a copy gives a zero distance, hence log 0.
    """
    from scipy.spatial import cKDTree

    def value(x, y):
        (n, d), m = x.shape, y.shape[0]
        rho = cKDTree(x).query(x, [k + 1], workers=-1)[0][:, 0]
        nu = cKDTree(y).query(x, [k], workers=-1)[0][:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return d * np.mean(np.log(nu / rho)) + math.log(m / (n - 1))

    n, m = x.shape[0], y.shape[0]
    g = min(groups, n // (k + 1), m // k)
    n_g, m_g = n // g, m // g
    subsamples = [value(x[: n_g * g][i::g], y[: m_g * g][i::g]) for i in range(g)]
    return value(x, y), float(np.std(subsamples, ddof=1) / math.sqrt(g))


def run_knn_tree(cfg: dict[str, Any]) -> dict[str, Any]:
    """knn_kl's k-d tree and brute-force searches against scipy's cKDTree computing the
    same estimate directly (value and 10-subsample stderr), n = m, x ~ N(0, I_d),
    y ~ N(0.5·1, I_d), float32.

    jaxkl is timed as users call it, ``knn_kl(x, y, method=...)`` eagerly. After one
    warm-up call each, scipy, the tree and (for n ≤ ``knn_tree.brute_repeat_max_n``) the
    brute force run in turn within each of ``knn_tree.repeats`` repeats; "× scipy" is the
    median over repeats of scipy's time over jaxkl's (> 1: jaxkl faster). Larger brute
    forces (up to ``knn_tree.brute_max_n``) run once after their warm-up and are set
    against the median scipy time. ``jaxkl auto`` is the search ``method="auto"`` takes on
    CPU at that (n, d), with that search's figures: it is what the k-NN target reads.
    ``identical``: the tree's value and stderr equal the brute force's bit for bit.
    """
    from jaxkl.estimators.knn import auto_takes_tree

    kc = cfg["knn_tree"]
    rng = np.random.default_rng(cfg["seed"] + 3)
    k = kc["k"]
    rows = []

    def timed_call(method, xj, yj):
        def call():
            est = jaxkl.knn_kl(xj, yj, k=k, method=method)
            return tuple(float(v) for v in jax.block_until_ready((est.value, est.stderr)))

        return call

    for d in kc["dims"]:
        for n in kc["sizes"]:
            x = rng.standard_normal((n, d), dtype=np.float32)
            y = rng.standard_normal((n, d), dtype=np.float32) + np.float32(0.5)
            xj, yj = jnp.asarray(x), jnp.asarray(y)
            calls = {"scipy": lambda x=x, y=y: _scipy_knn_estimate(x, y, k)}
            if [d, n] not in kc["skip_tree"]:
                calls["tree"] = timed_call("tree", xj, yj)
            brute_runs = n <= kc["brute_max_n"]
            if brute_runs and n <= kc["brute_repeat_max_n"]:
                calls["brute"] = timed_call("brute", xj, yj)
            # Warm-up (compiles); scipy has nothing to warm, its first timed call counts.
            values = {name: call() for name, call in calls.items() if name != "scipy"}
            times: dict[str, list] = {name: [] for name in calls}
            for _ in range(kc["repeats"]):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    out = call()
                    times[name].append(time.perf_counter() - t0)
                    values.setdefault(name, out)
            if brute_runs and "brute" not in calls:
                # Compiled ahead (without running), then one timed call.
                def brute(a, b):
                    est = jaxkl.knn_kl(a, b, k=k, method="brute")
                    return est.value, est.stderr

                c = compile_bound(brute, xj, yj)
                t0 = time.perf_counter()
                out = jax.block_until_ready(c.call())
                times["brute"] = [time.perf_counter() - t0]
                values["brute"] = tuple(float(v) for v in out)
            scipy_s = median(times["scipy"])
            common = {"batch": n, "event": d, "count": n * n, "unit": "estimates/s"}
            both = "tree" in values and "brute" in values
            identical = values["tree"] == values["brute"] if both else None

            def vs_scipy(name, times=times, scipy_s=scipy_s):
                if len(times[name]) == len(times["scipy"]):
                    return fraction_of(times[name], times["scipy"])
                return scipy_s / median(times[name])

            rows.append(
                new_row(
                    "knn_tree",
                    "knn_kl",
                    "scipy cKDTree",
                    seconds=scipy_s,
                    throughput=1 / scipy_s,
                    value=values["scipy"][0],
                    stderr=values["scipy"][1],
                    timed_calls=len(times["scipy"]),
                    **common,
                )
            )
            for name in ("tree", "brute"):
                if name not in times:
                    continue
                rows.append(
                    new_row(
                        "knn_tree",
                        "knn_kl",
                        f"jaxkl {name}",
                        seconds=median(times[name]),
                        throughput=1 / median(times[name]),
                        ceiling=1 / scipy_s,
                        fraction=vs_scipy(name),
                        value=values[name][0],
                        stderr=values[name][1],
                        identical=identical,
                        timed_calls=len(times[name]),
                        **common,
                    )
                )
            auto = "tree" if auto_takes_tree(n, d) else "brute"
            if auto in times:
                rows.append(
                    new_row(
                        "knn_tree",
                        "knn_kl",
                        "jaxkl auto",
                        search=auto,
                        seconds=median(times[auto]),
                        throughput=1 / median(times[auto]),
                        ceiling=1 / scipy_s,
                        fraction=vs_scipy(auto),
                        # The versus table and the k-NN target read these (n ≥ target_min_n).
                        vs_fastest_peer=vs_scipy(auto) if n >= kc["target_min_n"] else None,
                        fastest_peer="scipy cKDTree",
                        value=values[auto][0],
                        stderr=values[auto][1],
                        **common,
                    )
                )
    return {"rows": rows}
