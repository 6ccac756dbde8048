"""The bias–variance study: every estimator, every sample size, many replicates.

For each case and each group of estimators that share their draws, one compiled
computation produces, per replicate, the estimate and its reported standard error at
every sample size of the grid (:mod:`jaxkl.study.prefix`): N_max samples are drawn once
and the estimate at N uses the first N. Within a replicate the estimates at different N
are therefore correlated, but replicates are independent, so every per-N statistic
across replicates (bias, variance, coverage) is valid; only comparisons across N inside
one replicate would not be.

Groups (all estimators in a group see the same draws):

* ``q``: x ~ q → k1, k2, k3 and the density-weighted pitfall mean(q(x)·(log q − log p));
* ``importance``: x ~ proposal → plain and self-normalised importance sampling, with
  Kish ESS and PSIS k̂;
* ``knn``: x ~ q and y ~ p → Wang–Kulkarni–Verdú k-NN (sample only; continuous cases).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.estimators.knn import knn_kl
from jaxkl.estimators.monte_carlo import per_sample_kl
from jaxkl.estimators.psis import pareto_khat
from jaxkl.study.cases import Case
from jaxkl.study.config import require_config
from jaxkl.study.metrics import loglog_slope, per_n_metrics
from jaxkl.study.prefix import prefix_mean_stderr, prefix_self_normalized
from jaxkl.study.sweep import map_rows, run_replicates

__all__ = [
    "ESTIMATOR_GROUPS",
    "THEORY",
    "estimator_groups",
    "group_plan",
    "khat_sizes",
    "knn_sizes",
    "sample_sizes",
    "slopes_table",
    "summarize_cell",
    "validate_config",
]

ESTIMATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "q": ("k1", "k2", "k3", "density_weighted"),
    "importance": ("importance", "importance_snis"),
    "knn": ("knn",),
}
ALL_ESTIMATORS = tuple(e for group in ESTIMATOR_GROUPS.values() for e in group)

# What theory says about each estimator: variance ∝ N^slope; bias.
THEORY: dict[str, dict[str, Any]] = {
    "k1": {"variance_slope": -1.0, "bias": "0 (unbiased)", "bias_slope": None},
    "k2": {
        "variance_slope": -1.0,
        "bias": (
            "constant ≠ 0: E k2 − KL = ½Var_q(log r) + ½KL² − KL "
            "(= KL²/2 for a Gaussian mean shift)"
        ),
        "bias_slope": 0.0,
    },
    "k3": {"variance_slope": -1.0, "bias": "0 (unbiased)", "bias_slope": None},
    "density_weighted": {
        "variance_slope": -1.0,
        "bias": "constant: E_q[q·log(q/p)] ≠ KL (a pitfall, not an estimator)",
        "bias_slope": 0.0,
    },
    "importance": {"variance_slope": -1.0, "bias": "0 (unbiased)", "bias_slope": None},
    "importance_snis": {"variance_slope": -1.0, "bias": "O(1/N)", "bias_slope": -1.0},
    "knn": {
        "variance_slope": -1.0,
        "bias": "→ 0 as N → ∞ (rate depends on d and smoothness)",
        "bias_slope": None,
    },
}

KHAT_MIN_N = 16  # PSIS fits a tail to ⌈min(N/5, 3√N)⌉ weights: too few below this.


def khat_sizes(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """Grid points where PSIS k̂ is fitted: N nearest ``report.compare_n``, and N_max.

    Each fit is a separate top-k and grid search with its own static shape, so fitting at
    every N would multiply the compile time; the diagnostic matters where it is read.
    """
    sizes = [n for n in sample_sizes(cfg) if n >= KHAT_MIN_N]
    if not sizes:
        return ()
    target = cfg["report"]["compare_n"]
    nearest = min(sizes, key=lambda n: (abs(math.log(n) - math.log(target)), n))
    return tuple(sorted({nearest, sizes[-1]}))


def sample_sizes(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """The grid 2^log2_min … 2^log2_max of ``cfg['sweep']``."""
    sweep = cfg["sweep"]
    return tuple(2**e for e in range(sweep["log2_min"], sweep["log2_max"] + 1))


def knn_sizes(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """k-NN's grid: every ``knn.log2_step``-th power of two of the sweep, counted down from
    ``knn.max_n``, with at least k + 1 samples.

    Each size is a separate k-NN computation with its own compile, so a coarser grid
    keeps the default run's compile time in bounds; slopes need only a few points.
    """
    k, max_n, step = cfg["knn"]["k"], cfg["knn"]["max_n"], cfg["knn"]["log2_step"]
    usable = [n for n in sample_sizes(cfg) if k + 1 <= n <= max_n]
    return tuple(usable[::-1][::step][::-1])


def estimator_groups(cfg: Mapping[str, Any], case: Case) -> dict[str, tuple[str, ...]]:
    """The groups to run for ``case``: the configured estimators, k-NN only if continuous."""
    chosen = set(cfg["estimators"]["use"])
    groups = {}
    for group, names in ESTIMATOR_GROUPS.items():
        names = tuple(n for n in names if n in chosen)
        if group == "knn" and (not case.continuous or not knn_sizes(cfg)):
            names = ()
        if names:
            groups[group] = names
    return groups


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Impossible values → ConfigError naming the key, before any compute."""
    sweep = cfg["sweep"]
    require_config(
        sweep["replicates"] >= 2, "sweep.replicates", "must be >= 2 (variance needs two)"
    )
    require_config(sweep["log2_min"] >= 0, "sweep.log2_min", "must be >= 0 (N = 2^log2_min >= 1)")
    require_config(
        sweep["log2_max"] >= sweep["log2_min"], "sweep.log2_max", "must be >= sweep.log2_min"
    )
    require_config(sweep["log2_max"] <= 24, "sweep.log2_max", "must be <= 24")
    require_config(sweep["chunk"] >= 1, "sweep.chunk", "must be >= 1")
    unknown = sorted(set(cfg["estimators"]["use"]) - set(ALL_ESTIMATORS))
    require_config(
        not unknown,
        "estimators.use",
        f"unknown {unknown}; choose from {', '.join(ALL_ESTIMATORS)}",
    )
    require_config(cfg["knn"]["k"] >= 1, "knn.k", "must be >= 1")
    require_config(cfg["knn"]["max_n"] >= 2, "knn.max_n", "must be >= 2")
    require_config(cfg["knn"]["replicates"] >= 2, "knn.replicates", "must be >= 2")
    require_config(cfg["knn"]["log2_step"] >= 1, "knn.log2_step", "must be >= 1")
    require_config(cfg["report"]["compare_n"] >= 1, "report.compare_n", "must be >= 1")
    require_config(len(cfg.get("cases", {})) >= 1, "cases", "define at least one case")


