"""The preamble every KL kernel on raw arrays shares, as one decorator."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._shapes import as_float, broadcast_named, half_precision_in_float32, widen_half

__all__ = ["broadcast_batch", "event_size", "kernel"]


def kernel(fn=None, *, event_ranks: tuple[int, ...] | None = None, where: str | None = None):
    """Decorator for a KL kernel on raw parameter arrays: ``fn`` holds only the maths.

    Before ``fn`` runs, its arguments are converted to one float dtype (complex, strings
    and objects refused, each named after ``fn``'s parameter), float16/bfloat16 are
    evaluated in float32 with the result rounded back (the policy of
    :func:`jaxkl._shapes.half_precision_in_float32`), and the arguments are broadcast:

    * elementwise kernels (no ``event_ranks``): all to one shape ``[...]``;
    * ``event_ranks``, one per argument (1: a vector ``[..., d]``, 2: a square matrix
      ``[..., d, d]``): one event size d is required of all, and only the batch axes
      broadcast.

    Errors name the caller: ``where``, by default ``jaxkl.analytic.<fn's name>``.
    Kernels with alternative forms of a parameter (the Gaussian kernels' ``log_scale``)
    or checks of their own before broadcasting (``dirichlet``, ``categorical``) prepare
    their arguments themselves.
    """
    if fn is None:
        return functools.partial(kernel, event_ranks=event_ranks, where=where)
    where = where or f"jaxkl.analytic.{fn.__name__}"
    signature = inspect.signature(fn)
    names = list(signature.parameters)

    if event_ranks is None:

        @functools.wraps(fn)
        def broadcast_then_call(*arrays):
            return fn(*broadcast_named(where, **dict(zip(names, arrays, strict=True))))

        return half_precision_in_float32(broadcast_then_call)

    ranks = dict(zip(names, event_ranks, strict=True))

    @functools.wraps(fn)
    def with_event_axes(*args, **kwargs):
        bound = signature.bind(*args, **kwargs).arguments
        arrays = as_float(*bound.values(), names=list(bound), where=where)
        spec = {name: (x, ranks[name]) for name, x in zip(bound, arrays, strict=True)}
        event_size(where, **spec)
        arrays, dtype = widen_half(*broadcast_batch(where, **spec))
        return fn(*arrays).astype(dtype)

    return with_event_axes


def event_size(where: str, **arrays) -> int:
    """The common event size d of ``name=(array, k)``: vectors (k=1) ``[..., d]`` or
    square matrices (k=2) ``[..., d, d]``; a ``ValueError`` naming every d otherwise."""
    sizes = {}
    for name, (x, k) in arrays.items():
        if x.ndim < k or (k == 2 and x.shape[-1] != x.shape[-2]):
            want = "[..., d, d]" if k == 2 else "[..., d]"
            raise ValueError(f"{where}: {name} must have shape {want}; got {x.shape}")
        sizes[name] = x.shape[-1]
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} has d={d}" for name, d in sizes.items())
        raise ValueError(f"{where}: event sizes differ: {listed}")
    return next(iter(sizes.values()))


def broadcast_batch(where: str, **arrays) -> tuple[jax.Array, ...]:
    """Broadcast the batch axes of ``name=(array, k)`` (all but the last k) explicitly."""
    batch = {name: x.shape[: x.ndim - k] for name, (x, k) in arrays.items()}
    try:
        shape = np.broadcast_shapes(*batch.values())
    except ValueError:
        listed = ", ".join(f"{name} {s}" for name, s in batch.items())
        raise ValueError(f"{where}: batch shapes do not broadcast: {listed}") from None
    return tuple(
        jnp.broadcast_to(x, tuple(shape) + x.shape[x.ndim - k :]) for x, k in arrays.values()
    )
