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

__all__ = ["ReplicateRun", "run_replicates"]


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

    Each device maps over its share of replicate indices in vmapped chunks of ``chunk``
    (``jax.lax.map(..., batch_size=chunk)``), which bounds memory to one chunk's
    intermediates. The replicate count is padded to a multiple of ``chunk × devices`` and
    the padding dropped, so every chunk has the same shape whatever the device count.

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
    devices = list(devices) if devices is not None else jax.devices()
    n_dev = len(devices)
    chunk = min(chunk, replicates)
    per_round = chunk * n_dev
    padded = math.ceil(replicates / per_round) * per_round
    mesh = Mesh(np.array(devices), ("replicate",))

    def local(key, indices):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
        return jax.lax.map(fn, keys, batch_size=chunk)

    # check_vma=False: each device runs fn on its own replicates with no collectives, so
    # the varying-across-devices type check has nothing to protect, and it would reject
    # ordinary library code whose scan carries start as constants (e.g. knn_kl's running
    # top-k) and become per-device values.
    sharded = jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(), P("replicate")),
            out_specs=P("replicate"),
            check_vma=False,
        )
    )
    indices = jax.device_put(
        jnp.arange(padded, dtype=jnp.uint32), NamedSharding(mesh, P("replicate"))
    )
    t0 = time.perf_counter()
    compiled = sharded.lower(key, indices).compile()
    t1 = time.perf_counter()
    out = compiled(key, indices)
    out = jax.tree.map(lambda a: np.asarray(a)[:replicates], out)
    t2 = time.perf_counter()
    return ReplicateRun(out, t1 - t0, t2 - t1, n_dev)
