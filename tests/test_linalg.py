"""jaxkl.special.linalg: forward substitution against scipy, its derivatives against JAX's
own triangular solve, and no batched LAPACK call left in the programs that hung.

A batched LAPACK call on CPU splits its batch over XLA's thread pool and waits for the
parts; two independent ones in a program deadlocked a 2-core machine (jaxlib 0.10.2). A
test that reproduced the hang would hang CI, so the last test checks its precondition
instead: every LAPACK call in the compiled CPU programs works on one matrix.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import jaxkl
from jaxkl.special import map_batch_on_cpu, solve_lower


def _lower(rng, batch, d, dtype):
    a = 0.3 * rng.standard_normal((*batch, d, d))
    lower = np.tril(a)
    i = np.arange(d)
    lower[..., i, i] = np.abs(lower[..., i, i]) + 1.0
    return lower.astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_solve_lower_matches_scipy(dtype, rtol):
    rng = np.random.default_rng(0)
    lower = _lower(rng, (3,), 20, dtype)
    rhs = rng.standard_normal((4, 3, 20, 5)).astype(dtype)  # L broadcasts over a leading axis
    with jax.enable_x64(dtype == np.float64):
        upper_nan = lower.copy()
        upper_nan[:, 0, 7] = np.nan  # the upper triangle is never read
        x = np.asarray(solve_lower(jnp.asarray(upper_nan), jnp.asarray(rhs)))
    assert x.dtype == dtype and x.shape == (4, 3, 20, 5)
    ref = np.stack(
        [
            [
                scipy.linalg.solve_triangular(lower[b].astype(np.float64), r[b], lower=True)
                for b in range(3)
            ]
            for r in rhs.astype(np.float64)
        ]
    )
    np.testing.assert_allclose(x, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_solve_lower_derivatives_are_the_solves():
    rng = np.random.default_rng(1)
    with jax.enable_x64():
        lower = jnp.asarray(_lower(rng, (2,), 6, np.float64))
        rhs = jnp.asarray(rng.standard_normal((2, 6, 3)))

        def loss(solve):
            return lambda a, b: jnp.sum(jnp.sin(solve(a, b)))

        ours = loss(solve_lower)
        theirs = loss(lambda a, b: jax.scipy.linalg.solve_triangular(jnp.tril(a), b, lower=True))
        for got, want in zip(
            jax.grad(ours, argnums=(0, 1))(lower, rhs),
            jax.grad(theirs, argnums=(0, 1))(lower, rhs),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        tangents = (jnp.tril(jnp.ones_like(lower)), jnp.ones_like(rhs))
        np.testing.assert_allclose(
            jax.jvp(ours, (lower, rhs), tangents)[1],
            jax.jvp(theirs, (lower, rhs), tangents)[1],
            rtol=1e-12,
        )


def test_map_batch_on_cpu_equals_each_member():
    rng = np.random.default_rng(2)
    a = (
        jnp.asarray(_lower(rng, (3,), 4, np.float32))
        @ jnp.asarray(_lower(rng, (3,), 4, np.float32)).mT
    )
    b = jnp.asarray(rng.standard_normal((2, 1, 4)).astype(np.float32))  # broadcasts to (2, 3)

    def fn(m, v):
        return jnp.linalg.slogdet(m)[1] + v @ jnp.linalg.inv(m) @ v, jnp.linalg.eigh(m)[0]

    value, eig = map_batch_on_cpu(fn, (a, b), event_ranks=(2, 1))
    assert value.shape == (2, 3) and eig.shape == (2, 3, 4)
    for i in range(2):
        for j in range(3):
            want = fn(a[j], b[i, 0])
            np.testing.assert_allclose(value[i, j], want[0], rtol=1e-5)
            np.testing.assert_allclose(eig[i, j], want[1], rtol=1e-5)


def _lapack_operand_ranks(fn, *args) -> list[int]:
    """The largest operand rank of every LAPACK call in ``fn``'s compiled CPU program."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    ranks = []
    for line in text.splitlines():
        if 'custom_call_target="lapack_' in line:
            dims = re.findall(r"[fc](?:32|64)\[([\d,]*)\]", line)
            ranks.append(max(len([s for s in d.split(",") if s]) for d in dims))
    return ranks


def test_no_batched_lapack_call_in_mvn_tril_programs():
    batch, d = 4, 3
    eye = jnp.broadcast_to(jnp.eye(d), (batch, d, d))
    loc = jnp.zeros((batch, d))
    q = jaxkl.MultivariateNormalTriL(loc, eye)
    p = jaxkl.MultivariateNormalTriL(loc + 0.1, 1.1 * eye)
    key = jax.random.key(0)
    wide = jnp.broadcast_to(jnp.eye(20), (batch, 20, 20))  # d > 16: the substitution path
    loc20 = jnp.zeros((batch, 20))
    programs = {
        "grad of the KL": (
            jax.grad(lambda s: jnp.sum(jaxkl.analytic.mvn_tril(loc, s, loc, 1.1 * s))),
            eye,
        ),
        "grad of the KL, d = 20": (
            jax.grad(lambda s: jnp.sum(jaxkl.analytic.mvn_tril(loc20, s, loc20, 1.1 * s))),
            wide,
        ),
        "both directions in one program": (lambda q, p: jaxkl.kl(q, p) + jaxkl.kl(p, q), q, p),
        "mc_kl k1": (lambda k, q, p: jaxkl.mc_kl(k, q, p, 64).value, key, q, p),
        "mc_kl k3 (ratio moments)": (
            lambda k, q, p: jaxkl.mc_kl(k, q, p, 64, estimator="k3").value,
            key,
            q,
            p,
        ),
        "log_prob": (lambda q, x: q.log_prob(x), q, jnp.ones((5, batch, d))),
    }
    for name, (fn, *args) in programs.items():
        ranks = _lapack_operand_ranks(fn, *args)
        assert all(r <= 2 for r in ranks), (name, ranks)
    # The check can fail: JAX's own solve on a batch is one batched LAPACK call.
    batched = _lapack_operand_ranks(
        lambda a, b: jax.scipy.linalg.solve_triangular(a, b, lower=True), eye, eye
    )
    assert batched and max(batched) == 3
