"""Shape and dtype helpers shared by distributions and kernels.

Broadcasting here is always explicit, so every kernel works under
``jax_numpy_rank_promotion="raise"`` (the test configuration) and a mismatch raises an
error that names the arguments involved rather than an anonymous broadcasting failure.

Parameters enter jaxkl through :func:`as_float`, which refuses what would otherwise be
silently misread (complex values lose their imaginary part in a float cast; strings and
objects fail deep inside JAX without naming the parameter). Kernels follow one precision
policy for half-precision input: :func:`widen_half` (or the decorator
:func:`half_precision_in_float32` built on it) evaluates them in float32.
"""

from __future__ import annotations

import functools
import inspect
import operator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "HALF_PRECISION",
    "as_float",
    "broadcast_named",
    "common_float_dtype",
    "half_precision_in_float32",
    "shape_tuple",
    "widen_half",
    "working_dtype",
]

HALF_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def _as_real_array(x, where: str, name: str) -> jax.Array:
    """``jnp.asarray(x)``, refusing complex, string and object input with a named error."""
    prefix = f"{where}: " if where else ""
    if isinstance(x, str | bytes) or (isinstance(x, np.ndarray) and x.dtype.kind in "USOV"):
        shown = repr(x) if isinstance(x, str | bytes) else f"array of dtype {x.dtype}"
        raise TypeError(
            f"{prefix}{name} must be a real number or an array of real numbers; got "
            f"{type(x).__name__} {shown}"
        )
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{prefix}{name} must be a real number or an array of real numbers; got "
            f"{type(x).__name__} ({err})"
        ) from None
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(
            f"{prefix}{name} must be real; got dtype {arr.dtype} (jaxkl refuses complex "
            "values rather than silently dropping their imaginary part)"
        )
    if not (
        jnp.issubdtype(arr.dtype, jnp.floating)
        or jnp.issubdtype(arr.dtype, jnp.integer)
        or arr.dtype == jnp.bool_
    ):
        raise TypeError(f"{prefix}{name} must be real-valued; got dtype {arr.dtype}")
    return arr


def as_float(*xs, names=None, where: str = ""):
    """Convert ``xs`` to arrays of one common floating dtype (float32 unless x64 is on).

    Integers and booleans become the default float; float16/bfloat16 stay as they are
    (see :func:`half_precision_in_float32` for how kernels compute with them).

    Args:
      *xs: numbers, arrays or tracers.
      names: optional parameter names, one per x, used in error messages (default
        "argument 1", "argument 2", …).
      where: the caller's name, prefixed to error messages.

    Raises:
      TypeError: an x is complex, a string, or otherwise not a real number or array.
    """
    if names is None:
        names = [f"argument {i}" for i in range(1, len(xs) + 1)]
    arrays = [_as_real_array(x, where, n) for x, n in zip(xs, names, strict=True)]
    dtype = common_float_dtype(*arrays)
    out = tuple(a.astype(dtype) if a.dtype != dtype else a for a in arrays)
    return out[0] if len(out) == 1 else out


def common_float_dtype(*arrays_or_dtypes):
    """The float dtype that mixed inputs are cast to: JAX's standard promotion of them,
    or the default float where that is not a float (ints, bools).

    This is the package's own rule for mixed inputs (float32 with bfloat16 gives float32,
    an int with a float16 array gives float16), so it is taken under the standard rules
    whatever the caller configures: under ``jax_numpy_dtype_promotion="strict"`` the
    lattice has no common type for float32 and float64. The inputs are then cast to it
    explicitly; no arithmetic mixes dtypes.
    """
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(*arrays_or_dtypes)
        return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def half_precision_in_float32(fn):
    """Decorator for a kernel on arrays: the float16/bfloat16 precision policy.

    The wrapped kernel's positional arguments are converted by :func:`as_float` (named
    after ``fn``'s parameters in errors). When their common dtype is float16 or bfloat16,
    ``fn`` runs on float32 copies and every floating output is rounded back to that
    dtype: the result is the float32 value correctly rounded, within half a unit in the
    last place of the half-precision result (2⁻⁸ relative for bfloat16, 2⁻¹¹ for float16
    inside its normal range) plus the float32 kernel's own error, and +inf where it
    exceeds the half-precision range (65504 for float16). Half-precision arithmetic
    inside the special functions would instead lose tens of units (bfloat16 Gamma KL was
    17–25 bfloat16 eps off). Gradients flow through the casts unchanged. Other dtypes
    pass through untouched. Kernels that convert their arguments themselves apply the
    same policy with :func:`widen_half`.
    """
    signature = inspect.signature(fn)
    where = f"jaxkl.analytic.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs).arguments
        arrays = as_float(*bound.values(), names=list(bound), where=where)
        arrays = arrays if isinstance(arrays, tuple) else (arrays,)
        if arrays[0].dtype not in HALF_PRECISION:
            return fn(*arrays)
        work, dtype = widen_half(*arrays)
        return jax.tree_util.tree_map(
            lambda o: o.astype(dtype) if jnp.issubdtype(o.dtype, jnp.floating) else o, fn(*work)
        )

    return wrapper


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


def shape_tuple(shape, name: str = "sample_shape") -> tuple[int, ...]:
    """Normalise an int or a sequence of ints into a shape tuple of non-negative ints.

    Raises:
      TypeError: ``shape`` is not an int or a sequence of ints (a float, a traced value).
      ValueError: an entry is negative.
    """
    entries = (shape,) if not isinstance(shape, tuple | list | np.ndarray | jax.Array) else shape
    if isinstance(shape, np.ndarray | jax.Array) and shape.ndim == 0:
        entries = (shape,)
    try:
        if any(isinstance(s, bool | np.bool_) for s in entries):
            raise TypeError
        out = tuple(operator.index(s) for s in entries)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of ints (known at trace time); got "
            f"{type(shape).__name__} {shape!r}"
        ) from None
    if any(s < 0 for s in out):
        raise ValueError(f"{name} must contain only non-negative ints; got {shape!r}")
    return out


def widen_half(*xs):
    """``(xs in at least float32, dtype of xs)``: the half-precision policy of the kernels.

    float16 and bfloat16 inputs are evaluated in float32 and the caller casts the result
    back to ``dtype``: the careful forms' intermediates (a blend weight (s/c)⁸, an exp of a
    logit gap) leave float16's range (max 65504) long before the KL does. The result is
    then the float32 value rounded once to the input dtype.
    """
    dtype = xs[0].dtype
    work = working_dtype(dtype)
    return tuple(x.astype(work) for x in xs), dtype


def working_dtype(dtype):
    """The dtype a kernel computes in for inputs of float ``dtype``: float32 for float16 and
    bfloat16 (see :func:`widen_half`), ``dtype`` itself otherwise.

    Spelled out rather than promoted with float32: under strict dtype promotion, float64
    and float32 have no common type.
    """
    return jnp.dtype(jnp.float32) if dtype in HALF_PRECISION else jnp.dtype(dtype)
