"""Each estimator timed alone: its own compiled call of the public function, repeated.

The study's groups share draws to save compute, so a group's run time says nothing about
one estimator's cost (k1 would pay for k3's ratio checks, IS for SNIS). Here every
estimator gets its own ``jax.jit`` of the public function — ``mc_kl``, ``importance_kl``,
or sampling x ~ q, y ~ p followed by ``knn_kl`` — vmapped over a batch of keys, and the
seconds per estimate are batch time / batch size. Every public call draws its own
samples, so drawing is charged to each estimator, as it would be to a user.

Distributions enter the compiled function as arguments, so cases of one family and shape
(close, close_reverse and far are all Normal‖Normal) share a compile.

The uncertainty reported for the median time is a distribution-free interval from order
statistics: with m repeats, the j-th and (m + 1 − j)-th smallest times bracket the median
of the timing distribution with probability 1 − 2·P(Binomial(m, ½) < j); j is the largest
with that probability ≥ 0.95 (m = 9 gives the 2nd and 8th, probability 0.961). The
repeats' spread includes whatever else the machine was running.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import binom

from jaxkl.estimators.importance import importance_kl
from jaxkl.estimators.knn import knn_kl
from jaxkl.estimators.monte_carlo import mc_kl
from jaxkl.estimators.samplers import draw
from jaxkl.study.cases import Case

__all__ = [
    "MEDIAN_LEVEL",
    "compile_programs",
    "median_interval",
    "public_estimator",
    "time_estimator",
]

MEDIAN_LEVEL = 0.95


def median_interval(times, level: float = MEDIAN_LEVEL) -> tuple[float, float, float]:
    """(low, median, high): the sample median and a distribution-free interval for the
    population median from order statistics, coverage ≥ ``level`` (inf if impossible).

    Example:
      >>> median_interval([5, 1, 4, 2, 3, 9, 8, 7, 6])
      (2.0, 5.0, 8.0)
    """
    t = np.sort(np.asarray(times, np.float64))
    m = t.size
    med = float(np.median(t))
    best = _order_statistic(m, level)
    if best is None:
        return -math.inf, med, math.inf
    return float(t[best - 1]), med, float(t[m - best])


@functools.cache
def _order_statistic(m: int, level: float) -> int | None:
    """The largest j with P(X_(j) ≤ median ≤ X_(m+1−j)) ≥ level, or None (depends on m
    and the level only, so it is computed once per pair)."""
    best = None
    for j in range(1, m // 2 + 1):
        # P(X_(j) ≤ median ≤ X_(m+1−j)) = 1 − 2·P(Binomial(m, ½) ≤ j − 1)
        if 1.0 - 2.0 * binom.cdf(j - 1, m, 0.5) >= level:
            best = j
    return best


def public_estimator(name: str, n: int, k: int) -> Callable | None:
    """``(key, q, p, proposal) -> Estimate``: the public call behind study estimator ``name``
    at ``n`` samples; None for the density-weighted pitfall (not an estimator)."""
    if name in ("k1", "k2", "k3"):
        return lambda key, q, p, g: mc_kl(key, q, p, n, estimator=name)
    if name == "control_variate":
        return lambda key, q, p, g: mc_kl(key, q, p, n, control_variate=True)
    if name in ("importance", "importance_snis"):
        sn = name == "importance_snis"
        return lambda key, q, p, g: importance_kl(key, q, p, g, n, self_normalized=sn)
    if name == "knn":

        def knn(key, q, p, g):
            kx, ky = jax.random.split(key)
            x, y = draw(kx, q, n, where="timing"), draw(ky, p, n, where="timing")
            return knn_kl(x.reshape(n, -1), y.reshape(n, -1), k=k)

        return knn
    return None


_EXECUTABLES: dict = {}


def _program(name: str, n: int, k: int, case: Case, batch: int):
    """The compiled timing program of ``name`` for ``case``'s shapes (cached by shapes, so
    cases of one family and shape share it) and its arguments."""
    fn = jax.vmap(public_estimator(name, n, k), in_axes=(0, None, None, None))
    args = (jax.random.split(jax.random.key(0), batch), case.q, case.p, case.proposal)
    leaves, tree = jax.tree.flatten(args)
    avals = tuple((jnp.shape(a), str(jnp.result_type(a))) for a in leaves)
    key = (name, n, k, tree, avals)
    return key, fn, args


def compile_programs(jobs, workers: int | None = None) -> list[float]:
    """Compile the timing programs of ``jobs`` = [(case, name, n, k, batch)] concurrently.

    XLA compiles outside Python's GIL, so independent programs compile in parallel on a
    multi-core machine; the timed runs themselves stay sequential. Returns the seconds
    each job's compile took (0 where its program was compiled before, or by an earlier
    job of the same shapes).
    """
    pending: dict = {}  # program key -> (job index, fn, args)
    for i, (case, name, n, k, batch) in enumerate(jobs):
        if public_estimator(name, n, k) is None:
            continue
        key, fn, args = _program(name, n, k, case, batch)
        if key not in _EXECUTABLES and key not in pending:
            pending[key] = (i, fn, args)

    def build(key):
        i, fn, args = pending[key]
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        return key, i, compiled, time.perf_counter() - t0

    seconds = [0.0] * len(jobs)
    if pending:
        workers = workers or max(1, min(len(pending), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key, i, compiled, sec in pool.map(build, list(pending)):
                _EXECUTABLES[key] = compiled
                seconds[i] = sec
    return seconds


def time_estimator(
    case: Case,
    name: str,
    n: int,
    *,
    k: int,
    batch: int,
    repeats: int,
    compile_seconds: float | None = None,
) -> dict[str, Any] | None:
    """Seconds per estimate of ``name`` on ``case`` at ``n`` samples, timed alone.

    One compiled call estimates ``batch`` independent replicates; it is run once to warm
    up, then ``repeats`` times, each timed to completion (``block_until_ready``).

    Returns:
      ``{"n", "batch", "repeats", "seconds": [...], "median", "low", "high", "level",
      "compile_seconds", "load_average"}`` in seconds per estimate (low/high: the median's
      interval, see :func:`median_interval`); None for the pitfall.
    """
    if public_estimator(name, n, k) is None:
        return None
    key, _, args = _program(name, n, k, case, batch)
    if key not in _EXECUTABLES:
        compile_seconds = compile_programs([(case, name, n, k, batch)])[0]
    compiled = _EXECUTABLES[key]
    jax.block_until_ready(compiled(*args))  # warm-up
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        seconds.append((time.perf_counter() - t0) / batch)
    low, med, high = median_interval(seconds)
    return {
        "n": int(n),
        "batch": int(batch),
        "repeats": int(repeats),
        "seconds": seconds,
        "median": med,
        "low": low,
        "high": high,
        "level": MEDIAN_LEVEL,
        "compile_seconds": compile_seconds or 0.0,
        "load_average": _load_average(),
    }


def _load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None
