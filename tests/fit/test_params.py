"""Unconstrained Gaussian parameters: round trip, triangularity, gradients, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxkl
from jaxkl.fit import GaussianParams, gaussian_from_params, gaussian_params, scale_tril_from_raw


def random_tril(rng, d, batch=()):
    L = np.tril(rng.normal(size=(*batch, d, d)), -1)
    diag = np.exp(rng.normal(size=(*batch, d)))
    return L + diag[..., :, None] * np.eye(d)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 4))
def test_round_trip(seed, d):
    rng = np.random.default_rng(seed)
    loc, L = rng.normal(size=(3, d)), random_tril(rng, d, (3,))
    q = gaussian_from_params(gaussian_params(loc, L))
    assert isinstance(q, jaxkl.MultivariateNormalTriL)
    np.testing.assert_allclose(q.loc, loc, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q.scale_tril, L, rtol=1e-5, atol=1e-6)


def test_inverse_softplus_extreme_diagonal_float64():
    """softplus⁻¹ stays accurate for tiny and huge diagonal entries (no log(expm1) overflow)."""
    with jax.enable_x64(True):
        diag = jnp.array([1e-8, 1e-3, 1.0, 50.0, 1e3])
        raw = gaussian_params(jnp.zeros(5), jnp.diag(diag)).raw_scale_tril
        back = jnp.diagonal(scale_tril_from_raw(raw))
        np.testing.assert_allclose(back, diag, rtol=1e-12)


def test_upper_triangle_ignored_with_zero_gradient():
    raw = jnp.array([[0.3, 7.0], [-1.0, 0.2]])
    L = scale_tril_from_raw(raw)
    assert float(L[0, 1]) == 0.0
    g = jax.grad(lambda r: jnp.sum(jnp.square(scale_tril_from_raw(r))))(raw)
    assert float(g[0, 1]) == 0.0
    assert bool(jnp.all(jnp.isfinite(g)))


def test_gradient_matches_finite_differences_float64():
    with jax.enable_x64(True):
        p = jaxkl.MultivariateNormalTriL(
            jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.0], [0.4, 0.7]])
        )

        @jax.jit
        def f(flat):
            prm = GaussianParams(flat[:2], flat[2:].reshape(2, 2))
            q = gaussian_from_params(prm)
            return jaxkl.kl(q, p)

        x = jnp.array([0.3, 0.2, 0.1, 0.5, -0.4, -0.2])
        g = jax.jit(jax.grad(f))(x)
        eps = 1e-6
        steps = eps * np.eye(6)
        fd = np.array([(f(x + steps[i]) - f(x - steps[i])) / (2 * eps) for i in range(6)])
        # Entry [0, 1] of the raw matrix is above the diagonal: no effect, zero gradient.
        assert fd[3] == 0.0
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"loc \[\.\.\., d\] and scale_tril \[\.\.\., d, d\]"):
        gaussian_params(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match=r"raw_scale_tril must have shape \[\.\.\., d, d\]"):
        scale_tril_from_raw(jnp.zeros((2, 3)))
