"""Throughput of jaxkl against this machine's own ceilings, all measured in one process.

Every speed is reported next to a ceiling timed in the same run, back to back with it:

* read ceiling — the fastest way found to read the same bytes: a jitted ``jnp.sum`` over
  the kernel's own input arrays or ``numpy.sum`` over them, whichever is faster in that
  repeat. Analytic kernels are reported in GB/s of parameter bytes read.
* RNG ceiling — ``jax.random.normal`` (the default threefry key) for the same count of
  numbers as the estimator draws, either written out or summed inside the same jitted
  function, whichever is faster. Monte Carlo is reported in M sample-dims/s
  (samples × batch × event size per second).

Sections (``sections`` in the config, run in this order):

* ``knn``: ``knn_kl`` for n = m up to 100 000 in d = 10, with peak memory (XLA's buffer
  assignment for the compiled call, and the process's resident-set high-water mark).
* ``knn_tree``: ``knn_kl``'s two searches (k-d tree, brute force) against scipy's
  ``cKDTree`` computing the same estimate directly, over a grid of d × n.
* ``analytic``: Normal and MultivariateNormalDiag over a grid of B × D, MultivariateNormalTriL
  for d ∈ {8, 64}, Categorical for K up to 32 768; each against the read ceiling.
* ``monte_carlo``: ``mc_kl`` (k1, k3) and ``importance_kl`` against the RNG ceiling.
* ``peers``: the largest analytic and Monte Carlo workloads through ``jaxkl.kl``, a
  textbook jitted formula, NumPy, and torch / distrax / numpyro when importable.
* ``anatomy``: probes on one [B, D] array — a row sum with 0, 1 and 11 ops fused in, with
  a select, and an elementwise map — to show what bounds the analytic kernels.
* ``variance``: precision per second, 1 / (variance × seconds per estimate), of each
  variance-reduction option of ``mc_kl`` against plain k1, with a 5-SE unbiasedness check.
* ``retrace``: traces and compiles during the second of two eager calls.

Timing: each function is compiled with ``jax.jit(f).lower(...).compile()`` (trace and
compile times recorded), called ``warmup`` times, then timed ``repeats`` times; each timed
repeat loops the call until it lasts ``min_time`` and ends with ``block_until_ready``.
Medians are reported; the fraction of a ceiling is the median of per-repeat ratios.
Retracing: a Python counter in the traced function counts traces over the compile and two
more calls of the ``jax.jit`` wrapper with the same arguments (``traces`` = 1 means none).

Run from the repository root:
    .venv/bin/python experiments/throughput.py --config configs/throughput.toml

Writes results/throughput/<run-name>/: config.toml, cells/, metrics.csv, summary.json,
throughput.png, report.md and README_SECTION.md.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import math
import os
import platform
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl
from jaxkl.study import (
    RunDir,
    atomic_write_bytes,
    cell_id,
    experiment_parser,
    new_figure,
    parse_experiment_args,
    require_config,
    require_min,
    require_nonempty,
)

EXPERIMENT = "throughput"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / f"{EXPERIMENT}.toml"
SECTIONS = (
    "knn",
    "knn_tree",
    "analytic",
    "versus",
    "monte_carlo",
    "peers",
    "anatomy",
    "variance",
    "retrace",
)
PEER_PACKAGES = ("torch", "distrax", "numpyro", "optax", "tfp")
# Where each peer is imported from (TFP on JAX lives in a substrate module).
PEER_MODULES = {"tfp": "tensorflow_probability.substrates.jax"}
# Variance-reduction tokens of an option string and the mc_kl keyword each one sets.
VR_FLAGS = {"antithetic": "antithetic", "qmc": "qmc", "cv": "control_variate"}
VR_ESTIMATORS = ("k1", "k3")
PAIRS = ("close", "medium", "far")
Z_MAX = 5.0
COLUMNS = (
    "section",
    "workload",
    "impl",
    "batch",
    "event",
    "samples",
    "bytes_in",
    "count",
    "seconds",
    "throughput",
    "unit",
    "ceiling",
    "fraction",
    "trace_s",
    "compile_s",
    "traces",
    "retraces",
    "xla_fusions",
    "xla_temp_bytes",
    "note",
)


# --------------------------------------------------------------------------- config checks


def validate(cfg: dict[str, Any]) -> None:
    """Impossible values, rejected before any compute."""
    require_nonempty(cfg, "sections")
    require_min(cfg, 1, "analytic.categorical_elements")
    require_min(cfg, 0, *(f"targets.{k}" for k in cfg["targets"]), strict=True)
    unknown = sorted(set(cfg["sections"]) - set(SECTIONS))
    require_config(not unknown, "sections", f"unknown {unknown}; choose from {list(SECTIONS)}")
    t = cfg["timing"]
    require_config(t["repeats"] >= 1, "timing.repeats", "must be >= 1")
    require_config(t["warmup"] >= 0, "timing.warmup", "must be >= 0")
    require_config(t["min_time"] >= 0, "timing.min_time", "must be >= 0")
    a = cfg["analytic"]
    for key in ("batch_sizes", "event_sizes", "categorical_categories"):
        vals = a[key]
        require_config(
            bool(vals) and all(v >= 1 for v in vals),
            f"analytic.{key}",
            "must be a non-empty list of integers >= 1",
        )
    require_config(
        all(len(c) == 2 and c[0] >= 1 and c[1] >= 1 for c in a["tril_cases"]),
        "analytic.tril_cases",
        "each case must be [d, B] with d, B >= 1",
    )
    require_config(
        all(a["categorical_elements"] % k == 0 for k in a["categorical_categories"]),
        "analytic.categorical_elements",
        "must be a multiple of every categorical K",
    )
    require_config(
        all(len(c) == 2 and min(c) >= 1 for c in cfg["versus"]["categorical_cases"]),
        "versus.categorical_cases",
        "each case must be [B, K] with B, K >= 1",
    )
    require_config(
        all(len(c) == 2 and min(c) >= 1 for c in cfg["versus"]["tril_cases"]),
        "versus.tril_cases",
        "each case must be [d, B] with d, B >= 1",
    )
    require_config(
        all(len(c) == 3 and min(c) >= 1 for c in cfg["versus"]["mc_cases"]),
        "versus.mc_cases",
        "each case must be [B, N, D] with B, N, D >= 1",
    )
    m = cfg["monte_carlo"]
    require_config(
        bool(m["cases"]) and all(len(c) == 3 and min(c) >= 1 for c in m["cases"]),
        "monte_carlo.cases",
        "each case must be [B, N, D] with B, N, D >= 1",
    )
    require_config(
        set(m["estimators"]) <= {"k1", "k2", "k3"} and bool(m["estimators"]),
        "monte_carlo.estimators",
        "must be a non-empty subset of k1, k2, k3",
    )
    require_config(m["importance_scale"] > 0, "monte_carlo.importance_scale", "must be > 0")
    k = cfg["knn"]
    require_config(
        bool(k["sizes"]) and all(n >= 2 for n in k["sizes"]),
        "knn.sizes",
        "must be a non-empty list of sizes >= 2",
    )
    require_config(k["dim"] >= 1, "knn.dim", "must be >= 1")
    require_config(1 <= k["k"] < min(k["sizes"]), "knn.k", "must be in [1, min(knn.sizes))")
    require_config(k["repeats"] >= 1, "knn.repeats", "must be >= 1")
    require_config(k["max_seconds"] > 0, "knn.max_seconds", "must be > 0")
    validate_knn_tree(cfg)
    v = cfg["variance"]
    require_config(v["num_samples"] >= 4, "variance.num_samples", "must be >= 4")
    require_config(v["replicates"] >= 8, "variance.replicates", "must be >= 8")
    require_config(v["qmc_randomizations"] >= 2, "variance.qmc_randomizations", "must be >= 2")
    for opt in v["options"]:
        try:
            parse_option(opt)
        except ValueError as err:
            require_config(False, "variance.options", str(err))
    require_config(
        "k1" in v["options"],
        "variance.options",
        "must include plain 'k1' (the reference of every gain)",
    )
    for name in PAIRS:
        pair = v["pairs"][name]
        require_config(
            pair["q_scale"] > 0 and pair["p_scale"] > 0,
            f"variance.pairs.{name}",
            "scales must be > 0",
        )
    names = {name for name, _, _ in _retrace_cases(cfg)} | {"all"}
    unknown = sorted(set(cfg["retrace"]["eager"]) - names)
    require_config(not unknown, "retrace.eager", f"unknown {unknown}; choose from {sorted(names)}")
    require_config(cfg["plot"]["dpi"] >= 20, "plot.dpi", "must be >= 20")


def parse_option(option: str) -> tuple[str, dict[str, bool]]:
    """``"k1+antithetic+cv"`` → ``("k1", {"antithetic": True, "control_variate": True})``."""
    tokens = option.split("+")
    estimator, flags = tokens[0], tokens[1:]
    if estimator not in VR_ESTIMATORS:
        raise ValueError(f"option {option!r}: must start with one of {VR_ESTIMATORS}")
    bad = [f for f in flags if f not in VR_FLAGS]
    if bad:
        raise ValueError(f"option {option!r}: unknown flag {bad[0]!r}; use {sorted(VR_FLAGS)}")
    if len(set(flags)) != len(flags):
        raise ValueError(f"option {option!r}: a flag is repeated")
    return estimator, {VR_FLAGS[f]: True for f in flags}


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    repeats: int
    warmup: int
    min_time: float


@dataclass(frozen=True)
class Compiled:
    """A compiled function bound to its arguments, with how long it took to get there."""

    call: Callable[[], Any]
    executable: Any
    jitted: Callable
    args: tuple
    trace_s: float
    compile_s: float
    trace_counter: list

    @property
    def traces(self) -> int:
        return self.trace_counter[0]

    def retraces(self) -> int:
        """Call the ``jax.jit`` wrapper twice more with the same arguments; new traces."""
        before = self.traces
        for _ in range(2):
            jax.block_until_ready(self.jitted(*self.args))
        return self.traces - before


def _lenient(fn: Callable) -> Callable:
    """``fn`` traced under JAX's default rank promotion.

    Peer libraries broadcast arrays of different ranks implicitly; jaxkl's test suite
    forbids that for jaxkl's own code (``jax_numpy_rank_promotion="raise"``), which must
    not stop a peer from being measured.
    """

    @functools.wraps(fn)
    def wrapped(*args):
        with jax.numpy_rank_promotion("allow"):
            return fn(*args)

    return wrapped


def compile_bound(fn: Callable, *args) -> Compiled:
    """``jax.jit(fn).lower(*args).compile()``, timed, counting how often ``fn`` is traced.

    ``jax.jit`` shares its caches with the ahead-of-time path, so calling ``jitted`` later
    with the same shapes must neither trace nor compile again (``Compiled.retraces``).
    """
    traces = [0]

    def counted(*a):
        traces[0] += 1
        return fn(*a)

    jitted = jax.jit(counted)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    executable = lowered.compile()
    t2 = time.perf_counter()
    return Compiled(lambda: executable(*args), executable, jitted, args, t1 - t0, t2 - t1, traces)


def compile_fields(c: Compiled) -> dict[str, Any]:
    """Trace/compile seconds, traces (after two more calls) and XLA's fusion layout."""
    retraces = c.retraces()
    return {
        "trace_s": c.trace_s,
        "compile_s": c.compile_s,
        "traces": c.traces,
        "retraces": retraces,
        **xla_diagnostics(c),
    }