# Each group runs in two stages. Stage 1 (compiled per case) draws the samples and
# evaluates the log densities; stage 2 (compiled once per shape and shared by every case,
# through map_rows' cache) turns one replicate's draws into its estimates at every N.
# Splitting them is what keeps compile time from growing with the number of cases.


def _draw_q(case: Case, n_max: int) -> Callable:
    def draw(key):
        x = case.q.sample(key, (n_max,))
        return case.q.log_prob(x), case.p.log_prob(x)

    return draw


def _draw_importance(case: Case, n_max: int) -> Callable:
    def draw(key):
        x = case.proposal.sample(key, (n_max,))
        return case.q.log_prob(x), case.p.log_prob(x), case.proposal.log_prob(x)

    return draw


def _draw_knn(case: Case, n_max: int) -> Callable:
    def draw(key):
        kx, ky = jax.random.split(key)
        x, y = case.q.sample(kx, (n_max,)), case.p.sample(ky, (n_max,))
        # k-NN works on [n, d] points; scalar events are d = 1.
        return x.reshape(n_max, -1), y.reshape(n_max, -1)

    return draw


@functools.cache
def _estimate_q(sizes: tuple[int, ...], names: tuple[str, ...]) -> Callable:
    def estimate(lq, lp):
        out = {}
        for name in names:
            if name == "density_weighted":
                terms = jnp.exp(lq) * (lq - lp)
            else:
                terms = per_sample_kl(lq, lp, name)
            value, stderr = prefix_mean_stderr(terms, sizes)
            out[name] = {"value": value, "stderr": stderr}
        return out

    return estimate


@functools.cache
def _estimate_importance(
    sizes: tuple[int, ...], names: tuple[str, ...], fit_khat_at: tuple[int, ...]
) -> Callable:
    def estimate(lq, lp, lr):
        f, log_w = lq - lp, lq - lr
        sn_value, sn_stderr, ess = prefix_self_normalized(log_w, f, sizes)
        nan = jnp.asarray(jnp.nan, log_w.dtype)
        khat = jnp.stack([pareto_khat(log_w[:n]) if n in fit_khat_at else nan for n in sizes])
        diag = {"ess": ess, "pareto_k": khat}
        out = {}
        if "importance" in names:
            value, stderr = prefix_mean_stderr(jnp.exp(log_w) * f, sizes)
            out["importance"] = {"value": value, "stderr": stderr, **diag}
        if "importance_snis" in names:
            out["importance_snis"] = {"value": sn_value, "stderr": sn_stderr, **diag}
        return out

    return estimate


