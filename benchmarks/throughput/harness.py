"""The measuring harness: compile once, time calls interleaved with ceilings timed in the
same repeats, and read what XLA made of each kernel.

A ceiling is the fastest way found on this machine, in this run, to do the unavoidable part
of a kernel's work: read its input bytes (``read_ceiling``) or draw its random numbers
(``rng_ceiling``). Every figure of the benchmark is a ratio to one, taken repeat by repeat
(``time_interleaved``, ``fraction_of``), so a machine whose load drifts moves both alike.
"""

from __future__ import annotations

import math
import os
import platform
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# --------------------------------------------------------------------------- compiling


@dataclass(frozen=True)
class Timing:
    """How each call is timed: ``warmup`` untimed calls, then ``repeats`` timed repeats,
    each looping the call for at least ``min_time`` seconds."""

    repeats: int
    warmup: int
    min_time: float

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Timing:
        """The config's ``[timing]`` table."""
        t = cfg["timing"]
        return cls(repeats=t["repeats"], warmup=t["warmup"], min_time=t["min_time"])


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
        """How often the Python function has been traced so far."""
        return self.trace_counter[0]

    def retraces(self) -> int:
        """Call the ``jax.jit`` wrapper twice more with the same arguments; new traces."""
        before = self.traces
        for _ in range(2):
            jax.block_until_ready(self.jitted(*self.args))
        return self.traces - before


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


# --------------------------------------------------------------------------- timing


def time_calls(call: Callable[[], Any], n: int) -> float:
    """Seconds for n back-to-back calls, the last one waited for (dispatch is async)."""
    out = None
    t0 = time.perf_counter()
    for _ in range(n):
        out = call()
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def _calls_per_repeat(call: Callable[[], Any], min_time: float) -> int:
    """How many back-to-back calls last at least ``min_time`` (at most 2¹⁶)."""
    n = 1
    while True:
        elapsed = time_calls(call, n)
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
            time_calls(call, 1)
    counts = {name: _calls_per_repeat(call, timing.min_time) for name, call in calls.items()}
    out: dict[str, list] = {name: [] for name in calls}
    for _ in range(timing.repeats):
        for name, call in calls.items():
            out[name].append(time_calls(call, counts[name]) / counts[name])
    return out


def median(xs) -> float:
    """The median of ``xs`` as a Python float."""
    return float(np.median(np.asarray(xs, dtype=float)))


def fraction_of(kernel_s: list, ceiling_s: list) -> float:
    """The kernel's throughput over the ceiling's: median over repeats of their time ratio."""
    return median([c / k for k, c in zip(kernel_s, ceiling_s, strict=True)])


def best_of(*series: list) -> list:
    """Per repeat, the fastest of several ways of doing the same work."""
    return [min(ts) for ts in zip(*series, strict=True)]


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


# --------------------------------------------------------------------------- the machine


def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the platform has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def maxrss_bytes() -> int:
    """The process's resident-set high-water mark in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(rss) if platform.system() == "Darwin" else int(rss) * 1024