def _run(call: Callable[[], Any], n: int) -> float:
    """Seconds for n back-to-back calls, the last one waited for (dispatch is async)."""
    out = None
    t0 = time.perf_counter()
    for _ in range(n):
        out = call()
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def _calls_per_repeat(call: Callable[[], Any], min_time: float) -> int:
    n = 1
    while True:
        elapsed = _run(call, n)
        if elapsed >= min_time or n >= 1 << 16:
            return n
        # Aim past min_time at once when the first call was much too short.
        n = max(2 * n, math.ceil(1.2 * n * min_time / max(elapsed, 1e-9)))


def time_interleaved(calls: dict[str, Callable[[], Any]], timing: Timing) -> dict[str, list]:
    """Seconds per call, ``timing.repeats`` values per name, the calls timed in turn.

    Interleaving puts a kernel and its ceiling within milliseconds of each other in every
    repeat, so their ratio survives a machine whose load drifts.
    """
    for call in calls.values():
        for _ in range(timing.warmup):
            _run(call, 1)
    counts = {name: _calls_per_repeat(call, timing.min_time) for name, call in calls.items()}
    out: dict[str, list] = {name: [] for name in calls}
    for _ in range(timing.repeats):
        for name, call in calls.items():
            out[name].append(_run(call, counts[name]) / counts[name])
    return out


def _median(xs) -> float:
    return float(np.median(np.asarray(xs, dtype=float)))


def _fraction(kernel_s: list, ceiling_s: list) -> float:
    """The kernel's throughput over the ceiling's: median over repeats of their time ratio."""
    return _median([c / k for k, c in zip(kernel_s, ceiling_s, strict=True)])


def _best_of(*series: list) -> list:
    """Per repeat, the fastest of several ways of doing the same work."""
    return [min(ts) for ts in zip(*series, strict=True)]


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# --------------------------------------------------------------------------- ceilings


def read_ceiling(arrays: list[jax.Array]) -> tuple[dict[str, Callable], int]:
    """Two ways to read ``arrays`` once (a jitted sum, NumPy's sum), and their byte count."""
    jax_sum = compile_bound(lambda *a: jnp.stack([jnp.sum(x) for x in a]).sum(), *arrays)
    host = [np.asarray(x) for x in arrays]
    calls = {
        "read_jax_sum": jax_sum.call,
        "read_numpy_sum": lambda: [np.add.reduce(x, axis=None) for x in host],
    }
    return calls, sum(int(x.nbytes) for x in host)


def rng_ceiling(shape: tuple[int, ...], key) -> dict[str, Callable]:
    """``jax.random.normal`` for ``prod(shape)`` numbers: written out, and summed in-jit."""
    written = compile_bound(lambda k: jax.random.normal(k, shape, jnp.float32), key)
    summed = compile_bound(lambda k: jnp.sum(jax.random.normal(k, shape, jnp.float32)), key)
    return {"rng_written": written.call, "rng_summed": summed.call}


_NOT_ARITHMETIC = (
    "parameter(",
    "constant(",
    "broadcast(",
    "bitcast(",
    "reshape(",
    "tuple(",
    "get-tuple-element(",
)


def xla_diagnostics(compiled: Compiled) -> dict[str, Any]:
    """How XLA split the computation: fused loops, their HLO ops, bytes of intermediates."""
    text = compiled.executable.as_text() or ""
    head, _, entry = text.partition("\nENTRY")
    body = [ln for ln in head.splitlines() if " = " in ln and "{" not in ln.split(" = ")[0]]
    mem = compiled.executable.memory_analysis()
    return {
        "xla_fusions": entry.count(" fusion("),
        "xla_fused_ops": sum(not any(k in ln for k in _NOT_ARITHMETIC) for ln in body),
        "xla_temp_bytes": None if mem is None else int(mem.temp_size_in_bytes),
        # Library calls (LAPACK and the like) that run outside XLA's own loops.
        "xla_custom_calls": sorted(set(re.findall(r'custom_call_target="([^"]+)"', text))),
    }


# --------------------------------------------------------------------------- data


def _normal_params(rng: np.random.Generator, shape: tuple[int, ...]) -> list[jax.Array]:
    """loc_a, scale_a, loc_b, scale_b: locations N(0, 1), log-scales N(0, 0.3²)."""
    out = []
    for i in range(4):
        x = rng.standard_normal(shape, dtype=np.float32)
        out.append(jnp.asarray(x if i % 2 == 0 else np.exp(np.float32(0.3) * x)))
    return out


def _tril_params(rng: np.random.Generator, batch: int, d: int) -> list[jax.Array]:
    """loc [B, d] and well-conditioned lower factors [B, d, d] for a and b."""
    out = []
    for _ in range(2):
        loc = rng.standard_normal((batch, d), dtype=np.float32)
        off = np.tril(rng.standard_normal((batch, d, d), dtype=np.float32), -1)
        diag = np.exp(np.float32(0.2) * rng.standard_normal((batch, d), dtype=np.float32))
        tril = off * np.float32(0.3 / math.sqrt(d)) + diag[..., None] * np.eye(d, dtype=np.float32)
        out += [jnp.asarray(loc), jnp.asarray(tril)]
    return out


def _logits(rng: np.random.Generator, batch: int, k: int) -> list[jax.Array]:
    return [jnp.asarray(rng.standard_normal((batch, k), dtype=np.float32)) for _ in range(2)]


def _row(section: str, workload: str, impl: str, **fields) -> dict[str, Any]:
    row = {"section": section, "workload": workload, "impl": impl}
    row.update(fields)
    return row


# --------------------------------------------------------------------------- analytic


