"""MVNTriL KL for d ≤ 16: the unrolled forward substitution against the solve path.

Both paths are run in float32 on the same inputs and scored against a float64 reference
(scipy triangular solves, no jaxkl); the unrolled path must be as precise as the solve one
(within a factor 2 plus 4 ulp of the KL), for well- and ill-conditioned factors, distant and
nearby pairs. Its derivatives are those of the solve path by construction (custom JVP).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.analytic import gaussian
from tests.analytic.test_gaussian_float64 import _cov_with_condition, _tril_kl_float64_stable

EPS32 = float(np.finfo(np.float32).eps)


def _pairs(d, cond, nearby, n=8, seed=0):
    """n float32 pairs (loc_a, L_a, loc_b, L_b), batched, covariances of condition ``cond``."""
    rng = np.random.default_rng(seed + d)
    La = np.stack([np.linalg.cholesky(_cov_with_condition(rng, d, cond)) for _ in range(n)])
    if nearby:
        Lb = La * (1 + 1e-3 * np.tril(rng.normal(size=La.shape)))
    else:
        Lb = np.stack([np.linalg.cholesky(_cov_with_condition(rng, d, cond)) for _ in range(n)])
    mu_a, mu_b = rng.normal(size=(2, n, d))
    return tuple(np.asarray(x, np.float32) for x in (mu_a, La, mu_b, Lb))


# d = 8 is unrolled as d = 2 and d = 16 (the largest unrolled size) are in CI: --run-slow.
@pytest.mark.parametrize("d", [1, 2, pytest.param(8, marks=pytest.mark.slow), 16])
def test_unrolled_as_precise_as_the_solve_against_float64(d):
    # One batch: well-conditioned, condition 1e4, and nearby pairs (KL ~ 1e-5).
    cases = [_pairs(d, 1.0 + 1e-9, False), _pairs(d, 1e4, False), _pairs(d, 1e3, True)]
    args = tuple(np.concatenate(parts) for parts in zip(*cases, strict=True))
    ref = np.array([_tril_kl_float64_stable(*(np.float64(x[i]) for x in args)) for i in range(24)])
    fast = np.float64(gaussian.mvn_tril(*args))
    solved = np.float64(jax.jit(gaussian._tril_kl_solve)(*args))
    err_fast, err_solve = np.abs(fast - ref) / ref, np.abs(solved - ref) / ref
    assert np.all(err_fast <= 2 * err_solve + 4 * EPS32), (err_fast, err_solve)


def test_unrolled_chosen_at_trace_time_and_gradients_are_the_solve_paths():
    args = _pairs(8, 1e3, nearby=False)
    solves = [
        "triangular_solve" in str(jax.make_jaxpr(gaussian.mvn_tril)(*_pairs(d, 10.0, False)))
        for d in (8, 16, 17)
    ]
    assert solves == [False, False, True]

    def total(f):
        return lambda *a: jnp.sum(f(*a))

    got = jax.jit(jax.grad(total(gaussian.mvn_tril), argnums=(0, 1, 2, 3)))(*args)
    want = jax.jit(jax.grad(total(gaussian._tril_kl_solve), argnums=(0, 1, 2, 3)))(*args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6 * float(jnp.max(jnp.abs(w))))
    # Upper triangles are not read: their derivative is exactly 0.
    assert float(jnp.max(jnp.abs(jnp.triu(got[1], 1)))) == 0.0
