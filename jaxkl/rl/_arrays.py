"""Checks shared by every ``jaxkl.rl`` function: ``[B, T]`` shapes, masks, safe masking.

Everything is checked at trace time (shapes, dtypes, choices) so that a mistake raises a
``ValueError`` naming the argument, the expected and the actual shape, under ``jit`` too.
Values (NaN at a position that counts, a mask that is not 0/1) can only be checked on
concrete arrays; inside ``jit`` they are not checked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import is_concrete
from jaxkl._shapes import as_float

__all__ = ["as_mask", "check_choice", "check_no_nan", "float_inputs", "masked"]


def check_choice(where: str, name: str, value, allowed: tuple) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"{where}: {name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )


def float_inputs(where: str, **arrays) -> tuple[jax.Array, ...]:
    """The named arrays as one floating dtype, each checked to be ``[B, T]`` like the first.

    ``None`` entries are passed through. Raises ``ValueError`` naming the argument and the
    expected and actual shapes.
    """
    given = {k: v for k, v in arrays.items() if v is not None}
    converted = as_float(*given.values())
    converted = converted if isinstance(converted, tuple) else (converted,)
    named = dict(zip(given, converted, strict=True))
    first, ref = next(iter(named.items()))
    if ref.ndim != 2:
        raise ValueError(f"{where}: {first} must have shape [B, T]; got shape {ref.shape}")
    for name, arr in named.items():
        if arr.shape != ref.shape:
            raise ValueError(
                f"{where}: {name} must have the shape of {first}, [B, T] = {ref.shape}; "
                f"got shape {arr.shape}"
            )
    return tuple(named.get(k) for k in arrays)


def as_mask(where: str, mask, shape: tuple[int, ...]) -> jax.Array:
    """``mask`` as a bool array of ``shape`` (``[B, T]``): bool, or 0/1 of any number type.

    Concrete masks with a value other than 0 or 1 are refused; inside ``jit`` any non-zero
    entry counts as 1.
    """
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(
            f"{where}: mask must have the shape of logp, [B, T] = {tuple(shape)}; "
            f"got shape {mask.shape}"
        )
    if mask.dtype == jnp.bool_:
        return mask
    if not (jnp.issubdtype(mask.dtype, jnp.integer) or jnp.issubdtype(mask.dtype, jnp.floating)):
        raise ValueError(f"{where}: mask must be bool or 0/1 numbers; got dtype {mask.dtype}")
    # numpy, not jnp: inside a jit trace even a concrete array's jnp results are traced.
    if is_concrete(mask) and not np.all(np.isin(np.asarray(mask), (0, 1))):
        raise ValueError(f"{where}: mask must hold only 0 and 1 (or be bool)")
    return mask != 0


def check_no_nan(where: str, mask: jax.Array, **arrays) -> None:
    """For concrete inputs: ``ValueError`` if a named array is NaN where ``mask`` is True."""
    for name, arr in arrays.items():
        if arr is None or not is_concrete(arr, mask):
            continue
        if np.any(np.isnan(np.asarray(arr)) & np.asarray(mask)):
            raise ValueError(f"{where}: {name} is NaN at a position the mask counts")


def masked(x: jax.Array, mask: jax.Array) -> jax.Array:
    """``x`` where ``mask``, else 0 — the *first* ``where`` of the double-``where`` pattern.

    Replacing masked inputs by 0 *before* any arithmetic keeps ±inf and NaN there out of
    every later value and gradient: ``jnp.where``'s gradient to an unselected entry is an
    exact 0, while ``where(mask, f(x), 0)`` alone would still evaluate f′(x) there and
    multiply it by that 0 (inf·0 = NaN). The output is masked again by the caller.
    """
    return jnp.where(mask, x, jnp.zeros((), x.dtype))
