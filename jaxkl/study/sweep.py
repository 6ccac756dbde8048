"""Replicates of a Monte Carlo experiment, sharded over every device.

Replicate i always uses the key ``fold_in(key, i)`` and always runs inside a chunk of the
same size, so its numbers do not depend on how many devices share the work: one CPU,
four forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), or a
GPU give the same replicates. Sharding is plain ``jax.shard_map`` over a one-axis mesh;
several hosts join the same mesh after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxkl._keys import as_key

__all__ = ["ReplicateRun", "map_rows", "run_replicates"]


class ReplicateRun(NamedTuple):
    """Outputs of :func:`run_replicates`.

    Attributes:
      outputs: the pytree returned by ``fn``, each leaf stacked to ``[replicates, ...]``
        as numpy arrays.
      compile_seconds: time to trace and compile the sharded computation.
      run_seconds: time to execute it (compile excluded), outputs on the host.
      num_devices: devices the replicates were spread over.
    """

    outputs: Any
    compile_seconds: float
    run_seconds: float
    num_devices: int


def run_replicates(
    fn: Callable[[jax.Array], Any],
    key,
    replicates: int,
    *,
    chunk: int = 50,
    devices: Sequence[jax.Device] | None = None,
) -> ReplicateRun:
    """Evaluate ``fn(fold_in(key, i))`` for i = 0 … replicates−1, sharded over devices.

    Work proceeds in rounds: in each, every device vmaps ``fn`` over ``chunk`` replicates,
    which bounds memory to one round's intermediates. The replicate count is padded to a
    multiple of ``chunk × devices`` and the padding dropped, so every device runs the same
    program on the same shapes whatever the device count.

    Args:
      fn: ``key -> pytree of arrays``, one replicate. Must be traceable.
      key: typed key, legacy key or int seed.
      replicates: R ≥ 1.
      chunk: replicates vmapped together per step.
      devices: defaults to ``jax.devices()``.

    Returns:
      :class:`ReplicateRun` with outputs stacked to ``[R, ...]``.

    Example:
      >>> run = run_replicates(lambda k: jax.random.normal(k), 0, 8, chunk=4)
      >>> run.outputs.shape
      (8,)
    """
    if replicates < 1 or chunk < 1:
        raise ValueError(f"replicates and chunk must be >= 1; got {replicates}, {chunk}")
    key = as_key(key)
    devices = tuple(devices) if devices is not None else tuple(jax.devices())
    chunk = min(chunk, replicates)
    indices = jnp.arange(_padded(replicates, chunk, len(devices)), dtype=jnp.uint32)

    def one_chunk(key, indices):  # [chunk] replicate indices on one device
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
        return jax.vmap(fn)(keys)

    return _run_rounds(one_chunk, (key,), (indices,), devices, chunk, replicates)


def map_rows(
    fn: Callable[..., Any],
    arrays: Sequence[Any],
    *,
    chunk: int = 50,
    devices: Sequence[jax.Device] | None = None,
) -> ReplicateRun:
    """Apply ``fn`` to each row of ``arrays`` (their leading axes), sharded over devices.

    The second stage of a study: ``fn`` turns one replicate's draws into its estimates.
    Compiled executables are cached by (fn, chunk, devices, shapes), so cases that share
    shapes and an estimator function compile it once; ``compile_seconds`` is 0 on a hit.

    Args:
      fn: ``(*rows) -> pytree``; pass the same function object to reuse its compile.
      arrays: arrays with a common leading axis of R rows (numpy or jax).
      chunk: rows vmapped together per step.
      devices: defaults to ``jax.devices()``.

    Returns:
      :class:`ReplicateRun` with outputs stacked to ``[R, ...]``.
    """
    devices = tuple(devices) if devices is not None else tuple(jax.devices())
    rows = int(np.shape(arrays[0])[0])
    chunk = min(chunk, rows)
    padded = _padded(rows, chunk, len(devices))

    def pad(a):
        a = np.asarray(a)
        extra = np.repeat(a[:1], padded - rows, axis=0)  # copies of row 0, dropped later
        return np.concatenate([a, extra]) if padded > rows else a

    def one_chunk(*rows_):
        return jax.vmap(fn)(*rows_)

    return _run_rounds(
        one_chunk,
        (),
        tuple(pad(a) for a in arrays),
        devices,
        chunk,
        rows,
        cache_key=(fn, chunk, devices),
    )


def _padded(rows: int, chunk: int, n_dev: int) -> int:
    return math.ceil(rows / (chunk * n_dev)) * chunk * n_dev


_COMPILED: dict = {}


def _run_rounds(one_chunk, shared, split, devices, chunk, rows, cache_key=None):
    """Run ``one_chunk`` over ``split`` in rounds of ``chunk`` rows per device.

    Every round is the same compiled program: each device vmaps ``one_chunk`` over exactly
    ``chunk`` rows, whatever the device count, so a replicate's arithmetic (and its
    floating-point rounding) cannot depend on how many devices share the work. Rounds are
    dispatched asynchronously; memory stays bounded by one round.
    """
    mesh = Mesh(np.array(devices), ("replicate",))
    per_round = chunk * len(devices)
    specs = (P(),) * len(shared) + (P("replicate"),) * len(split)
    # check_vma=False: each device works on its own rows with no collectives, so the
    # varying-across-devices type check has nothing to protect, and it would reject
    # ordinary library code whose scan carries start as constants (e.g. knn_kl's running
    # top-k) and become per-device values.
    sharded = jax.jit(
        jax.shard_map(
            one_chunk, mesh=mesh, in_specs=specs, out_specs=P("replicate"), check_vma=False
        )
    )
    sharding = NamedSharding(mesh, P("replicate"))
    n = int(np.shape(split[0])[0])
    first = tuple(jax.device_put(a[:per_round], sharding) for a in split)
    avals = tuple((np.shape(a), str(a.dtype)) for a in (*shared, *first))
    key = None if cache_key is None else (*cache_key, avals)
    t0 = time.perf_counter()
    compiled = _COMPILED.get(key) if key is not None else None
    if compiled is None:
        compiled = sharded.lower(*shared, *first).compile()
        if key is not None:
            _COMPILED[key] = compiled
    t1 = time.perf_counter()
    outs = []
    for start in range(0, n, per_round):
        part = tuple(jax.device_put(a[start : start + per_round], sharding) for a in split)
        outs.append(compiled(*shared, *part))
    out = jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:rows], *outs)
    t2 = time.perf_counter()
    return ReplicateRun(out, t1 - t0, t2 - t1, len(devices))
