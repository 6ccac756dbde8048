"""MultivariateNormalTriL beyond the checks every family shares
(test_family_conformance.py): broadcasting x, the covariance and its sample estimate,
large d, bad shapes and factors, gradients and the upper triangle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

D = 4


def _random_tril(rng, *batch, d=D):
    a = rng.normal(size=(*batch, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    return np.linalg.cholesky(cov)


RNG = np.random.default_rng(7)
LOC = RNG.normal(size=(3, D))
TRIL = _random_tril(RNG, 3)


def test_log_prob_broadcasts_x_against_batch():
    d = jaxkl.MultivariateNormalTriL(LOC, TRIL)
    x = RNG.normal(size=D)
    ref = [stats.multivariate_normal(LOC[b], TRIL[b] @ TRIL[b].T).logpdf(x) for b in range(3)]
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-5)
    # A batch of one distribution against a batch of points.
    d1 = jaxkl.MultivariateNormalTriL(LOC[:1], TRIL[:1])
    xs = RNG.normal(size=(5, D))
    ref1 = stats.multivariate_normal(LOC[0], TRIL[0] @ TRIL[0].T).logpdf(xs)
    np.testing.assert_allclose(d1.log_prob(xs), ref1, rtol=1e-5)


def test_mean_variance_covariance():
    d = jaxkl.MultivariateNormalTriL(LOC, TRIL)
    cov = TRIL @ np.swapaxes(TRIL, -1, -2)
    np.testing.assert_allclose(d.mean(), LOC, rtol=1e-6)
    np.testing.assert_allclose(d.covariance(), cov, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.variance(), np.diagonal(cov, axis1=-2, axis2=-1), rtol=1e-5)


def test_sample_moments_within_5_se():
    d = jaxkl.MultivariateNormalTriL(LOC[0], TRIL[0])
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(9), (n,)), np.float64)
    assert x.shape == (n, D)
    cov = TRIL[0] @ TRIL[0].T
    var = np.diag(cov)
    assert np.all(np.abs(x.mean(0) - LOC[0]) < 5 * np.sqrt(var / n))
    # For a Gaussian, Var[(xᵢ − μᵢ)(xⱼ − μⱼ)] = ΣᵢᵢΣⱼⱼ + Σᵢⱼ², so the SE of the sample
    # covariance entry is √((ΣᵢᵢΣⱼⱼ + Σᵢⱼ²)/n).
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov)


def test_large_d_log_prob_matches_scipy():
    rng = np.random.default_rng(1)
    L = _random_tril(rng, d=32)
    mu = rng.normal(size=32)
    x = rng.multivariate_normal(mu, L @ L.T, size=4)
    d = jaxkl.MultivariateNormalTriL(mu, L)
    ref = stats.multivariate_normal(mu, L @ L.T).logpdf(x)
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-4)


@pytest.mark.parametrize(
    "loc, tril, match",
    [
        (np.zeros(3), np.diag([1.0, 0.0, 1.0]), "scale_tril must have a diagonal > 0"),
        (np.zeros(3), np.diag([1.0, -2.0, 1.0]), "scale_tril must have a diagonal > 0"),
        (np.zeros(3), np.diag([1.0, np.nan, 1.0]), "scale_tril must be finite"),
        (np.zeros(3), np.triu(np.ones((3, 3))), "must be lower triangular"),
        (np.zeros(3), np.eye(3) + 1e-30 * np.eye(3, k=2), "must be lower triangular"),
        (
            np.zeros(3),
            np.eye(3) + np.where(np.eye(3, k=-1), np.nan, 0),
            "scale_tril must be finite",
        ),
        (np.array([0.0, np.nan, 0.0]), np.eye(3), "loc must be finite"),
        (np.zeros(4), np.eye(3), r"same event size d; got loc \[\.\.\., 4\] and scale_tril"),
        (np.zeros(3), np.ones((3, 2)), "must be square"),
        (np.zeros(3), np.ones(3), "at least 2 dimension"),
        (np.zeros((2, 3)), np.broadcast_to(np.eye(3), (4, 3, 3)), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(loc, tril, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.MultivariateNormalTriL(loc, tril)


def test_batched_bad_entry_is_found():
    tril = np.broadcast_to(np.eye(3), (5, 3, 3)).copy()
    tril[3, 0, 2] = 0.1
    with pytest.raises(ValueError, match="lower triangular"):
        jaxkl.MultivariateNormalTriL(np.zeros(3), tril)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda L: jaxkl.MultivariateNormalTriL(jnp.zeros(2), L).entropy())
    assert np.isfinite(f(jnp.eye(2)))
    with pytest.raises(ValueError, match="scale_tril must have a diagonal > 0"):
        f(jnp.diag(jnp.array([1.0, -1.0])))
    with pytest.raises(ValueError, match="lower triangular"):
        f(jnp.ones((2, 2)))


def test_gradients_leave_the_upper_triangle_at_zero():
    # Only the lower triangle is a parameter: a gradient step must keep scale_tril valid.
    L = jnp.asarray(TRIL[0], jnp.float32)
    key = jax.random.key(0)
    TriL = jaxkl.MultivariateNormalTriL

    def losses(L):
        d = TriL(jnp.zeros(D), L)
        return jnp.stack(
            [
                d.log_prob(jnp.ones(D)),
                jnp.sum(d.sample(key, (8,)) ** 2),
                jnp.sum(d.covariance()),
                jnp.sum(d.variance()),
                jaxkl.kl(d, TriL(jnp.ones(D), 2.0 * jnp.eye(D))),
                jaxkl.kl(TriL(jnp.ones(D), 2.0 * jnp.eye(D)), d),
            ]
        )

    # One compiled Jacobian: row k is the gradient of loss k.
    jac = np.asarray(jax.jit(jax.jacrev(losses))(L))
    for g in jac:
        assert np.all(np.triu(g, 1) == 0) and np.any(np.tril(g) != 0)


def test_reparameterized_sample_is_affine_in_noise():
    # x = μ + L ε: with the same key, the centred samples of (μ, L) and (0, 2L) differ by 2×.
    assert jaxkl.MultivariateNormalTriL.reparameterized
    a = np.asarray(jaxkl.MultivariateNormalTriL(LOC[0], TRIL[0]).sample(0, (10,)))
    b = np.asarray(jaxkl.MultivariateNormalTriL(np.zeros(D), 2.0 * TRIL[0]).sample(0, (10,)))
    np.testing.assert_allclose(2.0 * (a - LOC[0]), b, rtol=1e-5, atol=1e-5)
