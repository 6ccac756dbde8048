"""The bias–variance study: every estimator, every sample size, many replicates.

For each case and each group of estimators that share their draws, one compiled
computation turns a replicate's draws into the estimate at every sample size of the grid:
N_max samples are drawn once and the estimate at N uses the first N. Within a replicate
the estimates at different N are therefore correlated, but replicates are independent, so
every per-N statistic across replicates (bias, variance, coverage) is valid, and
statistics across N (log-log slopes) get their intervals from a bootstrap over whole
replicates (:mod:`jaxkl.study.bootstrap`).

The estimate at each N is the public estimator's own: the same building blocks called
with the same arguments as ``mc_kl``, ``importance_kl`` and ``knn_kl`` use, returning the
same :class:`jaxkl.Estimate` — value, stderr, dof, ``pareto_k`` and the ``reliable``
verdict (``tests/study/test_bias_variance_engine.py`` checks them equal on identical
draws). Groups (all estimators in a group see the same draws):

* ``q``: x ~ q → k1, k2, k3, the control variate (k1 with the cross-fitted r − 1, fitted
  on the halves of each prefix) and the density-weighted pitfall mean(q(x)·(log q − log p));
* ``importance``: x ~ proposal → plain and self-normalised importance sampling;
* ``knn``: x ~ q and y ~ p → Wang–Kulkarni–Verdú k-NN (sample only; continuous cases).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.estimators import samplers
from jaxkl.estimators.estimate import PLAIN_KHAT_THRESHOLD, ImportanceEstimate, mean_with_stderr
from jaxkl.estimators.importance import _weighted_kl
from jaxkl.estimators.knn import knn_kl
from jaxkl.estimators.monte_carlo import (
    _estimate_from_terms,
    has_finite_support,
    per_sample_kl,
    structural_ratio_moments,
)
from jaxkl.estimators.variance_reduction import control_variate_terms
from jaxkl.study.bootstrap import bootstrap_counts, bootstrap_slope, paired_ratio
from jaxkl.study.cases import Case, validate_case
from jaxkl.study.config import require_config
from jaxkl.study.distributed import is_writer
from jaxkl.study.metrics import per_n_metrics
from jaxkl.study.sweep import map_rows, run_replicates
from jaxkl.study.theory import case_facts, case_theory
from jaxkl.study.timing import compile_programs, time_estimator

__all__ = [
    "ESTIMATOR_GROUPS",
    "MIN_SAMPLES",
    "PAIRED_WITH",
    "compared_row",
    "estimator_groups",
    "estimator_sizes",
    "group_plan",
    "is_timed",
    "knn_sizes",
    "run_group",
    "sample_sizes",
    "validate_config",
]

ESTIMATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "q": ("k1", "k2", "k3", "control_variate", "density_weighted"),
    "importance": ("importance", "importance_snis"),
    "knn": ("knn",),
}
ALL_ESTIMATORS = tuple(e for group in ESTIMATOR_GROUPS.values() for e in group)
# mc_kl(control_variate=True) needs n ≥ 4 (two halves of at least two draws each).
MIN_SAMPLES = {"control_variate": 4}
# Cells whose record compares against another estimator of the same group on the same
# draws: the control variate's MSE is reported as a ratio to plain k1's, with a paired SE.
PAIRED_WITH = {"control_variate": "k1"}
# Paired ratios are reported from this N on (issue #10: "MSE at N ≥ 256 ≤ 1.1× k1's").
PAIRED_MIN_N = 256


def sample_sizes(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """The grid of ``cfg['sweep']``: N = 2^log2_max, 2^(log2_max − log2_step), … ≥ 2^log2_min.

    Every N is a separate call of the public estimator on its own prefix (with its own
    shapes, so its own tail fits in the compiled program): compile time grows with the
    number of grid points, not with N.
    """
    sweep = cfg["sweep"]
    exponents = range(sweep["log2_max"], sweep["log2_min"] - 1, -sweep["log2_step"])
    return tuple(2**e for e in reversed(exponents))


def knn_sizes(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """k-NN's grid: every ``knn.log2_step``-th power of two of the sweep, counted down from
    ``knn.max_n``, with at least k + 1 samples.

    Each size is a separate k-NN computation with its own compile, so a coarser grid
    keeps the default run's compile time in bounds; slopes need only a few points.
    """
    k, max_n, step = cfg["knn"]["k"], cfg["knn"]["max_n"], cfg["knn"]["log2_step"]
    usable = [n for n in sample_sizes(cfg) if k + 1 <= n <= max_n]
    return tuple(usable[::-1][::step][::-1])


def estimator_sizes(cfg: Mapping[str, Any], name: str) -> tuple[int, ...]:
    """The sample sizes at which ``name`` is estimated."""
    sizes = knn_sizes(cfg) if name == "knn" else sample_sizes(cfg)
    return tuple(n for n in sizes if n >= MIN_SAMPLES.get(name, 1))


def estimator_groups(cfg: Mapping[str, Any], case: Case) -> dict[str, tuple[str, ...]]:
    """The groups to run for ``case``: the configured estimators, k-NN only if continuous."""
    chosen = set(cfg["estimators"]["use"])
    groups = {}
    for group, names in ESTIMATOR_GROUPS.items():
        names = tuple(n for n in names if n in chosen and estimator_sizes(cfg, n))
        if group == "knn" and not case.continuous:
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
    require_config(sweep["log2_step"] >= 1, "sweep.log2_step", "must be >= 1")
    require_config(sweep["chunk"] >= 1, "sweep.chunk", "must be >= 1")
    require_config(
        len(cfg["estimators"]["use"]) >= 1,
        "estimators.use",
        f"name at least one estimator; choose from {', '.join(ALL_ESTIMATORS)}",
    )
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
    require_config(cfg["report"]["slope_min_n"] >= 1, "report.slope_min_n", "must be >= 1")
    require_config(cfg["report"]["bootstrap"] >= 100, "report.bootstrap", "must be >= 100")
    require_config(cfg["timing"]["batch"] >= 1, "timing.batch", "must be >= 1")
    require_config(cfg["timing"]["repeats"] >= 1, "timing.repeats", "must be >= 1")
    timed = cfg["timing"]["cases"]
    unknown_cases = sorted(set(timed) - set(cfg.get("cases", {})) - {"all"})
    require_config(
        not unknown_cases, "timing.cases", f"unknown {unknown_cases}: name cases or 'all'"
    )
    require_config(len(cfg.get("cases", {})) >= 1, "cases", "define at least one case")
    for name, spec in cfg["cases"].items():
        validate_case(name, spec)


# Each group runs in two stages. Stage 1 (compiled per case) draws the samples and
# evaluates the log densities; stage 2 (compiled once per shape and shared by every case,
# through map_rows' cache) turns one replicate's draws into its estimates at every N.
# Splitting them is what keeps compile time from growing with the number of cases.


def _draw_q(case: Case, n_max: int) -> Callable:
    def draw(key):
        x = samplers.draw(key, case.q, n_max, where="bias_variance")  # mc_kl's i.i.d. draws
        return case.q.log_prob(x), case.p.log_prob(x)

    return draw


def _draw_importance(case: Case, n_max: int) -> Callable:
    def draw(key):
        x = samplers.draw(key, case.proposal, n_max, where="bias_variance")  # importance_kl's
        return case.q.log_prob(x), case.p.log_prob(x), case.proposal.log_prob(x)

    return draw


def _draw_knn(case: Case, n_max: int) -> Callable:
    def draw(key):
        kx, ky = jax.random.split(key)
        x = samplers.draw(kx, case.q, n_max, where="bias_variance")
        y = samplers.draw(ky, case.p, n_max, where="bias_variance")
        # k-NN works on [n, d] points; scalar events are d = 1.
        return x.reshape(n_max, -1), y.reshape(n_max, -1)

    return draw


def q_estimate(name: str, log_q, log_p, *, log_moments, bounded: bool):
    """The Estimate that ``mc_kl`` (plain sampling) returns from these draws of q.

    The same calls with the same arguments as ``mc_kl``: ``per_sample_kl`` terms (for the
    control variate through ``control_variate_terms`` with the closed-form ratio moments),
    then ``_estimate_from_terms`` with the log ratios for the ratio-based estimators. The
    density-weighted pitfall is not an estimator of KL: its terms get a plain mean and
    standard error, and no tail diagnostic (its ``reliable`` only says the stderr is finite).
    """
    n = log_q.shape[0]
    if name == "density_weighted":
        return mean_with_stderr(jnp.exp(log_q) * (log_q - log_p), tail=False)
    log_r = log_p - log_q
    if name == "control_variate":
        terms = control_variate_terms(
            per_sample_kl(log_q, log_p, "k1"), log_r, log_moments=log_moments
        )
    else:
        terms = per_sample_kl(log_q, log_p, name)
    ratio_based = name in ("k3", "control_variate")
    return _estimate_from_terms(
        terms,
        num_samples=n,
        log_r=log_r if ratio_based else None,
        log_moments=log_moments if ratio_based else None,
        bounded=bounded,
    )


def importance_estimate(name: str, log_q, log_p, log_g) -> ImportanceEstimate:
    """The ImportanceEstimate that ``importance_kl`` (unsmoothed) returns from these draws
    of the proposal g: its own ``_weighted_kl`` and the same dof and k̂ threshold."""
    n = log_q.shape[0]
    value, stderr, ess, pareto_k = _weighted_kl(
        log_q, log_g, log_p, name == "importance_snis", False
    )
    return ImportanceEstimate(
        value, stderr, n, n - 1, pareto_k, khat_threshold=PLAIN_KHAT_THRESHOLD, ess=ess
    )


@functools.cache
def _estimate_q(
    sizes: tuple[tuple[int, ...], ...], names: tuple[str, ...], bounded: bool, moments: bool
) -> Callable:
    def estimate(log_q, log_p, log_m2, log_m4):
        log_moments = (log_m2, log_m4) if moments else None
        return {
            name: [
                q_estimate(name, log_q[:n], log_p[:n], log_moments=log_moments, bounded=bounded)
                for n in name_sizes
            ]
            for name, name_sizes in zip(names, sizes, strict=True)
        }

    return estimate


@functools.cache
def _estimate_importance(sizes: tuple[tuple[int, ...], ...], names: tuple[str, ...]) -> Callable:
    def estimate(log_q, log_p, log_g):
        return {
            name: [importance_estimate(name, log_q[:n], log_p[:n], log_g[:n]) for n in ns]
            for name, ns in zip(names, sizes, strict=True)
        }

    return estimate


@functools.cache
def _estimate_knn(sizes: tuple[int, ...], k: int) -> Callable:
    def estimate(x, y):
        return {"knn": [knn_kl(x[:n], y[:n], k=k) for n in sizes]}

    return estimate


def group_plan(cfg: Mapping[str, Any], case: Case, group: str, names: Sequence[str]):
    """``(draw, estimate, extra, replicates)`` for one group of one case.

    ``draw(key)`` returns one replicate's draws; ``estimate(*draws, *extra_row)`` its
    estimates ``{estimator: [Estimate at each of its sample sizes]}``; ``extra`` are
    per-replicate constant inputs (the case's closed-form ratio moments), ``[R]`` each.
    """
    names = tuple(names)
    sizes = tuple(estimator_sizes(cfg, n) for n in names)
    n_max = max(s[-1] for s in sizes)
    if group == "q":
        replicates = cfg["sweep"]["replicates"]
        moments = structural_ratio_moments(case.q, case.p, ())
        # Passed per replicate (not closed over) so one compile serves every case.
        m2, m4 = (np.zeros((), np.float32),) * 2 if moments is None else map(np.asarray, moments)
        extra = (np.full(replicates, m2, m2.dtype), np.full(replicates, m4, m4.dtype))
        estimate = _estimate_q(sizes, names, has_finite_support(case.q), moments is not None)
        return _draw_q(case, n_max), estimate, extra, replicates
    if group == "importance":
        replicates = cfg["sweep"]["replicates"]
        return _draw_importance(case, n_max), _estimate_importance(sizes, names), (), replicates
    if group == "knn":
        return (
            _draw_knn(case, n_max),
            _estimate_knn(sizes[0], cfg["knn"]["k"]),
            (),
            cfg["knn"]["replicates"],
        )
    raise ValueError(f"unknown group {group!r}")


def is_timed(cfg: Mapping[str, Any], case_name: str) -> bool:
    """Whether ``timing.cases`` asks for the estimators of ``case_name`` to be timed."""
    timed = cfg["timing"]["cases"]
    return "all" in timed or case_name in timed


def compared_row(rows: Sequence[Mapping[str, Any]], n_target: int) -> Mapping[str, Any]:
    """The row at the grid point nearest ``n_target`` (in log N; the smaller on a tie)."""
    return min(rows, key=lambda r: (abs(np.log(r["n"]) - np.log(n_target)), r["n"]))


def run_group(cfg, case: Case, group: str, names: Sequence[str], key) -> dict[str, dict]:
    """Run one group's replicates (sharded) and summarise each named estimator into a
    cell record. Estimators that a named one is compared with (:data:`PAIRED_WITH`) are
    computed too, from the same draws, but only the named ones get a record."""
    wanted = set(names) | {PAIRED_WITH[n] for n in names if n in PAIRED_WITH}
    computed = tuple(n for n in ESTIMATOR_GROUPS[group] if n in wanted)
    draw, estimate, extra, replicates = group_plan(cfg, case, group, computed)
    chunk = cfg["sweep"]["chunk"]
    # The draws stay on the process whose devices made them (the estimates of a
    # replicate run on the device that drew it); only the estimates are gathered.
    drawn = run_replicates(draw, key, replicates, chunk=chunk, gather=False)
    run = map_rows(estimate, (*drawn.outputs, *extra), chunk=chunk)
    compile_seconds = drawn.compile_seconds + run.compile_seconds
    run_seconds = drawn.run_seconds + run.run_seconds
    # One resampling of whole replicates, shared by the group's estimators (same draws).
    seed = np.asarray(jax.random.key_data(key)).ravel().tolist()
    counts = bootstrap_counts(replicates, cfg["report"]["bootstrap"], np.random.default_rng(seed))
    rows = {n: per_n_metrics(run.outputs[n], case.truth, counts) for n in computed}
    theory = case_theory(case)
    facts = dataclasses.asdict(case_facts(case))
    compare = {n: compared_row(rows[n], cfg["report"]["compare_n"])["n"] for n in names}
    # Timing is reported by the writer (process 0) alone, on its own device; other
    # processes of a multi-process run skip it (their records are not saved).
    timed = [n for n in names if is_timed(cfg, case.name) and is_writer()]
    k, batch = cfg["knn"]["k"], cfg["timing"]["batch"]
    timing_compile = dict(
        zip(timed, compile_programs([(case, n, compare[n], k, batch) for n in timed]), strict=True)
    )
    records = {}
    for name in names:
        values = np.stack([np.asarray(e.value) for e in run.outputs[name]], axis=1)
        sizes = [r["n"] for r in rows[name]]
        slopes = bootstrap_slope(
            sizes, values, counts, truth=case.truth, min_n=cfg["report"]["slope_min_n"]
        )
        if name in PAIRED_WITH:
            _add_paired(rows[name], run.outputs, name, case.truth)
        compare_n = compare[name]
        timing = None
        if name in timing_compile:
            timing = time_estimator(
                case,
                name,
                compare_n,
                k=k,
                batch=batch,
                repeats=cfg["timing"]["repeats"],
                compile_seconds=timing_compile[name],
            )
        records[name] = {
            "case": case.name,
            "estimator": name,
            "group": group,
            "truth": case.truth,
            "truth_source": case.truth_source,
            "description": case.description,
            "proposal": case.proposal_name if group == "importance" else None,
            "replicates": int(replicates),
            "bootstrap": int(cfg["report"]["bootstrap"]),
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "num_devices": run.num_devices,
            "rows": rows[name],
            "slopes": slopes,
            "compare_n": int(compare_n),
            "timing": timing,
            "theory": dataclasses.asdict(theory[name]),
            "facts": facts,
        }
    return records


def _add_paired(rows, outputs, name, truth) -> None:
    """Add the MSE ratio to the paired estimator (same draws) with its paired SE."""
    partner = PAIRED_WITH[name]
    by_n = {int(e.num_samples): e for e in outputs[partner]}
    for row, est in zip(rows, outputs[name], strict=True):
        other = by_n.get(row["n"])
        if other is None or row["n"] < PAIRED_MIN_N:
            continue
        mine = np.square(np.asarray(est.value, np.float64) - truth)
        theirs = np.square(np.asarray(other.value, np.float64) - truth)
        ratio, se = paired_ratio(mine, theirs)
        row[f"mse_ratio_{partner}"] = ratio
        row[f"mse_ratio_{partner}_se"] = se
