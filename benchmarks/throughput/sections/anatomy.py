"""Section ``anatomy``: probes on one [B, D] array that show what bounds the analytic
kernels — a row sum with 0, 1 and 11 ops fused in, with a select, and an elementwise map."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from benchmarks.throughput.harness import Timing, compile_bound, read_ceiling
from benchmarks.throughput.sections.analytic import analytic_row


def _horner(x):
    """A degree-11 polynomial in ``x``: eleven multiply-adds."""
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
    a, timing = cfg["analytic"], Timing.from_config(cfg)
    b, d = max(a["batch_sizes"]), max(a["event_sizes"])
    rng = np.random.default_rng(cfg["seed"] + 5)
    x = jnp.asarray(np.exp(np.float32(0.3) * rng.standard_normal((b, d), dtype=np.float32)))
    ceiling = read_ceiling([x])
    rows = []
    for name, fn in PROBES.items():
        row = analytic_row("probe", name, compile_bound(fn, x), timing, ceiling, batch=b, event=d)
        row["ns_per_element"] = row["seconds"] / (b * d) * 1e9
        row["section"] = "anatomy"
        rows.append(row)
    return {"rows": rows}
