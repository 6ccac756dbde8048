"""PRNG keys at the public boundary.

Every function that takes a key accepts a typed key (``jax.random.key``), a legacy
``uint32[2]`` key (``jax.random.PRNGKey``) or a plain Python/NumPy integer seed, and works
with typed keys inside.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_key"]


def as_key(key) -> jax.Array:
    """Return ``key`` as a typed PRNG key.

    Args:
      key: a typed key array, a legacy ``uint32[..., 2]`` key, or an integer seed.

    Returns:
      A typed key array (``jax.dtypes.prng_key``) with the same batch shape.

    Example:
      >>> k = as_key(0)
      >>> k.dtype
      key<fry>
    """
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
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
