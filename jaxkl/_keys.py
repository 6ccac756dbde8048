"""PRNG keys at the public boundary.

Every function that takes a key accepts a typed key (``jax.random.key``), a legacy
``uint32[2]`` key (``jax.random.PRNGKey``) or a plain Python/NumPy integer seed, and works
with typed keys inside.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_key"]

# jax.random.key converts an int seed through a signed 64-bit integer.
_SEED_MIN, _SEED_END = -(2**63), 2**63


def as_key(key) -> jax.Array:
    """Return ``key`` as a typed PRNG key.

    Args:
      key: a typed key array, a legacy ``uint32[..., 2]`` key, or an integer seed.

    Returns:
      A typed key array (``jax.dtypes.prng_key``) with the same batch shape.

    Raises:
      TypeError: ``key`` is none of these (a float, a bool, a string, an int32[2] array).
      ValueError: an integer seed outside [−2⁶³, 2⁶³), which ``jax.random.key`` cannot
        represent. (Without x64, JAX keeps only a seed's low 32 bits: seeds that differ by
        a multiple of 2³² give the same key.)

    Example:
      >>> k = as_key(0)
      >>> k.dtype
      key<fry>
    """
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        seed = int(key)
        if not _SEED_MIN <= seed < _SEED_END:
            raise ValueError(
                f"key: an integer seed must lie in [-2**63, 2**63); got {seed} "
                f"(about 2**{math.log2(abs(seed)):.1f}); reduce it, e.g. seed % 2**63"
            )
        return jax.random.key(seed)
    if isinstance(key, np.ndarray | jax.Array) or hasattr(key, "dtype"):
        dtype = key.dtype
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            return key
        if jnp.issubdtype(dtype, jnp.integer):
            if key.ndim == 0:
                return jax.random.key(key)
            if key.shape[-1] == 2 and dtype == jnp.uint32:
                return jax.random.wrap_key_data(key)
    raise TypeError(
        "key must be a typed key (jax.random.key), a legacy uint32[2] key "
        f"(jax.random.PRNGKey) or an integer seed; got {type(key).__name__} "
        f"{getattr(key, 'dtype', '')}{getattr(key, 'shape', '')}"
    )
