"""Evaluate a function over a batch sharded across every device of every process.

The batched counterpart of :mod:`jaxkl.study.sweep`: ``sharded_map(fn, batch)`` equals
``jax.vmap(fn)(batch)`` but runs each device on its own rows. Under
``jax.distributed.initialize()`` the mesh spans all processes; every process passes the
same (global) batch, keeps only the rows of its own devices, and receives the full
result. JAX does all of it (``jax.make_array_from_callback``, ``jit`` with shardings,
``multihost_utils.process_allgather``): jaxkl adds only the padding that lets any batch
size split evenly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["sharded_map"]


def sharded_map(
    fn: Callable[..., Any], batch: Any, *, devices: Sequence[jax.Device] | None = None
) -> Any:
    """``jax.vmap(fn)(batch)``, with the rows of ``batch`` spread over ``devices``.

    Args:
      fn: one row's pytree → pytree of arrays; traceable.
      batch: a pytree whose leaves share a leading axis of B rows (numpy or jax arrays;
        a jaxkl distribution with batch shape ``[B]`` is such a pytree). In a multi-process
        run every process passes the same batch.
      devices: default ``jax.devices()``: every device of every process.

    Returns:
      The pytree of ``vmap(fn)(batch)`` as numpy arrays with leading axis B, on every
      process. Equal to ``vmap`` on one device up to float rounding, not bitwise: each
      device runs a program for its own row count, and XLA may round the vectorised
      transcendentals of a different number of lanes differently (1 ulp in
      tests/study/test_sharded.py). For bitwise-reproducible replicates use
      :func:`jaxkl.study.sweep.run_replicates`, which fixes the rows per program.

    Raises:
      ValueError: leaves disagree on the leading axis, or the batch is empty.

    Example:
      >>> import jax.numpy as jnp, jaxkl
      >>> q = jaxkl.Normal(jnp.zeros(6), jnp.linspace(0.5, 2.0, 6))
      >>> out = sharded_map(lambda d: jaxkl.kl(d, jaxkl.Normal(0.0, 1.0)), q)
      >>> bool(jnp.allclose(out, jaxkl.kl(q, jaxkl.Normal(0.0, 1.0))))
      True
    """
    leaves, treedef = jax.tree.flatten(batch)
    rows = {int(np.shape(leaf)[0]) if np.ndim(leaf) else None for leaf in leaves}
    if len(rows) != 1 or None in rows:
        raise ValueError(
            "sharded_map: every leaf of batch needs the same leading axis; got shapes "
            f"{[np.shape(leaf) for leaf in leaves]}"
        )
    (b,) = rows
    if b == 0:
        raise ValueError("sharded_map: the batch is empty")
    devices = tuple(devices) if devices is not None else tuple(jax.devices())
    n = len(devices)
    padded = -(-b // n) * n
    mesh = Mesh(np.array(devices), ("rows",))
    sharding = NamedSharding(mesh, P("rows"))

    # Typed PRNG keys travel as their key data and are rewrapped inside the program.
    impls = [
        jax.random.key_impl(leaf)
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        else None
        for leaf in leaves
    ]

    def global_array(leaf, impl):
        host = np.asarray(jax.random.key_data(leaf) if impl is not None else leaf)
        if padded > b:  # copies of row 0 make the rows split evenly; dropped below
            host = np.concatenate([host, np.repeat(host[:1], padded - b, axis=0)])
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def rows_fn(*flat):
        wrapped = [
            x if impl is None else jax.random.wrap_key_data(x, impl=impl)
            for x, impl in zip(flat, impls, strict=True)
        ]
        return jax.vmap(fn)(treedef.unflatten(wrapped))

    arrays = [global_array(leaf, impl) for leaf, impl in zip(leaves, impls, strict=True)]
    out = jax.jit(rows_fn, out_shardings=sharding)(*arrays)
    if jax.process_count() > 1:
        out = multihost_utils.process_allgather(out, tiled=True)
    return jax.tree.map(lambda a: np.asarray(a)[:b], out)
