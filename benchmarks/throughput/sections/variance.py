"""Section ``variance``: precision per second, 1 / (variance × seconds per estimate), of each
variance-reduction option of ``mc_kl`` against plain k1, with a 5-SE unbiasedness check."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl
from benchmarks.throughput.harness import (
    Timing,
    compile_bound,
    compile_fields,
    median,
    time_interleaved,
)
from benchmarks.throughput.options import mc_kl_keywords, parse_option
from benchmarks.throughput.records import new_row

# The config's [variance.pairs], in the order the report lists them.
PAIRS = ("close", "medium", "far")
# An option is unbiased when its mean lies within Z_MAX standard errors of the exact KL.
Z_MAX = 5.0


def run_variance(cfg: dict[str, Any]) -> dict[str, Any]:
    """Precision per second of each mc_kl option, and its unbiasedness (5 SE)."""
    v, timing = cfg["variance"], Timing.from_config(cfg)
    n, reps = v["num_samples"], v["replicates"]
    known = mc_kl_keywords()
    keys = jax.random.split(jax.random.key(cfg["seed"] + 4), reps)
    pairs = {}
    for name in PAIRS:
        pr = v["pairs"][name]
        params = [jnp.float32(pr[k]) for k in ("q_loc", "q_scale", "p_loc", "p_scale")]
        exact = float(jaxkl.analytic.normal(*params))
        pairs[name] = (params, exact)
    rows = []
    for option in v["options"]:
        estimator, flags = parse_option(option)
        missing = sorted(set(flags) - known)
        if missing:
            rows += [
                new_row(
                    "variance",
                    name,
                    option,
                    exact=pairs[name][1],
                    note=f"mc_kl has no keyword {', '.join(missing)}",
                )
                for name in PAIRS
            ]
            continue
        kwargs = dict(flags)
        if "qmc" in flags:
            kwargs["qmc_randomizations"] = v["qmc_randomizations"]
        used = []

        # One compiled function per option; the pair's parameters are arguments.
        def estimates(ks, lq, sq, lp, sp, estimator=estimator, kwargs=kwargs, used=used):
            q, p = jaxkl.Normal(lq, sq), jaxkl.Normal(lp, sp)

            def one(k):
                est = jaxkl.mc_kl(k, q, p, n, estimator=estimator, **kwargs)
                used.append(est.num_samples)  # a static int at trace time
                return est.value, est.stderr

            return jax.vmap(one)(ks)

        try:
            c = compile_bound(estimates, keys, *pairs[PAIRS[0]][0])
        except ValueError as err:  # a combination mc_kl refuses
            rows += [
                new_row(
                    "variance", name, option, exact=pairs[name][1], note=f"refused by mc_kl: {err}"
                )
                for name in PAIRS
            ]
            continue
        for name in PAIRS:
            params, exact = pairs[name]
            call = lambda c=c, params=params: c.executable(keys, *params)  # noqa: E731
            values, stderrs = (np.asarray(x, np.float64) for x in call())
            t = median(time_interleaved({"kernel": call}, timing)["kernel"]) / reps
            var = float(np.var(values, ddof=1))
            se = math.sqrt(var / reps)
            mean = float(np.mean(values))
            z = (mean - exact) / se if se > 0 else (0.0 if mean == exact else math.inf)
            rows.append(
                new_row(
                    "variance",
                    name,
                    option,
                    exact=exact,
                    samples=int(used[0]),
                    replicates=reps,
                    seconds=t,
                    **compile_fields(c),
                    mean=mean,
                    variance=var,
                    z=z,
                    unbiased=bool(abs(z) <= Z_MAX),
                    # The estimator's own stderr should match the spread across replicates.
                    mean_reported_stderr=float(np.mean(stderrs)),
                    replicate_sd=math.sqrt(var),
                    precision_per_s=(1.0 / (var * t)) if var > 0 else math.inf,
                )
            )
    order = {opt: i for i, opt in enumerate(v["options"])}
    rows.sort(key=lambda r: (PAIRS.index(r["workload"]), order[r["impl"]]))
    for name in PAIRS:
        ref = next((r for r in rows if r["workload"] == name and r["impl"] == "k1"), None)
        for r in rows:
            if r["workload"] == name and "precision_per_s" in r and ref is not None:
                r["gain"] = r["precision_per_s"] / ref["precision_per_s"]
                r["variance_ratio"] = ref["variance"] / r["variance"] if r["variance"] else math.inf
                r["time_ratio"] = r["seconds"] / ref["seconds"]
    return {"rows": rows, "mc_kl_keywords": sorted(known)}
