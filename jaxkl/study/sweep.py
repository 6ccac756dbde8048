"""Replicates of a Monte Carlo experiment, sharded over every device of every process.

Replicate i always uses the key ``fold_in(key, i)`` and always runs inside a chunk of the
same size, so its numbers do not depend on how many devices share the work: one CPU,
four forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), a
GPU, or several processes joined by ``jax.distributed.initialize()`` give the same
replicates. Sharding is plain ``jax.shard_map`` over a one-axis mesh of ``jax.devices()``;
each round's inputs are built by every process for its own devices only
(``jax.make_array_from_callback``) and outputs are gathered to every process with
``multihost_utils.process_allgather``, or kept where they were computed
(``gather=False``, :class:`jaxkl.study.local_rows.LocalRows`) for a second stage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxkl._keys import as_key
from jaxkl.study.local_rows import LocalRows

__all__ = ["ReplicateRun", "map_rows", "run_replicates"]


class ReplicateRun(NamedTuple):
    """Outputs of :func:`run_replicates`.

    Attributes:
      outputs: the pytree returned by ``fn``, each leaf stacked to ``[replicates, ...]``
        as numpy arrays, the same on every process; with ``gather=False`` each leaf is a
        :class:`~jaxkl.study.local_rows.LocalRows` of this process's rows instead.
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
    gather: bool = True,
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
      devices: defaults to ``jax.devices()``: every device of every process.
      gather: False keeps each process's rows where they were computed (for
        :func:`map_rows` with the same ``chunk`` and ``devices``), with no exchange.

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
    indices = np.arange(_padded(replicates, chunk, len(devices)), dtype=np.uint32)
    # The key enters as its raw data (replicated on every device of every process) and
    # is rewrapped inside the program: the same bits, whatever the process count.
    impl = jax.random.key_impl(key)

    def one_chunk(key_data, indices):  # [chunk] replicate indices on one device
        key = jax.random.wrap_key_data(key_data, impl=impl)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
        return jax.vmap(fn)(keys)

    key_data = np.asarray(jax.random.key_data(key))
    return _run_rounds(
        one_chunk, (key_data,), (indices,), devices, chunk, replicates, gather=gather
    )


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
      arrays: arrays with a common leading axis of R rows: numpy or jax (the same on
        every process), or the :class:`~jaxkl.study.local_rows.LocalRows` of a
        ``run_replicates(..., gather=False)`` with the same ``chunk`` and ``devices``.
      chunk: rows vmapped together per step.
      devices: defaults to ``jax.devices()``: every device of every process.

    Returns:
      :class:`ReplicateRun` with outputs stacked to ``[R, ...]``, on every process.

    Example:
      >>> run = map_rows(lambda a, b: a * b, [np.arange(6.0), np.full(6, 2.0)], chunk=2)
      >>> run.outputs.tolist()
      [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    devices = tuple(devices) if devices is not None else tuple(jax.devices())
    counts = {a.rows if isinstance(a, LocalRows) else int(np.shape(a)[0]) for a in arrays}
    if len(counts) != 1:
        raise ValueError(f"map_rows: arrays disagree on the row count: {sorted(counts)}")
    (rows,) = counts
    chunk = min(chunk, rows)
    padded = _padded(rows, chunk, len(devices))

    def pad(a):
        if isinstance(a, LocalRows):  # already padded by the run that made it
            return a
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


def _run_rounds(one_chunk, shared, split, devices, chunk, rows, cache_key=None, gather=True):
    """Run ``one_chunk`` over ``split`` in rounds of ``chunk`` rows per device.

    Every round is the same compiled program: each device vmaps ``one_chunk`` over exactly
    ``chunk`` rows, whatever the device count, so a replicate's arithmetic (and its
    floating-point rounding) cannot depend on how many devices share the work. Rounds are
    dispatched asynchronously; memory stays bounded by one round.

    ``shared`` (numpy, replicated) and ``split`` (numpy with the padded row count, or
    ``LocalRows``) enter every round as global arrays that each process builds for its
    own devices only; with several processes, nothing here is process-specific but the
    rows each one touches.
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
    replicated = NamedSharding(mesh, P())
    shared = tuple(
        jax.make_array_from_callback(np.shape(a), replicated, lambda index, a=a: a[index])
        for a in shared
    )
    n = _padded(rows, chunk, len(devices))

    def round_inputs(start):
        return tuple(_round_rows(a, start, per_round, sharding) for a in split)

    first = round_inputs(0)
    avals = tuple((np.shape(a), str(a.dtype)) for a in (*shared, *first))
    key = None if cache_key is None else (*cache_key, avals)
    t0 = time.perf_counter()
    compiled = _COMPILED.get(key) if key is not None else None
    if compiled is None:
        compiled = sharded.lower(*shared, *first).compile()
        if key is not None:
            _COMPILED[key] = compiled
    t1 = time.perf_counter()
    outs = [
        compiled(*shared, *(round_inputs(start) if start else first))
        for start in range(0, n, per_round)
    ]
    if gather:
        out = jax.tree.map(lambda *parts: np.concatenate(_gathered(parts))[:rows], *outs)
    else:
        out = jax.tree.map(lambda *parts: _held(parts, per_round, rows), *outs)
    t2 = time.perf_counter()
    return ReplicateRun(out, t1 - t0, t2 - t1, len(devices))


def _round_rows(a, start: int, per_round: int, sharding) -> jax.Array:
    """Rows ``start … start + per_round − 1`` of ``a`` as a global array split by rows.

    Each process builds only the blocks of its own devices (JAX calls the callback for
    addressable devices only), from the whole array or from its ``LocalRows``.
    """
    local = isinstance(a, LocalRows)
    if local and not a.blocks:
        raise ValueError("map_rows: this process holds none of the rows (no device in the mesh)")
    row_shape = next(iter(a.blocks.values())).shape[1:] if local else np.shape(a)[1:]

    def block(index):
        lo, hi, _ = index[0].indices(per_round)
        part = a.take(start + lo, start + hi) if local else a[start + lo : start + hi]
        return part[(slice(None), *index[1:])]

    return jax.make_array_from_callback((per_round, *row_shape), sharding, block)


def _gathered(parts) -> list[np.ndarray]:
    """Each round's output on the host, whole, on every process."""
    if jax.process_count() == 1:
        return [np.asarray(p) for p in parts]
    return [np.asarray(multihost_utils.process_allgather(p, tiled=True)) for p in parts]


def _held(parts, per_round: int, rows: int) -> LocalRows:
    """This process's blocks of each round's output, keyed by their first row."""
    blocks = {}
    for r, part in enumerate(parts):
        for shard in part.addressable_shards:
            lo, _, _ = shard.index[0].indices(per_round)
            blocks[r * per_round + lo] = np.asarray(shard.data)
    return LocalRows(rows, blocks)
