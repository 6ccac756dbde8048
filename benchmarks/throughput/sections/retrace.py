"""Section ``retrace``: traces and compiles during the second of two eager calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl
from benchmarks.throughput.inputs import random_logits, random_normal_params, random_tril_params
from benchmarks.throughput.options import mc_kl_keywords, parse_option
from benchmarks.throughput.records import new_row


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


def retrace_cases(cfg: dict[str, Any]) -> list[tuple[str, Callable, Callable]]:
    """(name, fn, make_args(seed)) at small shapes; each call of make_args gives new values."""
    n = 64

    def gauss(seed):
        return random_normal_params(np.random.default_rng(seed), (32, 8))

    def mc(estimator, **kw):
        def f(key, lq, sq, lp, sp):
            q = jaxkl.MultivariateNormalDiag(lq, sq)
            p = jaxkl.MultivariateNormalDiag(lp, sp)
            return jaxkl.mc_kl(key, q, p, n, estimator=estimator, **kw)

        return f

    def mc_args(seed):
        return [jax.random.key(seed), *gauss(seed)]

    def tril(seed):
        return random_tril_params(np.random.default_rng(seed), 16, 4)

    def logits(seed):
        return random_logits(np.random.default_rng(seed), 16, 32)

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
    for name, fn, make_args in retrace_cases(cfg):
        if "all" not in eager and name not in eager:
            continue
        first, second = make_args(1), make_args(2)
        # The first call compiles whatever it needs; the second, with new values of the
        # same shapes, must reuse all of it.
        jax.block_until_ready(fn(*first))
        with _CompileCounter() as counter:
            jax.block_until_ready(fn(*second))
        rows.append(
            new_row(
                "retrace",
                name,
                "jaxkl eager",
                eager_second_call_traces=counter.traces,
                eager_second_call_compiles=counter.compiles,
            )
        )
    return {"rows": rows}