@functools.cache
def _estimate_knn(sizes: tuple[int, ...], k: int) -> Callable:
    def estimate(x, y):
        ests = [knn_kl(x[:n], y[:n], k=k) for n in sizes]
        return {
            "knn": {
                "value": jnp.stack([e.value for e in ests]),
                "stderr": jnp.stack([e.stderr for e in ests]),
            }
        }

    return estimate


def group_plan(cfg: Mapping[str, Any], case: Case, group: str, names: Sequence[str]):
    """``(draw, estimate, sizes, replicates)`` for one group of one case.

    ``draw(key)`` returns one replicate's draws; ``estimate(*draws)`` its estimates
    ``{estimator: {"value": [J], "stderr": [J], …}}`` at the J sample sizes.
    """
    names = tuple(names)
    if group == "q":
        sizes = sample_sizes(cfg)
        return (
            _draw_q(case, sizes[-1]),
            _estimate_q(sizes, names),
            sizes,
            cfg["sweep"]["replicates"],
        )
    if group == "importance":
        sizes = sample_sizes(cfg)
        estimate = _estimate_importance(sizes, names, khat_sizes(cfg))
        return _draw_importance(case, sizes[-1]), estimate, sizes, cfg["sweep"]["replicates"]
    if group == "knn":
        sizes = knn_sizes(cfg)
        return (
            _draw_knn(case, sizes[-1]),
            _estimate_knn(sizes, cfg["knn"]["k"]),
            sizes,
            cfg["knn"]["replicates"],
        )
    raise ValueError(f"unknown group {group!r}")


def run_group(cfg, case: Case, group: str, names: Sequence[str], key) -> dict[str, dict]:
    """Run one group's replicates (sharded) and summarise each estimator into a cell record."""
    draw, estimate, sizes, replicates = group_plan(cfg, case, group, names)
    chunk = cfg["sweep"]["chunk"]
    drawn = run_replicates(draw, key, replicates, chunk=chunk)
    run = map_rows(estimate, drawn.outputs, chunk=chunk)
    compile_seconds = drawn.compile_seconds + run.compile_seconds
    run_seconds = drawn.run_seconds + run.run_seconds
    # Cost model for precision per second: the one-pass groups pay ∝ N for an estimate at
    # N (its share of the N_max pass); k-NN computes each N separately at cost ∝ N².
    power = 2 if group == "knn" else 1
    weights = np.asarray(sizes, np.float64) ** power
    share = weights / (weights.sum() if group == "knn" else weights[-1])
    seconds_per_estimate = run_seconds / replicates * share
    records = {}
    for name in names:
        out = run.outputs[name]
        extras = {k: out[k] for k in ("ess", "pareto_k") if k in out}
        rows = per_n_metrics(out["value"], out["stderr"], case.truth, sizes, extras)
        for row, sec in zip(rows, seconds_per_estimate, strict=True):
            row["seconds_per_estimate"] = float(sec)
            var = row["variance"]
            row["precision_per_second"] = (
                1.0 / (var * sec) if var and np.isfinite(var) and var > 0 else math.nan
            )
        records[name] = summarize_cell(
            case, name, group, rows, replicates, compile_seconds, run_seconds, run.num_devices
        )
    return records


def summarize_cell(
    case: Case, name: str, group: str, rows, replicates, compile_seconds, run_seconds, devices
) -> dict:
    """The record saved for one (case, estimator) cell."""
    return {
        "case": case.name,
        "estimator": name,
        "group": group,
        "truth": case.truth,
        "truth_source": case.truth_source,
        "description": case.description,
        "proposal": case.proposal_name if group == "importance" else None,
        "replicates": int(replicates),
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "num_devices": devices,
        "rows": rows,
    }


def slopes_table(record: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """Fitted log-log slopes of variance and |bias| vs N (95% CI) beside theory."""
    rows = record["rows"]
    n = [r["n"] for r in rows]
    theory = THEORY[record["estimator"]]
    return {
        "variance": loglog_slope(n, [r["variance"] for r in rows], min_n=min_n),
        "abs_bias": loglog_slope(n, [abs(r["bias"]) for r in rows], min_n=min_n),
        "theory_variance_slope": theory["variance_slope"],
        "theory_bias": theory["bias"],
        "theory_bias_slope": theory["bias_slope"],
    }
