"""Linear algebra that cannot deadlock XLA:CPU: triangular solves and batched LAPACK calls.

On CPU, ``jax.scipy.linalg.solve_triangular`` of a batch lowers to one LAPACK ``trsm``
call that splits the batch over XLA's intra-op thread pool and blocks until its parts
finish. When two such calls are independent in one program, XLA runs them at the same
time, each on a pool thread; on a 2-core machine the pool has two threads, both then wait
for parts that no free thread can run, and the program never returns. With jaxlib 0.10.2
on 2 cores and 1024 batch members, ``jax.grad`` of an MVNTriL KL (d = 8 and 32), ``mc_kl``
k1 and k3 between two MVNTriLs (d = 8) and two KLs in one ``jit`` (d = 32) hung in each
of 2–3 runs of up to 300 calls, every thread parked in ``jax::ParallelBatchMap``.

On CPU the solve below is forward substitution written in XLA operations, with no
library call to wait on; other platforms keep their native triangular solve. Its
derivative is the solve's own, L⁻¹(Ḃ − L̇X), so reverse mode transposes a linear loop and
keeps no per-step copies of X. Where a LAPACK routine has no such replacement here
(``inv``, ``eigh``, ``slogdet``), :func:`map_batch_on_cpu` calls it one batch member at a
time on CPU: an unbatched call has no parts to wait for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

__all__ = ["map_batch_on_cpu", "solve_lower"]


@jax.custom_jvp
def solve_lower(scale_tril, rhs):
    """X with L X = B: L ``[..., d, d]`` (only the lower triangle is read), B ``[..., d, k]``.

    Leading axes broadcast. The result has B's dtype (L must have the same float dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> solve_lower(jnp.array([[2.0, 0.0], [1.0, 4.0]]), jnp.array([[2.0], [9.0]]))
      Array([[1.],
             [2.]], dtype=float32)
    """
    return lax.platform_dependent(
        scale_tril, rhs, cpu=_forward_substitution, default=_library_solve
    )


@solve_lower.defjvp
def _solve_lower_jvp(primals, tangents):
    scale_tril, rhs = primals
    scale_tril_dot, rhs_dot = tangents
    x = solve_lower(scale_tril, rhs)
    # L X = B gives L Ẋ = Ḃ − L̇ X (the upper triangle of L̇ is not read, as in L).
    return x, solve_lower(scale_tril, rhs_dot - jnp.tril(scale_tril_dot) @ x)


def _library_solve(scale_tril, rhs):
    return solve_triangular(scale_tril, rhs, lower=True)


def _forward_substitution(scale_tril, rhs):
    lower = jnp.tril(scale_tril)
    batch = jnp.broadcast_shapes(lower.shape[:-2], rhs.shape[:-2])
    lower = jnp.broadcast_to(lower, (*batch, *lower.shape[-2:]))
    rhs = jnp.broadcast_to(rhs, (*batch, *rhs.shape[-2:]))

    def row(i, x):
        # Rows i, i+1, … of x are still zero, so the whole row of L can be contracted: only
        # the solved components j < i contribute (the upper triangle was zeroed above).
        l_i = lax.dynamic_index_in_dim(lower, i, axis=-2, keepdims=False)  # [..., d]
        b_i = lax.dynamic_index_in_dim(rhs, i, axis=-2, keepdims=False)  # [..., k]
        known = jnp.einsum("...j,...jk->...k", l_i, x)
        pivot = lax.dynamic_index_in_dim(l_i, i, axis=-1, keepdims=True)  # [..., 1]
        return lax.dynamic_update_index_in_dim(x, (b_i - known) / pivot, i, axis=-2)

    return lax.fori_loop(0, lower.shape[-1], row, jnp.zeros_like(rhs))


def map_batch_on_cpu(fn: Callable, arrays, event_ranks: tuple[int, ...]):
    """``fn(*arrays)``, batched over the leading axes; on CPU one batch member at a time.

    ``fn`` maps unbatched arrays (``arrays[i]`` with ``event_ranks[i]`` axes) to an array or
    a tuple of arrays; the batch axes of the arrays broadcast. On CPU the members go
    through ``lax.map`` (each LAPACK call inside ``fn`` then sees no batch, see above);
    elsewhere ``fn`` gets the whole batch. Differentiable; under a caller's ``vmap`` over
    the arrays the calls inside the loop are batched again.

    Example:
      >>> import jax.numpy as jnp
      >>> map_batch_on_cpu(jnp.linalg.det, (jnp.stack([2.0 * jnp.eye(2), jnp.eye(2)]),), (2,))
      Array([4., 1.], dtype=float32)
    """
    batch = jnp.broadcast_shapes(
        *(a.shape[: a.ndim - r] for a, r in zip(arrays, event_ranks, strict=True))
    )
    members = math.prod(batch)
    flat = tuple(
        jnp.broadcast_to(a, (*batch, *a.shape[a.ndim - r :])).reshape(
            members, *a.shape[a.ndim - r :]
        )
        for a, r in zip(arrays, event_ranks, strict=True)
    )

    def one_at_a_time(*flat):
        return lax.map(lambda member: fn(*member), flat)

    out = lax.platform_dependent(*flat, cpu=one_at_a_time, default=fn)
    return jax.tree.map(lambda o: o.reshape(*batch, *o.shape[1:]), out)