def _analytic_row(
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
    best = _best_of(t["read_jax_sum"], t["read_numpy_sum"])
    row = _row(
        "analytic",
        workload,
        impl,
        batch=batch,
        event=event,
        bytes_in=nbytes,
        seconds=_median(t["kernel"]),
        throughput=nbytes / _median(t["kernel"]) / 1e9,
        unit="GB/s",
        ceiling=nbytes / _median(best) / 1e9,
        fraction=_fraction(t["kernel"], best),
        # A single-threaded numpy.sum over the same bytes, timed in the same repeats.
        fraction_of_numpy_read=_fraction(t["kernel"], t["read_numpy_sum"]),
        read_jax_sum_gbs=nbytes / _median(t["read_jax_sum"]) / 1e9,
        read_numpy_sum_gbs=nbytes / _median(t["read_numpy_sum"]) / 1e9,
    )
    if isinstance(kernel, Compiled):
        row.update(compile_fields(kernel))
    if stream is not None:
        row["stream_gbs"] = nbytes / _median(t["stream"]) / 1e9
        row["fraction_of_stream"] = _fraction(t["kernel"], t["stream"])
    return row


def run_analytic(cfg: dict[str, Any]) -> dict[str, Any]:
    a, timing = cfg["analytic"], _timing(cfg)
    rng = np.random.default_rng(cfg["seed"])
    rows = []
    for b in a["batch_sizes"]:
        for d in a["event_sizes"]:
            arrays = _normal_params(rng, (b, d))
            ceiling = read_ceiling(arrays)
            # The elementwise Normal kernel's own traffic: read four arrays, write one.
            stream = compile_bound(lambda w, x, y, z: (w + x) + (y + z), *arrays).call
            kernel = compile_bound(jaxkl.analytic.normal, *arrays)
            rows.append(
                _analytic_row(
                    "normal", "jaxkl", kernel, timing, ceiling, batch=b, event=d, stream=stream
                )
            )
            kernel = compile_bound(jaxkl.analytic.mvn_diag, *arrays)
            rows.append(
                _analytic_row("mvn_diag", "jaxkl", kernel, timing, ceiling, batch=b, event=d)
            )
            del arrays, ceiling, stream, kernel
    for d, b in a["tril_cases"]:
        arrays = _tril_params(rng, b, d)
        kernel = compile_bound(jaxkl.analytic.mvn_tril, *arrays)
        row = _analytic_row(
            "mvn_tril", "jaxkl", kernel, timing, read_ceiling(arrays), batch=b, event=d
        )
        # One triangular solve with d + 1 right-hand sides: d² flops per right-hand side.
        row["gflops"] = b * d * d * (d + 1) / row["seconds"] / 1e9
        rows.append(row)
        del arrays, kernel
    for k in a["categorical_categories"]:
        b = a["categorical_elements"] // k
        arrays = _logits(rng, b, k)
        kernel = compile_bound(jaxkl.analytic.categorical, *arrays)
        rows.append(
            _analytic_row(
                "categorical", "jaxkl", kernel, timing, read_ceiling(arrays), batch=b, event=k
            )
        )
        del arrays, kernel
    return {"rows": rows}


# --------------------------------------------------------------------------- Monte Carlo


def _mvn_diag_mc(estimator: str, n: int) -> Callable:
    def f(key, loc_q, scale_q, loc_p, scale_p):
        q = jaxkl.MultivariateNormalDiag(loc_q, scale_q)
        p = jaxkl.MultivariateNormalDiag(loc_p, scale_p)
        return jaxkl.mc_kl(key, q, p, n, estimator=estimator)

    return f


def _mvn_diag_importance(n: int, widen: float) -> Callable:
    def f(key, loc_q, scale_q, loc_p, scale_p):
        q = jaxkl.MultivariateNormalDiag(loc_q, scale_q)
        p = jaxkl.MultivariateNormalDiag(loc_p, scale_p)
        proposal = jaxkl.MultivariateNormalDiag(loc_q, widen * scale_q)
        return jaxkl.importance_kl(key, q, p, proposal, n)

    return f


def _mc_row(
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
    best = _best_of(t["rng_written"], t["rng_summed"])
    row = _row(
        "monte_carlo",
        workload,
        impl,
        batch=batch,
        event=event,
        samples=samples,
        count=count,
        seconds=_median(t["kernel"]),
        throughput=count / _median(t["kernel"]) / 1e6,
        unit="M sample-dims/s",
        ceiling=count / _median(best) / 1e6,
        fraction=_fraction(t["kernel"], best),
        rng_written_mps=count / _median(t["rng_written"]) / 1e6,
        rng_summed_mps=count / _median(t["rng_summed"]) / 1e6,
        repeats=len(t["kernel"]),
    )
    if isinstance(kernel, Compiled):
        row.update(compile_fields(kernel))
    return row


def run_monte_carlo(cfg: dict[str, Any]) -> dict[str, Any]:
    m, timing = cfg["monte_carlo"], _timing(cfg)
    rng = np.random.default_rng(cfg["seed"] + 1)
    key = jax.random.key(cfg["seed"])
    rows = []
    for b, n, d in m["cases"]:
        params = _normal_params(rng, (b, d))
        ceiling = rng_ceiling((n, b, d), key)
        for est in m["estimators"]:
            c = compile_bound(_mvn_diag_mc(est, n), key, *params)
            rows.append(
                _mc_row(f"mc_kl_{est}", "jaxkl", c, timing, ceiling, batch=b, samples=n, event=d)
            )
        c = compile_bound(_mvn_diag_importance(n, m["importance_scale"]), key, *params)
        rows.append(
            _mc_row("importance_kl", "jaxkl", c, timing, ceiling, batch=b, samples=n, event=d)
        )
    return {"rows": rows}


# --------------------------------------------------------------------------- kNN


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
    base_rss = _maxrss_bytes()
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
                _row(
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
        t = [_run(c.call, 1) for _ in range(calls)] or [first]
        pairs = n * n
        # The retrace check calls the kernel twice more: done at the smallest size only.
        fields = (
            compile_fields(c)
            if i == 0
            else {"trace_s": c.trace_s, "compile_s": c.compile_s, **xla_diagnostics(c)}
        )
        rows.append(
            _row(
                "knn",
                "knn_kl",
                "jaxkl",
                batch=n,
                event=d,
                count=pairs,
                seconds=_median(t),
                throughput=pairs / _median(t) / 1e6,
                unit="M pairs/s",
                timed_calls=calls,
                **fields,
                value=value,
                stderr=stderr,
                exact=exact,
                xla_peak_bytes=xla_bytes,
                rss_peak_growth_bytes=_maxrss_bytes() - base_rss,
            )
        )
    return {"rows": rows}


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(rss) if platform.system() == "Darwin" else int(rss) * 1024


# --------------------------------------------------------------------------- kNN: tree vs scipy


def validate_knn_tree(cfg: dict[str, Any]) -> None:
    t = cfg["knn_tree"]
    require_config(
        bool(t["dims"]) and all(d >= 1 for d in t["dims"]),
        "knn_tree.dims",
        "must be a non-empty list of dimensions >= 1",
    )
    require_config(
        bool(t["sizes"]) and all(n >= 2 * (t["k"] + 1) for n in t["sizes"]),
        "knn_tree.sizes",
        "must be a non-empty list of sizes >= 2·(k + 1)",
    )
    require_config(t["k"] >= 1, "knn_tree.k", "must be >= 1")
    require_config(t["repeats"] >= 1, "knn_tree.repeats", "must be >= 1")
    require_config(t["brute_max_n"] >= 0, "knn_tree.brute_max_n", "must be >= 0")
    require_config(t["brute_repeat_max_n"] >= 0, "knn_tree.brute_repeat_max_n", "must be >= 0")
    require_config(t["target_min_n"] >= 1, "knn_tree.target_min_n", "must be >= 1")
    require_config(
        all(isinstance(c, list) and len(c) == 2 for c in t["skip_tree"]),
        "knn_tree.skip_tree",
        "must be a list of [d, n] pairs",
    )


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
    from jaxkl.estimators.knn import _auto_takes_tree

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
            scipy_s = _median(times["scipy"])
            common = {"batch": n, "event": d, "count": n * n, "unit": "estimates/s"}
            both = "tree" in values and "brute" in values
            identical = values["tree"] == values["brute"] if both else None

            def vs_scipy(name, times=times, scipy_s=scipy_s):
                if len(times[name]) == len(times["scipy"]):
                    return _fraction(times[name], times["scipy"])
                return scipy_s / _median(times[name])

            rows.append(
                _row(
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
                    _row(
                        "knn_tree",
                        "knn_kl",
                        f"jaxkl {name}",
                        seconds=_median(times[name]),
                        throughput=1 / _median(times[name]),
                        ceiling=1 / scipy_s,
                        fraction=vs_scipy(name),
                        value=values[name][0],
                        stderr=values[name][1],
                        identical=identical,
                        timed_calls=len(times[name]),
                        **common,
                    )
                )
            auto = "tree" if _auto_takes_tree(n, d) else "brute"
            if auto in times:
                rows.append(
                    _row(
                        "knn_tree",
                        "knn_kl",
                        "jaxkl auto",
                        search=auto,
                        seconds=_median(times[auto]),
                        throughput=1 / _median(times[auto]),
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


def _knn_tree_report(records, cfg) -> list[str]:
    rows = _rows(records, "knn_tree")
    if not rows:
        return []
    by_cell: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_cell.setdefault((r["event"], r["batch"]), {})[r["impl"]] = r
    body = []
    for (d, n), cell in sorted(by_cell.items()):
        sc, tr = cell["scipy cKDTree"], cell.get("jaxkl tree", {})
        br, auto = cell.get("jaxkl brute", {}), cell.get("jaxkl auto", {})
        body.append(
            [
                d,
                n,
                sc["seconds"],
                tr.get("seconds"),
                tr.get("fraction"),
                br.get("seconds"),
                br.get("fraction"),
                br.get("timed_calls"),
                auto.get("search"),
                auto.get("fraction"),
                tr.get("identical"),
                auto.get("value"),
                auto.get("stderr"),
                sc["value"],
            ]
        )
    min_n = cfg["knn_tree"]["target_min_n"]
    ratios = [r["vs_fastest_peer"] for r in rows if r.get("vs_fastest_peer") is not None]
    verdict = (
        f'`method="auto"` at least as fast as scipy at every n ≥ {min_n}: '
        f"{_fmt(min(ratios) >= 1.0)} (lowest ratio {_fmt(min(ratios))})."
        if ratios
        else f"No size n ≥ {min_n} with the search auto takes measured."
    )
    return [
        "## k-NN: the tree search against scipy",
        "",
        "`knn_kl(x, y, method=...)` with n = m, x ~ N(0, I), y ~ N(0.5·1, I), float32, "
        "called eagerly, against scipy's `cKDTree` computing the same estimate directly "
        "(value from `query(x, k + 1)` on x's tree and `query(x, k)` on y's, stderr from "
        "the same on 10 strided subsamples, `workers=-1`; exact copies unhandled, so a copy "
        "makes its value −inf or NaN). `× scipy` is scipy's time over jaxkl's, median of "
        "per-repeat ratios (> 1: jaxkl faster); `brute calls` = 1: the brute force ran "
        'once, against scipy\'s median. `auto`: the search `method="auto"` takes on CPU '
        "at that (d, n), and its `× scipy`. `identical`: the tree's value and stderr equal "
        "the brute force's bit for bit; `estimate`, `stderr`: auto's; an empty tree column: "
        "not timed there (`skip_tree`). The load average during the section is in the "
        "header above.",
        "",
        _table(
            [
                "d",
                "n = m",
                "scipy s",
                "tree s",
                "tree × scipy",
                "brute s",
                "brute × scipy",
                "brute calls",
                "auto",
                "auto × scipy",
                "identical",
                "estimate",
                "stderr",
                "scipy estimate",
            ],
            body,
        ),
        "",
        verdict,
        "",
    ]


# --------------------------------------------------------------------------- peers


def _textbook_mvn_diag(loc_a, scale_a, loc_b, scale_b):
    """The textbook formula, as written by hand: cancels badly when scale_a ≈ scale_b."""
    var_ratio = jnp.square(scale_a / scale_b)
    diff = jnp.square((loc_a - loc_b) / scale_b)
    return 0.5 * jnp.sum(var_ratio + diff - 1.0 - jnp.log(var_ratio), -1)


def _numpy_mvn_diag(loc_a, scale_a, loc_b, scale_b):
    var_ratio = np.square(scale_a / scale_b)
    diff = np.square((loc_a - loc_b) / scale_b)
    return 0.5 * np.sum(var_ratio + diff - 1.0 - np.log(var_ratio), -1)


def _textbook_mc_k1(n: int) -> Callable:
    """Hand-written reparameterised k1 for diagonal Gaussians (what a user writes by hand)."""

    def f(key, loc_q, scale_q, loc_p, scale_p):
        eps = jax.random.normal(key, (n, *loc_q.shape), loc_q.dtype)
        eps, lq, sq, lp, sp = jnp.broadcast_arrays(eps, loc_q, scale_q, loc_p, scale_p)
        x = lq + sq * eps
        zp = (x - lp) / sp
        terms = 0.5 * jnp.sum(zp * zp - eps * eps, -1) + jnp.sum(jnp.log(sp / sq), -1)
        return jnp.mean(terms, 0)

    return f


def peer_status() -> dict[str, str]:
    """``{package: version or "not installed" / "import failed: ..."}``."""
    out = {}
    for name in PEER_PACKAGES:
        module = PEER_MODULES.get(name, name)
        if importlib.util.find_spec(module.split(".")[0]) is None:
            out[name] = "not installed"
            continue
        try:
            importlib.import_module(module)
        except Exception as err:  # a broken peer must not stop the benchmark
            out[name] = f"import failed: {type(err).__name__}: {err}"
        else:
            top = importlib.import_module(module.split(".")[0])
            out[name] = str(getattr(top, "__version__", "installed"))
    return out


def _installed(status: dict[str, str], name: str) -> bool:
    return status[name] != "not installed" and not status[name].startswith("import failed")


def _peer_analytic_calls(status: dict[str, str], arrays) -> dict[str, Callable]:
    """Callables computing the diagonal-Gaussian KL [B, D] → [B] with each installed peer."""
    calls: dict[str, Callable] = {}
    host = [np.asarray(x) for x in arrays]
    if _installed(status, "torch"):
        import torch

        t = [torch.from_numpy(x.copy()) for x in host]  # torch wants writable arrays

        def torch_call():
            with torch.no_grad():
                qa = torch.distributions.Normal(t[0], t[1])
                qb = torch.distributions.Normal(t[2], t[3])
                return torch.distributions.kl_divergence(qa, qb).sum(-1).numpy()

        calls["torch.distributions"] = torch_call
    if _installed(status, "distrax"):
        import distrax

        for label, build in (
            ("distrax Normal", lambda l, s: distrax.Normal(l, s)),
            ("distrax MultivariateNormalDiag", lambda l, s: distrax.MultivariateNormalDiag(l, s)),
        ):

            def fn(la, sa, lb, sb, build=build, label=label):
                kl = build(la, sa).kl_divergence(build(lb, sb))
                return kl.sum(-1) if label == "distrax Normal" else kl

            calls[label] = compile_bound(_lenient(fn), *arrays).call
    if _installed(status, "numpyro"):
        import numpyro.distributions as nd

        def npy(la, sa, lb, sb):
            return nd.kl_divergence(nd.Normal(la, sa).to_event(1), nd.Normal(lb, sb).to_event(1))

        calls["numpyro"] = compile_bound(_lenient(npy), *arrays).call
    return calls


def _peer_mc_calls(status: dict[str, str], key, params, n: int) -> dict[str, Callable]:
    """Reparameterised k1 for diagonal Gaussians with each installed peer."""
    calls: dict[str, Callable] = {}
    if _installed(status, "torch"):
        import torch

        t = [torch.from_numpy(np.array(x)) for x in params]  # a writable copy

        def torch_call():
            with torch.no_grad():
                q = torch.distributions.Independent(torch.distributions.Normal(t[0], t[1]), 1)
                p = torch.distributions.Independent(torch.distributions.Normal(t[2], t[3]), 1)
                x = q.rsample((n,))
                return (q.log_prob(x) - p.log_prob(x)).mean(0).numpy()

        calls["torch.distributions"] = torch_call
    if _installed(status, "distrax"):
        import distrax

        def dx(k, lq, sq, lp, sp):
            q = distrax.MultivariateNormalDiag(lq, sq)
            p = distrax.MultivariateNormalDiag(lp, sp)
            x, log_q = q.sample_and_log_prob(seed=k, sample_shape=n)
            return jnp.mean(log_q - p.log_prob(x), 0)

        calls["distrax"] = compile_bound(_lenient(dx), key, *params).call
    if _installed(status, "numpyro"):
        import numpyro.distributions as nd

        def npy(k, lq, sq, lp, sp):
            q = nd.Normal(lq, sq).to_event(1)
            p = nd.Normal(lp, sp).to_event(1)
            x = q.rsample(k, (n,))
            return jnp.mean(q.log_prob(x) - p.log_prob(x), 0)

        calls["numpyro"] = compile_bound(_lenient(npy), key, *params).call
    return calls


def run_peers(cfg: dict[str, Any]) -> dict[str, Any]:
    """The largest diag-Gaussian workloads through jaxkl's front doors and other libraries."""
    a, timing = cfg["analytic"], _timing(cfg)
    status = peer_status()
    rng = np.random.default_rng(cfg["seed"] + 3)
    rows = []
    b, d = max(a["batch_sizes"]), max(a["event_sizes"])
    arrays = _normal_params(rng, (b, d))

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
        "jax textbook formula (jit)": compile_bound(_textbook_mvn_diag, *arrays),
    }
    host = [np.asarray(x) for x in arrays]
    impls["numpy textbook formula"] = lambda: _numpy_mvn_diag(*host)
    try:
        impls.update(_peer_analytic_calls(status, arrays))
    except Exception as err:  # report, do not crash, if a peer's API has moved
        rows.append(_row("peers", "mvn_diag", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = read_ceiling(arrays)
    for impl, kernel in impls.items():
        try:
            row = _analytic_row("mvn_diag", impl, kernel, timing, ceiling, batch=b, event=d)
        except Exception as err:
            row = _row("analytic", "mvn_diag", impl, batch=b, event=d, note=f"failed: {err!r}")
        row["section"] = "peers"
        rows.append(row)
    del arrays, host, ceiling, impls

    bm, n, dm = max(cfg["monte_carlo"]["cases"], key=lambda c: c[0] * c[1] * c[2])
    params = _normal_params(rng, (bm, dm))
    key = jax.random.key(cfg["seed"])
    mc_impls: dict[str, Compiled | Callable] = {
        "jaxkl.mc_kl k1": compile_bound(_mvn_diag_mc("k1", n), key, *params),
        "jax textbook k1 (jit)": compile_bound(_textbook_mc_k1(n), key, *params),
        # The same mc_kl with XLA's counter-based generator instead of threefry: what the
        # choice of PRNG costs (the ceiling stays the default threefry one).
        "jaxkl.mc_kl k1, unsafe_rbg key": compile_bound(
            _mvn_diag_mc("k1", n), jax.random.key(cfg["seed"], impl="unsafe_rbg"), *params
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
        mc_impls.update(_peer_mc_calls(status, key, params, n))
    except Exception as err:
        rows.append(_row("peers", "mc_kl_k1", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = rng_ceiling((n, bm, dm), key)
    for impl, call in mc_impls.items():
        try:
            row = _mc_row("mc_kl_k1", impl, call, timing, ceiling, batch=bm, samples=n, event=dm)
        except Exception as err:
            row = _row("monte_carlo", "mc_kl_k1", impl, note=f"failed: {err!r}")
        row["section"] = "peers"
        rows.append(row)
    return {"rows": rows, "status": status}


# --------------------------------------------------------------------------- versus


def _textbook_categorical(a, b):
    """KL from log_softmax, as written by hand: [B, K] intermediates, cancels as b → a."""
    log_p, log_q = jax.nn.log_softmax(a), jax.nn.log_softmax(b)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), -1)


def _categorical_peers(status: dict[str, str]) -> dict[str, Callable]:
    """Categorical KL [B, K] × 2 → [B] with each installed peer (jit-compiled by the caller)."""
    fns: dict[str, Callable] = {"textbook jit": _textbook_categorical}
    if _installed(status, "optax"):
        import optax

        def optax_kl(a, b):
            # (log_predictions, log_targets) → KL(targets ‖ predictions).
            return optax.losses.kl_divergence_with_log_targets(
                jax.nn.log_softmax(b), jax.nn.log_softmax(a)
            )

        fns["optax kl_divergence_with_log_targets"] = _lenient(optax_kl)
    if _installed(status, "tfp"):
        tfd = importlib.import_module(PEER_MODULES["tfp"]).distributions

        def tfp_kl(a, b):
            return tfd.kl_divergence(tfd.Categorical(logits=a), tfd.Categorical(logits=b))

        fns["tfp Categorical"] = _lenient(tfp_kl)
    return fns


def _mvn_diag_peers(status: dict[str, str]) -> dict[str, Callable]:
    """Diagonal-Gaussian KL [B, D] × 4 → [B] with each installed JAX peer."""
    fns: dict[str, Callable] = {"textbook jit": _textbook_mvn_diag}
    if _installed(status, "numpyro"):
        import numpyro.distributions as nd

        def numpyro_kl(la, sa, lb, sb):
            return nd.kl_divergence(nd.Normal(la, sa).to_event(1), nd.Normal(lb, sb).to_event(1))

        fns["numpyro Normal.to_event(1)"] = _lenient(numpyro_kl)
    if _installed(status, "distrax"):
        import distrax

        def distrax_normal(la, sa, lb, sb):
            return distrax.Normal(la, sa).kl_divergence(distrax.Normal(lb, sb)).sum(-1)

        def distrax_mvn(la, sa, lb, sb):
            q = distrax.MultivariateNormalDiag(la, sa)
            return q.kl_divergence(distrax.MultivariateNormalDiag(lb, sb))

        fns["distrax Normal"] = _lenient(distrax_normal)
        fns["distrax MultivariateNormalDiag"] = _lenient(distrax_mvn)
    if _installed(status, "tfp"):
        fns["tfp MultivariateNormalDiag"] = _tfp_pair_kl("MultivariateNormalDiag")
    return fns


def _tfp_pair_kl(family: str) -> Callable:
    """(loc_a, scale_a, loc_b, scale_b) → TFP's own KL between two ``family`` laws."""
    tfd = importlib.import_module(PEER_MODULES["tfp"]).distributions
    cls = getattr(tfd, family)

    def tfp_kl(la, sa, lb, sb):
        return tfd.kl_divergence(cls(la, sa), cls(lb, sb))

    return _lenient(tfp_kl)


def _tril_peers(status: dict[str, str]) -> dict[str, Callable]:
    """MVNTriL KL (loc, L) × 2 → [B] with each installed JAX peer and a textbook solve."""

    def textbook(la, ta, lb, tb):
        # ½[tr(Σb⁻¹Σa) + Δᵀ Σb⁻¹ Δ − d] + log det Lb − log det La, with triangular solves.
        m = jax.scipy.linalg.solve_triangular(tb, ta, lower=True)
        y = jax.scipy.linalg.solve_triangular(tb, (lb - la)[..., None], lower=True)[..., 0]
        logdet = jnp.sum(
            jnp.log(jnp.diagonal(tb, axis1=-2, axis2=-1) / jnp.diagonal(ta, axis1=-2, axis2=-1)),
            -1,
        )
        sq = jnp.sum(jnp.square(m), (-2, -1)) + jnp.sum(jnp.square(y), -1)
        return 0.5 * (sq - la.shape[-1]) + logdet

    fns: dict[str, Callable] = {"textbook jit": textbook}
    if _installed(status, "distrax"):
        import distrax

        def distrax_kl(la, ta, lb, tb):
            return distrax.MultivariateNormalTri(la, ta).kl_divergence(
                distrax.MultivariateNormalTri(lb, tb)
            )

        fns["distrax MultivariateNormalTri"] = _lenient(distrax_kl)
    if _installed(status, "tfp"):
        fns["tfp MultivariateNormalTriL"] = _tfp_pair_kl("MultivariateNormalTriL")
    return fns


def _versus_mc_rows(status, rng, key, timing, *, batch, samples, event) -> list[dict[str, Any]]:
    """Reparameterised k1 on a (small) batch: jaxkl.mc_kl ÷ each peer's hand-written k1.

    Every call is timed back to back with the RNG ceiling for its draws (``_mc_row``);
    ``vs_fastest_peer`` divides jaxkl's fraction by the fastest peer's. jaxkl returns the
    whole Estimate (value, stderr, tail diagnostic); the peers return the mean only.
    """
    params = _normal_params(rng, (batch, event))
    calls: dict[str, Compiled | Callable] = {
        "jaxkl": compile_bound(_mvn_diag_mc("k1", samples), key, *params),
        "textbook jit": compile_bound(_textbook_mc_k1(samples), key, *params),
    }
    rows = []
    try:
        calls.update(_peer_mc_calls(status, key, params, samples))
    except Exception as err:
        rows.append(_row("versus", "mc_kl_k1", "peers", note=f"peer setup failed: {err!r}"))
    ceiling = rng_ceiling((samples, batch, event), key)
    for impl, call in calls.items():
        try:
            row = _mc_row(
                "mc_kl_k1", impl, call, timing, ceiling, batch=batch, samples=samples, event=event
            )
        except Exception as err:
            row = _row("versus", "mc_kl_k1", impl, note=f"failed: {err!r}")
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
                _row("versus", workload, name, batch=batch, event=event, note=f"failed: {err!r}")
            )
    t = time_interleaved({**calls, **ceiling_calls}, timing)
    best = _best_of(t["read_jax_sum"], t["read_numpy_sum"])
    for name in calls:
        rows.append(
            _row(
                "versus",
                workload,
                name,
                batch=batch,
                event=event,
                bytes_in=nbytes,
                seconds=_median(t[name]),
                throughput=nbytes / _median(t[name]) / 1e9,
                unit="GB/s",
                ceiling=nbytes / _median(best) / 1e9,
                fraction=_fraction(t[name], best),
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
    a, v, timing = cfg["analytic"], cfg["versus"], _timing(cfg)
    status = peer_status()
    rng = np.random.default_rng(cfg["seed"] + 6)
    rows: list[dict[str, Any]] = []
    diag_peers = _mvn_diag_peers(status)
    for b in a["batch_sizes"]:
        for d in a["event_sizes"]:
            arrays = _normal_params(rng, (b, d))
            rows += _versus_rows(
                "mvn_diag", jaxkl.analytic.mvn_diag, diag_peers, arrays, timing, batch=b, event=d
            )
            del arrays
    cat_peers = _categorical_peers(status)
    for b, k in v["categorical_cases"]:
        arrays = _logits(rng, b, k)
        rows += _versus_rows(
            "categorical", jaxkl.analytic.categorical, cat_peers, arrays, timing, batch=b, event=k
        )
        del arrays
    tril_peers = _tril_peers(status)
    for d, b in v["tril_cases"]:
        arrays = _tril_params(rng, b, d)
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


# --------------------------------------------------------------------------- anatomy


def _horner(x):
    acc = jnp.full_like(x, 0.1)
    for c in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1):
        acc = acc * x + c
    return acc * x


# Probes on one [B, D] array: what XLA:CPU charges per element for the pieces a kernel is
# made of. The row sums have the MVNDiag kernel's shape; the map writes its output.
PROBES = {
    "row sum: sum(x, -1)": lambda x: jnp.sum(x, -1),
    "row sum of 1 log: sum(log x, -1)": lambda x: jnp.sum(jnp.log(x), -1),
    "row sum of 11 multiply-adds": lambda x: jnp.sum(_horner(x), -1),
    "row sum of a select: sum(where(x > 1, x, -x), -1)": lambda x: jnp.sum(
        jnp.where(x > 1.0, x, -x), -1
    ),
    "row sum of sign(x - 1)": lambda x: jnp.sum(jnp.sign(x - 1.0), -1),
    "elementwise map (writes [B, D]): x + 1": lambda x: x + 1.0,
}


def run_anatomy(cfg: dict[str, Any]) -> dict[str, Any]:
    """Cost per element of reductions with 0, 1 and 11 ops fused in, a select, and a map.

    Explains the analytic figures: how many fused loops XLA makes (a select cannot join
    the library reduction fusion, so it is materialised first) and what each extra op
    fused into a row reduction costs, next to the read ceiling of the same array.
    """
    a, timing = cfg["analytic"], _timing(cfg)
    b, d = max(a["batch_sizes"]), max(a["event_sizes"])
    rng = np.random.default_rng(cfg["seed"] + 5)
    x = jnp.asarray(np.exp(np.float32(0.3) * rng.standard_normal((b, d), dtype=np.float32)))
    ceiling = read_ceiling([x])
    rows = []
    for name, fn in PROBES.items():
        row = _analytic_row("probe", name, compile_bound(fn, x), timing, ceiling, batch=b, event=d)
        row["ns_per_element"] = row["seconds"] / (b * d) * 1e9
        row["section"] = "anatomy"
        rows.append(row)
    return {"rows": rows}


# --------------------------------------------------------------------------- variance


def mc_kl_keywords() -> set[str]:
    return set(inspect.signature(jaxkl.mc_kl).parameters)


def run_variance(cfg: dict[str, Any]) -> dict[str, Any]:
    """Precision per second of each mc_kl option, and its unbiasedness (5 SE)."""
    v, timing = cfg["variance"], _timing(cfg)
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
                _row(
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
                _row(
                    "variance", name, option, exact=pairs[name][1], note=f"refused by mc_kl: {err}"
                )
                for name in PAIRS
            ]
            continue
        for name in PAIRS:
            params, exact = pairs[name]
            call = lambda c=c, params=params: c.executable(keys, *params)  # noqa: E731
            values, stderrs = (np.asarray(x, np.float64) for x in call())
            t = _median(time_interleaved({"kernel": call}, timing)["kernel"]) / reps
            var = float(np.var(values, ddof=1))
            se = math.sqrt(var / reps)
            mean = float(np.mean(values))
            z = (mean - exact) / se if se > 0 else (0.0 if mean == exact else math.inf)
            rows.append(
                _row(
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


# --------------------------------------------------------------------------- retrace


class _CompileCounter:
    """Counts JAX traces and backend compiles reported through ``jax.monitoring``."""

    TRACE = "/jax/core/compile/jaxpr_trace_duration"
    COMPILE = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.traces = 0
        self.compiles = 0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event == self.TRACE:
            self.traces += 1
        elif event == self.COMPILE:
            self.compiles += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def _retrace_cases(cfg: dict[str, Any]) -> list[tuple[str, Callable, Callable]]:
    """(name, fn, make_args(seed)) at small shapes; each call of make_args gives new values."""
    n = 64

    def gauss(seed):
        return _normal_params(np.random.default_rng(seed), (32, 8))

    def mc(estimator, **kw):
        def f(key, lq, sq, lp, sp):
            q = jaxkl.MultivariateNormalDiag(lq, sq)
            p = jaxkl.MultivariateNormalDiag(lp, sp)
            return jaxkl.mc_kl(key, q, p, n, estimator=estimator, **kw)

        return f

    def mc_args(seed):
        return [jax.random.key(seed), *gauss(seed)]

    def tril(seed):
        return _tril_params(np.random.default_rng(seed), 16, 4)

    def logits(seed):
        return _logits(np.random.default_rng(seed), 16, 32)

    def samples(seed):
        g = np.random.default_rng(seed)
        return [jnp.asarray(g.standard_normal((n, 3), dtype=np.float32)) for _ in range(2)]

    cases = [
        ("analytic.normal", jaxkl.analytic.normal, gauss),
        ("analytic.mvn_diag", jaxkl.analytic.mvn_diag, gauss),
        ("analytic.mvn_tril", jaxkl.analytic.mvn_tril, tril),
        ("analytic.categorical", jaxkl.analytic.categorical, logits),
        (
            "kl(MultivariateNormalDiag)",
            lambda la, sa, lb, sb: jaxkl.kl(
                jaxkl.MultivariateNormalDiag(la, sa), jaxkl.MultivariateNormalDiag(lb, sb)
            ),
            gauss,
        ),
        ("mc_kl k1", mc("k1"), mc_args),
        ("mc_kl k3", mc("k3"), mc_args),
        (
            "importance_kl",
            lambda key, lq, sq, lp, sp: jaxkl.importance_kl(
                key,
                jaxkl.MultivariateNormalDiag(lq, sq),
                jaxkl.MultivariateNormalDiag(lp, sp),
                jaxkl.MultivariateNormalDiag(lq, 1.5 * sq),
                n,
            ),
            mc_args,
        ),
        ("knn_kl", lambda x, y: jaxkl.knn_kl(x, y, k=1), samples),
    ]
    known = mc_kl_keywords()
    for option in cfg["variance"]["options"]:
        estimator, flags = parse_option(option)
        if flags and set(flags) <= known:
            cases.append((f"mc_kl {option}", mc(estimator, **flags), mc_args))
    return cases


def run_retrace(cfg: dict[str, Any]) -> dict[str, Any]:
    """Traces and compiles on the second of two eager calls with equal shapes.

    (Jitted kernels are checked where they are timed: every compiled kernel's row has
    ``retraces``, the traces added by two more calls of its ``jax.jit`` wrapper.)
    """
    rows = []
    eager = set(cfg["retrace"]["eager"])
    for name, fn, make_args in _retrace_cases(cfg):
        if "all" not in eager and name not in eager:
            continue
        first, second = make_args(1), make_args(2)
        # The first call compiles whatever it needs; the second, with new values of the
        # same shapes, must reuse all of it.
        jax.block_until_ready(fn(*first))
        with _CompileCounter() as counter:
            jax.block_until_ready(fn(*second))
        rows.append(
            _row(
                "retrace",
                name,
                "jaxkl eager",
                eager_second_call_traces=counter.traces,
                eager_second_call_compiles=counter.compiles,
            )
        )
    return {"rows": rows}


# --------------------------------------------------------------------------- figure

WORKLOAD_STYLE = {
    "normal": ("C0", "o", "Normal [B, D]"),
    "mvn_diag": ("C1", "s", "MultivariateNormalDiag"),
    "mvn_tril": ("C2", "^", "MultivariateNormalTriL"),
    "categorical": ("C3", "D", "Categorical"),
}


def figure(records: dict[str, Any], cfg: dict[str, Any]):
    """Four panels: analytic GB/s, fraction of the read ceiling, Monte Carlo, variance."""
    fig, axes = new_figure(2, 2, figsize=(11.5, 8.5))
    ax_gbs, ax_frac, ax_mc, ax_var = axes.ravel()
    analytic = [r for r in _rows(records, "analytic") if r.get("fraction") is not None]
    for wl, (color, marker, label) in WORKLOAD_STYLE.items():
        pts = sorted((r for r in analytic if r["workload"] == wl), key=lambda r: r["bytes_in"])
        if not pts:
            continue
        mb = [r["bytes_in"] / 1e6 for r in pts]
        ax_gbs.scatter(mb, [r["throughput"] for r in pts], color=color, marker=marker, label=label)
        ax_frac.scatter(mb, [r["fraction"] for r in pts], color=color, marker=marker, label=label)
    if analytic:
        # One ceiling per byte count (kernels on the same arrays share it): the median.
        by_bytes: dict[int, list] = {}
        for r in analytic:
            by_bytes.setdefault(r["bytes_in"], []).append(r["ceiling"])
        sizes = sorted(by_bytes)
        ax_gbs.plot(
            [nb / 1e6 for nb in sizes],
            [_median(by_bytes[nb]) for nb in sizes],
            color="0.5",
            ls="--",
            lw=1,
            label="read ceiling (same bytes, same run)",
        )
    tg = cfg["targets"]
    ax_frac.axhline(
        tg["gaussian_of_read"],
        color="C1",
        ls=":",
        lw=1,
        label=f"target Gaussian {tg['gaussian_of_read']}",
    )
    ax_frac.axhline(
        tg["categorical_of_read"],
        color="C3",
        ls=":",
        lw=1,
        label=f"target Categorical {tg['categorical_of_read']}",
    )
    for ax in (ax_gbs, ax_frac):
        ax.set_xscale("log")
        ax.set_xlabel("parameter bytes read per call (MB)")
        ax.grid(alpha=0.3, which="both")
    ax_gbs.set_yscale("log")
    ax_gbs.set_ylabel("GB/s")
    ax_gbs.set_title("(a) analytic KL throughput")
    if ax_gbs.get_legend_handles_labels()[0]:
        ax_gbs.legend(fontsize=7)
    ax_frac.set_ylabel("fraction of the read ceiling")
    ax_frac.set_title("(b) analytic KL / read ceiling")
    ax_frac.legend(fontsize=7)

    mc = [
        r
        for r in _rows(records, "monte_carlo") + _rows(records, "peers")
        if r.get("unit") == "M sample-dims/s" and r.get("throughput")
    ]
    if mc:
        top = max(r["count"] for r in mc)
        mc = [r for r in mc if r["count"] == top]
        ceiling = _median([r["ceiling"] for r in mc])
        labels = ["RNG ceiling (threefry)"] + [
            r["workload"].replace("_", " ", 1) if r["section"] == "monte_carlo" else r["impl"]
            for r in mc
        ]
        values = [ceiling] + [r["throughput"] for r in mc]
        colors = ["0.6"] + ["C0" if r["section"] == "monte_carlo" else "C4" for r in mc]
        ys = np.arange(len(values))[::-1]
        ax_mc.barh(ys, values, color=colors)
        ax_mc.set_yticks(ys, labels, fontsize=7)
        for y, val, r in zip(ys[1:], values[1:], mc, strict=True):
            ax_mc.text(val, y, f" {r['fraction']:.2f}", va="center", fontsize=7)
        ax_mc.axvline(
            tg["mc_of_rng"] * ceiling,
            color="k",
            ls=":",
            lw=1,
            label=f"{tg['mc_of_rng']} × RNG ceiling",
        )
        b, n, d = mc[0]["batch"], mc[0]["samples"], mc[0]["event"]
        ax_mc.set_title(f"(c) Monte Carlo, B={b}, N={n}, D={d} (labels: fraction)")
        ax_mc.legend(fontsize=7, loc="lower right")
    ax_mc.set_xlabel("M sample-dims/s")

    var = [r for r in _rows(records, "variance") if r.get("gain") is not None]
    options = list(dict.fromkeys(r["impl"] for r in var))
    width = 0.8 / max(len(options), 1)
    for i, option in enumerate(options):
        xs, gains = [], []
        for j, pair in enumerate(PAIRS):
            row = next((r for r in var if r["workload"] == pair and r["impl"] == option), None)
            if row is not None and math.isfinite(row["gain"]):
                xs.append(j + (i - (len(options) - 1) / 2) * width)
                gains.append(row["gain"])
        ax_var.bar(xs, gains, width=width, label=option, color=f"C{i}")
    ax_var.axhline(
        tg["close_pair_gain"],
        color="k",
        ls=":",
        lw=1,
        label=f"goal {tg['close_pair_gain']:g}× (close pair)",
    )
    ax_var.axhline(1.0, color="0.5", lw=0.8)
    ax_var.set_xticks(range(len(PAIRS)), [_pair_label(records, p) for p in PAIRS], fontsize=8)
    ax_var.set_yscale("log")
    ax_var.set_ylabel("precision per second / plain k1")
    ax_var.set_title(f"(d) variance reduction, n={cfg['variance']['num_samples']}")
    ax_var.legend(fontsize=7, ncol=2)
    ax_var.grid(alpha=0.3, axis="y", which="both")
    return fig


def _pair_label(records, pair: str) -> str:
    row = next((r for r in _rows(records, "variance", pair) if "exact" in r), None)
    return pair if row is None else f"{pair}\nKL={row['exact']:.3g}"


# --------------------------------------------------------------------------- report


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mb(x) -> float | None:
    return None if x is None else x / 1e6


def report_markdown(records, targets, cfg, *, wall: float, gpu: bool) -> str:
    env = {
        "jax": jax.__version__,
        "devices": ", ".join(str(d) for d in jax.devices()),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    out = [
        "# Throughput against this machine's ceilings",
        "",
        f"jax {env['jax']} on {env['devices']} ({env['cpus']} CPUs), float32, "
        f"measurement wall time {wall:.0f} s. "
        + (
            "A GPU was available for this run."
            if gpu
            else "No GPU was available for this run; every figure below is CPU-only."
        ),
        "",
        "Every speed is a ratio to a ceiling timed in the same process, back to back with it "
        "in each repeat (median of the per-repeat ratios): the **read ceiling** is the faster "
        "of a jitted `jnp.sum` and `numpy.sum` over the kernel's own input arrays; the **RNG "
        "ceiling** is `jax.random.normal` (threefry) for the same count of numbers, written "
        "out or summed in-jit, whichever is faster. Timing: `jax.jit(f).lower(...).compile()`"
        f", {cfg['timing']['warmup']} warm-up call(s), median of {cfg['timing']['repeats']} "
        f"repeats, each looping the call for ≥ {cfg['timing']['min_time']} s and ending in "
        "`block_until_ready`.",
        "",
        "Load average (1 min) at the start and end of each section: "
        + ", ".join(
            f"{name} {_fmt(rec['load_average'][0], 2)}→{_fmt(rec['load_average'][1], 2)}"
            for name, rec in records.items()
        )
        + ". Ratios are only trustworthy when these are well below the core count.",
        "",
        "## Targets (fractions of ceilings measured in this run)",
        "",
        _table(
            ["target", "measured", "goal", "met", "where"],
            [[t["target"], t["measured"], t["goal"], t["met"], t["what"]] for t in targets],
        ),
        "",
    ]
    out += _versus_report(records)
    out += _analytic_report(records)
    out += _mc_report(records)
    out += _peers_report(records)
    out += _anatomy_report(records)
    out += _knn_report(records)
    out += _knn_tree_report(records, cfg)
    out += _variance_report(records, cfg)
    out += _retrace_report(records)
    out += _bounds_report(records, targets, cfg)
    out += [
        "## Reproduce",
        "",
        "```",
        ".venv/bin/python experiments/throughput.py --config configs/throughput.toml",
        "```",
        "",
        "on an otherwise idle machine; `configs/throughput_quick.toml` runs every section at "
        "tiny sizes (a smoke test, not a measurement). `make throughput-peers` runs the same "
        "config in a separate environment with torch (CPU build), distrax and numpyro "
        "installed. This run had "
        f"`OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}`; set "
        "to 1, the triangular solves of MultivariateNormalTriL do not compete with XLA's "
        "threads for the cores (1.3× faster at d = 64 on an idle 2-core machine, far more "
        "under load).",
        "",
    ]
    return "\n".join(out)


def _versus_table(records) -> tuple[list[list[Any]], list[list[Any]]]:
    """(summary rows: workload, B, event, jaxkl, fastest peer, its fraction, ratio; detail)."""
    summary, detail = [], []
    for r in _rows(records, "versus"):
        if r["impl"] == "jaxkl" and r.get("vs_fastest_peer") is not None:
            peer = next(
                p
                for p in _rows(records, "versus")
                if p["workload"] == r["workload"]
                and p["batch"] == r["batch"]
                and p["event"] == r["event"]
                and p["impl"] == r["fastest_peer"]
            )
            summary.append(
                [
                    r["workload"],
                    r["batch"],
                    r["event"],
                    r["fraction"],
                    f"{r['fastest_peer']} {_fmt(peer['fraction'])}",
                    f"**{r['vs_fastest_peer']:.2f}×**"
                    if r["vs_fastest_peer"] < 1.0
                    else f"{r['vs_fastest_peer']:.2f}×",
                ]
            )
        detail.append(
            [
                r["workload"],
                r["batch"],
                r["event"],
                r["impl"],
                r.get("throughput"),
                r.get("fraction"),
                r.get("note"),
            ]
        )
    for r in _rows(records, "knn_tree"):
        if r.get("vs_fastest_peer") is None:
            continue
        ratio = r["vs_fastest_peer"]
        summary.append(
            [
                "knn",
                r["batch"],
                r["event"],
                f"{r['seconds']:.3g} s",
                f"scipy cKDTree {r['ceiling'] ** -1:.3g} s ({r['search']})",
                f"**{ratio:.2f}×**" if ratio < 1.0 else f"{ratio:.2f}×",
            ]
        )
    return summary, detail


def _versus_report(records) -> list[str]:
    rec = records.get("versus")
    if rec is None:
        return []
    summary, detail = _versus_table(records)
    status = ", ".join(f"{k}: {v}" for k, v in rec["status"].items())
    return [
        "## jaxkl ÷ fastest peer",
        "",
        "Each implementation is timed in turn with the read ceiling of the same arrays, "
        "repeat after repeat; its figure is the median of its per-repeat ratios to that "
        "ceiling, and the last column is jaxkl's figure over the fastest peer's (≥ 1 means "
        "jaxkl is at least as fast). `event` is D for the diagonal Gaussian, K for "
        "Categorical and d for MultivariateNormalTriL. `mc_kl_k1` rows (B, event = D, "
        "N draws in the detail table) are reparameterised k1 on a small batch, each timed "
        "with the RNG ceiling for its draws instead of the read ceiling (their GB/s column "
        "below is M sample-dims/s); jaxkl's call "
        "returns the whole Estimate (stderr, tail diagnostic), the peers' the mean. "
        "Peers in this run: " + status + ". A peer that is not installed or "
        "does not import is skipped; the reason is the text after its name.",
        "",
        _table(
            ["workload", "B", "event", "jaxkl", "fastest peer (fraction)", "jaxkl ÷ fastest"],
            summary,
        ),
        "",
        "k-NN rows (`knn`, B = n = m, event = d) compare seconds per estimate of "
        '`knn_kl(method="tree")` and of scipy\'s `cKDTree` computing the same estimate '
        "(section `knn_tree` below).",
        "",
        "Every implementation, same run (GB/s of input bytes; fraction of the read ceiling):",
        "",
        _table(["workload", "B", "event", "implementation", "GB/s", "fraction", "note"], detail),
        "",
    ]


def _analytic_report(records) -> list[str]:
    rows = _rows(records, "analytic")
    if not rows:
        return []
    body = []
    for r in rows:
        extra = ""
        if r.get("fraction_of_stream") is not None:
            extra = f"{r['fraction_of_stream']:.2f} of read-4-write-1"
        if r.get("gflops") is not None:
            extra = f"{r['gflops']:.1f} GFLOP/s"
        body.append(
            [
                r["workload"],
                r["batch"],
                r["event"],
                _mb(r["bytes_in"]),
                r["throughput"],
                r["ceiling"],
                r["fraction"],
                r.get("compile_s"),
                extra,
            ]
        )
    return [
        "## Analytic KL",
        "",
        "GB/s of parameter bytes read. `event` is D (Normal, MVNDiag), d (TriL) or K "
        "(Categorical). The Normal kernel is elementwise, so it also writes B·D outputs; "
        "its last column compares it with a jitted `a + b + c + d` over the same arrays "
        "(the same read-4-write-1 traffic).",
        "",
        _table(
            [
                "kernel",
                "B",
                "event",
                "MB in",
                "GB/s",
                "read ceiling GB/s",
                "fraction",
                "compile s",
                "note",
            ],
            body,
        ),
        "",
    ]


def _mc_report(records) -> list[str]:
    rows = _rows(records, "monte_carlo")
    if not rows:
        return []
    body = [
        [
            r["workload"],
            r["batch"],
            r["samples"],
            r["event"],
            r["throughput"],
            r["ceiling"],
            r["fraction"],
            r.get("compile_s"),
        ]
        for r in rows
    ]
    return [
        "## Monte Carlo",
        "",
        "q, p MultivariateNormalDiag; M sample-dims/s = N·B·D / seconds. `importance_kl` "
        "draws from a proposal and computes ESS and PSIS k̂ (a sort of the N log weights per "
        "batch member), so its ratio is not a target.",
        "",
        _table(
            ["estimator", "B", "N", "D", "M sample-dims/s", "RNG ceiling", "fraction", "compile s"],
            body,
        ),
        "",
    ]


def _peers_report(records) -> list[str]:
    rec = records.get("peers")
    if rec is None:
        return []
    body = [
        [
            r["workload"],
            r["impl"],
            r.get("throughput"),
            r.get("unit"),
            r.get("ceiling"),
            r.get("fraction"),
            r.get("note"),
        ]
        for r in rec["rows"]
    ]
    status = ", ".join(f"{k}: {v}" for k, v in rec["status"].items())
    return [
        "## Same workload, other implementations",
        "",
        f"Peers: {status}. Peers that are not installed are skipped (none is installed by "
        "this script). The textbook formulas are what a user writes by hand; "
        "they lose all precision when the scales are close (see the report of seed_cases).",
        "",
        _table(
            ["workload", "implementation", "throughput", "unit", "ceiling", "fraction", "note"],
            body,
        ),
        "",
    ]


def _knn_report(records) -> list[str]:
    rows = _rows(records, "knn")
    if not rows:
        return []
    body = [
        [
            r["batch"],
            r["event"],
            r.get("seconds"),
            r.get("timed_calls"),
            r.get("throughput"),
            r.get("value"),
            r.get("stderr"),
            r.get("exact"),
            _mb(r.get("xla_peak_bytes")),
            _mb(r.get("rss_peak_growth_bytes")),
            r.get("note"),
        ]
        for r in rows
    ]
    return [
        "## k-nearest-neighbour KL",
        "",
        "`knn_kl(x, y)` with n = m, x ~ N(0, I), y ~ N(0.5·1, I) (true KL in the `exact` "
        "column). Peak memory two ways: XLA's buffer assignment for the compiled call "
        "(arguments + outputs + temporaries) and the growth of the process's resident "
        "high-water mark (`ru_maxrss`) since the section began — sizes run in increasing "
        "order, so each is the peak up to that size.",
        "",
        _table(
            [
                "n = m",
                "d",
                "s per call",
                "timed calls",
                "M pairs/s",
                "estimate",
                "stderr",
                "exact",
                "XLA peak MB",
                "RSS peak growth MB",
                "note",
            ],
            body,
        ),
        "",
    ]


def _variance_report(records, cfg) -> list[str]:
    rec = records.get("variance")
    if rec is None:
        return []
    v = cfg["variance"]
    body = [
        [
            r["workload"],
            r["impl"],
            r.get("exact"),
            r.get("mean"),
            r.get("z"),
            r.get("unbiased"),
            r.get("variance"),
            r.get("mean_reported_stderr"),
            r.get("replicate_sd"),
            None if r.get("seconds") is None else r["seconds"] * 1e6,
            r.get("variance_ratio"),
            r.get("gain"),
            r.get("note"),
        ]
        for r in rec["rows"]
    ]
    return [
        "## Variance reduction: precision per second",
        "",
        f"Each option's estimate with n = {v['num_samples']} (QMC: "
        f"{v['qmc_randomizations']} randomisations) is replicated {v['replicates']} times "
        "in one vmapped, compiled call; variance is across replicates, seconds per estimate "
        "= median call time / replicates, precision per second = 1 / (variance × seconds). "
        f"`z` = (mean − exact) / SE over replicates; unbiased means |z| ≤ {Z_MAX:g}. "
        "`reported stderr` is the mean of the estimator's own stderr, to compare with "
        "the replicate sd. Gains are against jaxkl's own plain k1 on the same pair; "
        "other libraries' k1 are compared with it in the peers table of the same run.",
        "",
        _table(
            [
                "pair",
                "option",
                "exact KL",
                "mean",
                "z",
                "unbiased",
                "variance",
                "reported stderr",
                "replicate sd",
                "µs / estimate",
                "variance ÷",
                "precision/s gain",
                "note",
            ],
            body,
        ),
        "",
    ]


def _compiled_rows(records) -> list[dict]:
    """Rows of compiled jaxkl kernels (one per kernel and shape; variance: one per option)."""
    out, seen = [], set()
    for sec in ("knn", "analytic", "monte_carlo", "peers", "variance"):
        for r in _rows(records, sec):
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


def _retrace_report(records) -> list[str]:
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
                    _median([r["trace_s"] for r in rs]),
                    _median([r["compile_s"] for r in rs]),
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
            _table(
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
    rows = _rows(records, "retrace")
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
            _table(["function", "eager 2nd-call traces", "eager 2nd-call compiles"], body),
            "",
        ]
    return out


def readme_section(records, targets, cfg) -> str:
    """The README's performance section, generated from this run (``--publish`` writes it
    between the README's ``perf:begin``/``perf:end`` markers)."""
    env = f"jax {jax.__version__}, {os.cpu_count()} CPUs"
    loads = [v for rec in records.values() for v in rec.get("load_average", []) if v is not None]
    load = f"1-minute load average {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    status = records.get("versus", {}).get("status") or records.get("peers", {}).get("status")
    peers = ", ".join(f"{k} {v}" for k, v in (status or {}).items())
    lines = [
        "## Performance",
        "",
        "![throughput](results/throughput/throughput.png)",
        "",
        f"Generated by `experiments/throughput.py` from the committed run ({env}, {load}; "
        f"peers: {peers}). Each figure is a median over "
        f"{cfg['timing']['repeats']} repeats of a ratio to this machine's own ceiling timed "
        "back to back with it (read ceiling: the faster of `jnp.sum` and `numpy.sum` over "
        "the same bytes; RNG ceiling: `jax.random.normal` for the same count of numbers). "
        "Details, every shape and what bounds each number: "
        "[results/throughput/report.md](results/throughput/report.md).",
        "",
    ]
    summary, _ = _versus_table(records)
    if summary:
        lines += [
            "jaxkl ÷ the fastest peer, same run (≥ 1: jaxkl at least as fast):",
            "",
            _table(
                ["workload", "B", "event", "jaxkl", "fastest peer (fraction)", "jaxkl ÷ fastest"],
                summary,
            ),
            "",
        ]
    lines += ["| target | measured | goal |", "|---|---|---|"]
    for t in targets:
        val = t["measured"]
        shown = "—" if val is None else (f"{val:.2f}×" if t["multiple"] else f"{val:.2f}")
        goal = f"≥ {t['goal']:g}×" if t["multiple"] else f"≥ {t['goal']:g}"
        met = "" if t["met"] is None else (" ✓" if t["met"] else " ✗")
        lines.append(f"| {t['target']} ({t['what']}) | {shown}{met} | {goal} |")
    lines += [
        "",
        "Reproduce on an idle machine (`make throughput-peers` runs it with the peers "
        "installed in `.venv-peers`):",
        "",
        "```sh",
        ".venv/bin/python experiments/throughput.py --config configs/throughput.toml "
        "--out /tmp/tp --publish",
        "```",
        "",
    ]
    return "\n".join(lines)


README_BEGIN, README_END = "<!-- perf:begin -->", "<!-- perf:end -->"


def update_readme(readme: Path, section: str) -> None:
    """Replace the text between the README's perf markers with ``section``."""
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    if not rest or README_END not in rest:
        raise SystemExit(f"{readme}: no {README_BEGIN} … {README_END} markers")
    new = f"{head}{README_BEGIN}\n{section.rstrip()}\n{README_END}{tail}"
    atomic_write_bytes(readme, new.encode("utf-8"))


def _anatomy_report(records) -> list[str]:
    rows = _rows(records, "anatomy")
    if not rows:
        return []
    body = [
        [
            r["impl"],
            r["ns_per_element"],
            r["throughput"],
            r["fraction"],
            r["xla_fusions"],
            r["xla_fused_ops"],
            _mb(r["xla_temp_bytes"]),
        ]
        for r in rows
    ]
    b, d = rows[0]["batch"], rows[0]["event"]
    return [
        "## Anatomy: what XLA charges per element",
        "",
        f"Probes on one float32 [{b}, {d}] array (its read ceiling as above). `fusions` is "
        "the number of fused loops XLA launches, `HLO ops` the operations inside them, "
        "`temp MB` the intermediates it materialises.",
        "",
        _table(
            ["probe", "ns / element", "GB/s", "fraction of read", "fusions", "HLO ops", "temp MB"],
            body,
        ),
        "",
    ]


def _bounds_report(records, targets, cfg) -> list[str]:
    """What limits each missed target, in numbers from this same run."""
    out = ["## What bounds the figures", ""]
    if not [t for t in targets if t["met"] is False]:
        out += ["Every target was met in this run.", ""]
    probe = {r["impl"]: r for r in _rows(records, "anatomy")}
    peers = {r["impl"]: r for r in _rows(records, "peers") if r.get("fraction") is not None}
    diag = _largest(_rows(records, "analytic", "mvn_diag"))
    textbook = peers.get("jax textbook formula (jit)")
    if diag:
        line = (
            f"* **Gaussian reductions (MVNDiag, B={diag['batch']}, D={diag['event']}): "
            f"{diag['fraction']:.2f} of the read ceiling.** XLA:CPU compiles the kernel into "
            f"{diag['xla_fusions']} fused loop(s) with {diag['xla_fused_ops']} HLO ops and "
            f"{_mb(diag['xla_temp_bytes']):.0f} MB of materialised [B, D] intermediates."
        )
        if textbook:
            line += (
                f" The textbook formula on the same arrays ({textbook['xla_fused_ops']} ops, "
                f"{textbook['xla_fusions']} loop) reaches {textbook['fraction']:.2f} — but "
                "loses all precision when the scales are close."
            )
        out.append(line)
    keys = (
        "row sum: sum(x, -1)",
        "row sum of 1 log: sum(log x, -1)",
        "row sum of 11 multiply-adds",
        "row sum of a select: sum(where(x > 1, x, -x), -1)",
        "row sum of sign(x - 1)",
    )
    if all(k in probe for k in keys):
        base, log1, fma, sel, sgn = (probe[k] for k in keys)
        per_op = (fma["ns_per_element"] - base["ns_per_element"]) / 11
        out.append(
            f"  Why: the row reduction runs as XLA:CPU's library fusion (`__ynn_fusion`), "
            f"which evaluates the fused elementwise graph op by op: a plain row sum costs "
            f"{base['ns_per_element']:.2f} ns/element ({base['fraction']:.2f} of the read "
            f"ceiling), one log {log1['ns_per_element']:.2f}, eleven multiply-adds "
            f"{fma['ns_per_element']:.2f} (≈ {per_op:.2f} ns per extra op), `sign` "
            f"{sgn['ns_per_element']:.2f}. A `jnp.where` cannot join that fusion at all: the "
            f"select probe needs {sel['xla_fusions']} loops and "
            f"{_mb(sel['xla_temp_bytes']):.0f} MB of temporaries "
            f"({sel['ns_per_element']:.2f} ns/element). So the accurate scale term "
            "½(r² − 1) − log r is written with no compare or select at all "
            "(`jaxkl.analytic._math.gaussian_scale_kl`: its series and log r − 2s are "
            "blended arithmetically), which made the kernel 2.5× faster than the earlier "
            "form with two branches; what remains is one log, three divisions and ~30 "
            "arithmetic ops per coordinate, and at the per-op cost above that, not memory "
            "bandwidth, sets the pace. A kernel that cannot be expressed in fewer ops "
            "cannot reach the multi-threaded `jnp.sum`; against a single-threaded "
            "`numpy.sum` over the same bytes, timed in the same run, the targets table "
            "gives the second figure."
        )
    normal = _largest(_rows(records, "analytic", "normal"))
    if normal and normal.get("fraction_of_stream") is not None:
        mapped = probe.get("elementwise map (writes [B, D]): x + 1")
        extra = (
            ""
            if mapped is None
            else (
                f"; even `x + 1` over one such array runs at {mapped['fraction']:.2f} of the read "
                "ceiling, because every call allocates and writes a new [B, D] output"
            )
        )
        out.append(
            f"* **Normal ({normal['fraction']:.2f} of the read ceiling)** is elementwise: it "
            f"writes one float per four read. A jitted `(a + b) + (c + d)` over the same "
            f"arrays — the same traffic, no arithmetic — reaches "
            f"{normal['stream_gbs'] / normal['ceiling']:.2f} of the read ceiling and the "
            f"kernel {normal['fraction_of_stream']:.2f} of that stream{extra}. The read "
            "ceiling is not attainable for any kernel that writes [B, D]."
        )
    tril = [r for r in _rows(records, "analytic", "mvn_tril") if r.get("gflops")]
    if tril:
        calls = sorted({c for r in tril for c in r.get("xla_custom_calls", [])})
        where = (
            f"its triangular solve is a library call ({', '.join(f'`{c}`' for c in calls)}), "
            "which runs outside XLA's fused loops, on the LAPACK that jaxlib borrows from "
            "SciPy (OpenBLAS, with its own thread pool competing with XLA's)"
            if calls
            else "its triangular solve runs in XLA's own loops"
        )
        if not any("xla_custom_calls" in r for r in tril):
            where = "the triangular solve sets the pace"
        out.append(
            f"* **MultivariateNormalTriL: {min(r['fraction'] for r in tril):.3f}–"
            f"{max(r['fraction'] for r in tril):.2f} of the read ceiling, "
            f"{min(r['gflops'] for r in tril):.1f}–{max(r['gflops'] for r in tril):.1f} "
            f"GFLOP/s** (d² flops per right-hand side of the solve): not memory-bound; "
            f"{where}."
        )
    cat = [r for r in _rows(records, "analytic", "categorical") if r.get("fraction")]
    if cat:
        big = max(cat, key=lambda r: r["event"])
        out.append(
            f"* **Categorical (K={big['event']}): {big['fraction']:.2f} of the read "
            f"ceiling.** {big['xla_fusions']} fused loops, {big['xla_fused_ops']} HLO ops "
            f"and {_mb(big['xla_temp_bytes']):.0f} MB of intermediates. The precise form "
            "KL = log1p(Σ p·(eˣ − 1 − x)), x = E_p[g] − g, needs five dependent row sums "
            "(max a, max b, Σ e^(a − max a), the mean gap, then the sum itself) that read "
            "seven [B, K] arrays — 3.5× the input bytes, so at most ≈ 0.29 of the read "
            "ceiling even with free arithmetic — and the last of them costs ~33 ops and "
            "three exps per element at the per-op price above. XLA:CPU gives each fused "
            "reduction one output, so the sums cannot share a pass. Rows longer than "
            "16 384 categories are reduced as chunks of at most that many, each a row of "
            "its own: over one long row (K = 151 936) the same fused reductions ran ~14× "
            "slower per element (`jaxkl.analytic.discrete._chunks`)."
        )
    for est in ("k1", "k3"):
        mc = _largest(_rows(records, "monte_carlo", f"mc_kl_{est}"), key="count")
        if mc:
            out.append(
                f"* **mc_kl {est}: {mc['fraction']:.2f} of the RNG ceiling** (B={mc['batch']}, "
                f"N={mc['samples']}, D={mc['event']}): generating the N·B·D standard normals "
                f"alone (threefry bits, then the inverse error function) takes "
                f"{min(mc['fraction'], 1.0):.0%} of the call's time; the rest is the two log "
                f"densities, the mean and the stderr ({mc['xla_fusions']} fused loops, "
                f"{_mb(mc['xla_temp_bytes']):.0f} MB of intermediates)."
            )
    rbg = peers.get("jaxkl.mc_kl k1, unsafe_rbg key")
    if rbg:
        verdict = (
            "so a faster generator would speed Monte Carlo up in proportion"
            if rbg["fraction"] > 1.0
            else "so threefry is the faster generator on this CPU and the RNG ceiling above "
            "is the right one"
        )
        out.append(
            f"* The same `mc_kl` call given an `unsafe_rbg` key (XLA's counter-based "
            f"generator) runs at {rbg['throughput']:.0f} M sample-dims/s, "
            f"{rbg['fraction']:.2f} × the threefry ceiling, {verdict}."
        )
    out.append("")
    return out


# --------------------------------------------------------------------------- orchestration

RUNNERS = {
    "knn": run_knn,
    "knn_tree": run_knn_tree,
    "analytic": run_analytic,
    "versus": run_versus,
    "monte_carlo": run_monte_carlo,
    "peers": run_peers,
    "anatomy": run_anatomy,
    "variance": run_variance,
    "retrace": run_retrace,
}


def _timing(cfg: dict[str, Any]) -> Timing:
    t = cfg["timing"]
    return Timing(repeats=t["repeats"], warmup=t["warmup"], min_time=t["min_time"])


def _timed_section(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    load0, t0, cpu0 = _loadavg(), time.perf_counter(), time.process_time()
    rec = RUNNERS[name](cfg)
    rec["wall_s"] = time.perf_counter() - t0
    rec["cpu_s"] = time.process_time() - cpu0
    rec["load_average"] = [load0, _loadavg()]
    return rec


def _rows(records: dict[str, Any], section: str, workload: str | None = None) -> list[dict]:
    rows = records.get(section, {}).get("rows", [])
    return [r for r in rows if workload is None or r["workload"] == workload]


def _largest(rows: list[dict], key: str = "bytes_in") -> dict | None:
    rows = [r for r in rows if r.get(key) is not None and r.get("fraction") is not None]
    return max(rows, key=lambda r: (r[key], r.get("event") or 0)) if rows else None


def evaluate_targets(records: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue #6 with the measured figure and whether it is met."""
    tg = cfg["targets"]
    out = []

    def add(name, row, measured_key, target, what, *, multiple=False):
        measured = None if row is None else row.get(measured_key)
        out.append(
            {
                "target": name,
                "what": what,
                "goal": target,
                "measured": measured,
                "met": None if measured is None else bool(measured >= target),
                # A multiple (×) of a baseline rather than a fraction of a ceiling.
                "multiple": multiple,
            }
        )

    if records.get("analytic") is not None:
        cat = [r for r in _rows(records, "analytic", "categorical") if r.get("fraction")]
        cat_row = max(cat, key=lambda r: r["event"]) if cat else None
        # Each goal against the strictest read ceiling measured, then against a
        # single-threaded numpy.sum over the same bytes, timed in the same repeats.
        for key, suffix, what in (
            ("fraction", "", "of the read ceiling"),
            ("fraction_of_numpy_read", ", one-thread numpy.sum ceiling", "of the numpy.sum read"),
        ):
            for wl, label in (("normal", "Normal"), ("mvn_diag", "MultivariateNormalDiag")):
                row = _largest(_rows(records, "analytic", wl))
                add(
                    f"analytic {label}{suffix}",
                    row,
                    key,
                    tg["gaussian_of_read"],
                    _size_label(row, what),
                )
            add(
                f"analytic Categorical{suffix}",
                cat_row,
                key,
                tg["categorical_of_read"],
                _size_label(cat_row, what, categorical=True),
            )
    for wl in ("mvn_diag", "categorical", "mvn_tril", "mc_kl_k1", "knn"):
        mine = [
            r
            for r in _rows(records, "versus", wl)
            if r["impl"] == "jaxkl" and r.get("vs_fastest_peer") is not None
        ]
        if wl == "knn":  # measured in its own section, knn_tree
            mine += [r for r in _rows(records, "knn_tree") if r.get("vs_fastest_peer")]
        if mine:
            worst = min(mine, key=lambda r: r["vs_fastest_peer"])
            add(
                f"{wl} ÷ fastest peer, every shape",
                worst,
                "vs_fastest_peer",
                1.0,
                f"worst of {len(mine)} shapes: B={worst['batch']}, event={worst['event']}, "
                f"vs {worst['fastest_peer']} (×)",
                multiple=True,
            )
    peer_rows = [r for r in _rows(records, "peers") if r.get("throughput")]
    for wl, ours in (("mvn_diag", "jaxkl.analytic.mvn_diag"), ("mc_kl_k1", "jaxkl.mc_kl k1")):
        mine = [r for r in peer_rows if r["workload"] == wl and r["impl"] == ours]
        others = [
            r
            for r in peer_rows
            if r["workload"] == wl and r["impl"].split()[0].split(".")[0] in PEER_PACKAGES
        ]
        if mine and others:
            fastest = max(others, key=lambda r: r["throughput"])
            ratio = {"speedup": mine[0]["throughput"] / fastest["throughput"]}
            add(
                f"{wl} against the fastest peer",
                ratio,
                "speedup",
                1.0,
                f"{ours} ÷ {fastest['impl']} (×), same run",
                multiple=True,
            )
    if records.get("monte_carlo") is not None:
        for est in cfg["monte_carlo"]["estimators"]:
            row = _largest(_rows(records, "monte_carlo", f"mc_kl_{est}"), key="count")
            add(
                f"mc_kl {est}",
                row,
                "fraction",
                tg["mc_of_rng"],
                _size_label(row, "of the RNG ceiling"),
            )
    if records.get("variance") is not None:
        close = [r for r in _rows(records, "variance", "close") if r.get("gain") is not None]
        best = max(close, key=lambda r: r["gain"]) if close else None
        add(
            "precision per second, close pair",
            best,
            "gain",
            tg["close_pair_gain"],
            "best option over plain k1" + (f" ({best['impl']})" if best else ""),
            multiple=True,
        )
    return out


def _size_label(row, what, categorical=False) -> str:
    if row is None:
        return what
    if row["section"] == "monte_carlo":
        return f"{what}, B={row['batch']}, N={row['samples']}, D={row['event']}"
    if categorical:
        return f"{what}, K={row['event']}, B={row['batch']}"
    return f"{what}, B={row['batch']}, D={row['event']}"


PUBLISHED = ("summary.json", "report.md", "metrics.csv", "throughput.png", "README_SECTION.md")


def main(argv=None) -> Path:
    parser = experiment_parser(EXPERIMENT, default_config=DEFAULT_CONFIG, description=__doc__)
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"also copy {', '.join(PUBLISHED)} to <out>/{EXPERIMENT}/ (the committed copy)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="with --publish: replace this README's perf:begin/perf:end section by the run's",
    )
    args, cfg = parse_experiment_args(parser, argv, validate=validate)
    run = RunDir.open(args.out, EXPERIMENT, cfg, run_name=args.run_name, stem=args.config.stem)
    t0 = time.perf_counter()
    records: dict[str, Any] = {}
    for name in SECTIONS:
        if name in cfg["sections"]:
            records[name] = run.cells.get_or_compute(
                cell_id(section=name), lambda name=name: _timed_section(name, cfg)
            )
            rec = records[name]
            print(f"{name}: {rec['wall_s']:.1f} s wall, {rec['cpu_s']:.1f} s CPU")
    # Measurement time of the sections (also right when they were resumed from cells).
    wall = sum(rec["wall_s"] for rec in records.values())
    targets = evaluate_targets(records, cfg)
    devices = [d.platform for d in jax.devices()]
    gpu = any(p in ("gpu", "cuda", "rocm") for p in devices)
    rows = [r for rec in records.values() for r in rec["rows"]]
    run.write_metrics([{k: r.get(k) for k in COLUMNS} for r in rows], columns=COLUMNS)
    run.write_figure("throughput.png", figure(records, cfg), dpi=cfg["plot"]["dpi"])
    run.write_report(report_markdown(records, targets, cfg, wall=wall, gpu=gpu))
    run.write_text("README_SECTION.md", readme_section(records, targets, cfg))
    run.write_summary(
        {"targets": targets, "sections": records},
        gpu_available=gpu,
        measurement_wall_seconds=wall,
        script_wall_seconds=time.perf_counter() - t0,
    )
    if args.publish:
        for name in PUBLISHED:
            atomic_write_bytes(Path(args.out) / EXPERIMENT / name, run.file(name).read_bytes())
        # The README's performance section is this run's, word for word.
        if args.readme is not None:
            update_readme(args.readme, run.file("README_SECTION.md").read_text(encoding="utf-8"))
    print(f"report: {run.file('report.md')}")
    return run.path


if __name__ == "__main__":
    main()
