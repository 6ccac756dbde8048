"""Random float32 inputs of the benchmark's kernels, drawn on the host and moved to JAX."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def random_normal_params(rng: np.random.Generator, shape: tuple[int, ...]) -> list[jax.Array]:
    """loc_a, scale_a, loc_b, scale_b: locations N(0, 1), log-scales N(0, 0.3²)."""
    out = []
    for i in range(4):
        x = rng.standard_normal(shape, dtype=np.float32)
        out.append(jnp.asarray(x if i % 2 == 0 else np.exp(np.float32(0.3) * x)))
    return out


def random_tril_params(rng: np.random.Generator, batch: int, d: int) -> list[jax.Array]:
    """loc [B, d] and well-conditioned lower factors [B, d, d] for a and b."""
    out = []
    for _ in range(2):
        loc = rng.standard_normal((batch, d), dtype=np.float32)
        off = np.tril(rng.standard_normal((batch, d, d), dtype=np.float32), -1)
        diag = np.exp(np.float32(0.2) * rng.standard_normal((batch, d), dtype=np.float32))
        tril = off * np.float32(0.3 / math.sqrt(d)) + diag[..., None] * np.eye(d, dtype=np.float32)
        out += [jnp.asarray(loc), jnp.asarray(tril)]
    return out


def random_logits(rng: np.random.Generator, batch: int, k: int) -> list[jax.Array]:
    """Two [B, K] arrays of standard normal logits."""
    return [jnp.asarray(rng.standard_normal((batch, k), dtype=np.float32)) for _ in range(2)]
