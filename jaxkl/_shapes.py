"""Shape and dtype helpers shared by distributions and kernels.

Broadcasting here is always explicit, so every kernel works under
``jax_numpy_rank_promotion="raise"`` (the test configuration) and a mismatch raises an
error that names the arguments involved rather than an anonymous broadcasting failure.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["as_float", "broadcast_named", "shape_tuple", "widen_half"]


def as_float(*xs):
    """Convert ``xs`` to arrays of one common floating dtype (float32 unless x64 is on)."""
    arrays = [jnp.asarray(x) for x in xs]
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    out = tuple(a.astype(dtype) if a.dtype != dtype else a for a in arrays)
    return out[0] if len(out) == 1 else out


def broadcast_named(where: str, **arrays):
    """Explicitly broadcast named arrays to one shape; raise ``ValueError`` naming them.

    Args:
      where: the calling function's name, used in the error message.
      **arrays: name -> array.

    Returns:
      A tuple of the arrays broadcast to their common shape, in argument order.
    """
    shapes = {name: tuple(np.shape(a)) for name, a in arrays.items()}
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise ValueError(f"{where}: shapes do not broadcast: {listed}") from None
    return tuple(jnp.broadcast_to(a, shape) for a in arrays.values())


def shape_tuple(shape) -> tuple[int, ...]:
    """Normalise an int or a sequence of ints into a shape tuple."""
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def widen_half(*xs):
    """``(xs in at least float32, dtype of xs)``: the half-precision policy of the kernels.

    float16 and bfloat16 inputs are evaluated in float32 and the caller casts the result
    back to ``dtype``: the careful forms' intermediates (a blend weight (s/c)⁸, an exp of a
    logit gap) leave float16's range (max 65504) long before the KL does. The result is
    then the float32 value rounded once to the input dtype.
    """
    dtype = xs[0].dtype
    work = jnp.promote_types(dtype, jnp.float32)
    return tuple(x.astype(work) for x in xs), dtype
