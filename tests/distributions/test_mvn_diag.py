"""MultivariateNormalDiag: densities against scipy, sample moments, shapes, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

RNG = np.random.default_rng(11)
D = 4
LOC = RNG.normal(size=(3, D))
SCALE = np.exp(RNG.normal(scale=0.5, size=(3, D)))


def test_log_prob_and_entropy_match_scipy():
    d = jaxkl.MultivariateNormalDiag(LOC, SCALE)
    x = RNG.normal(size=(5, 3, D)) * 2.0
    for b in range(3):
        ref = stats.multivariate_normal(LOC[b], np.diag(SCALE[b] ** 2))
        np.testing.assert_allclose(d.log_prob(x)[:, b], ref.logpdf(x[:, b]), rtol=1e-5)
        np.testing.assert_allclose(d.entropy()[b], ref.entropy(), rtol=1e-5)


def test_mean_variance_covariance():
    d = jaxkl.MultivariateNormalDiag(LOC, SCALE)
    np.testing.assert_allclose(d.mean(), LOC, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), SCALE**2, rtol=1e-6)
    cov = np.asarray(d.covariance())
    assert cov.shape == (3, D, D)
    for b in range(3):
        np.testing.assert_allclose(cov[b], np.diag(SCALE[b] ** 2), rtol=1e-6)


def test_sample_moments_within_5_se():
    d = jaxkl.MultivariateNormalDiag(LOC[0], SCALE[0])
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(5), (n,)), np.float64)
    assert x.shape == (n, D)
    var = np.asarray(d.variance(), np.float64)
    # SE of the sample mean √(σ²/n); of the normal sample variance σ²·√(2/(n−1)).
    assert np.all(np.abs(x.mean(0) - LOC[0]) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * var * np.sqrt(2.0 / (n - 1)))
    # Coordinates are independent: sample correlations within 5 SE (≈ 1/√n) of zero.
    corr = np.corrcoef(x.T)[np.triu_indices(D, 1)]
    assert np.all(np.abs(corr) < 5 / np.sqrt(n))


def test_shapes_broadcast():
    d = jaxkl.MultivariateNormalDiag(jnp.zeros((2, 1, D)), jnp.ones((3, D)))
    assert d.batch_shape == (2, 3) and d.event_shape == (D,)
    # eval_shape traces without compiling: shape checks need no numbers.
    assert jax.eval_shape(lambda: d.sample(0, (5,))).shape == (5, 2, 3, D)
    assert jax.eval_shape(lambda: d.log_prob(jnp.zeros((7, 2, 3, D)))).shape == (7, 2, 3)
    assert jax.eval_shape(lambda: d.log_prob(jnp.zeros(D))).shape == (2, 3)
    assert jax.eval_shape(d.entropy).shape == (2, 3)
    assert jax.eval_shape(d.covariance).shape == (2, 3, D, D)


@pytest.mark.parametrize(
    "loc, scale, match",
    [
        (np.zeros(3), np.array([1.0, 0.0, 1.0]), "scale_diag must be > 0"),
        (np.zeros(3), np.array([1.0, -1.0, 1.0]), "scale_diag must be > 0"),
        (np.zeros(3), np.array([1.0, np.nan, 1.0]), "scale_diag must be > 0"),
        (np.array([0.0, np.nan, 0.0]), np.ones(3), "loc must be finite"),
        (np.zeros(3), np.ones(4), r"same event size d; got loc \[\.\.\., 3\]"),
        (np.zeros((2, 3)), np.ones((4, 3)), "do not broadcast"),
        (0.0, 1.0, "at least 1 dimension"),
    ],
)
def test_bad_parameters_raise(loc, scale, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.MultivariateNormalDiag(loc, scale)


def test_log_prob_rejects_wrong_event_size():
    d = jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="must have shape"):
        d.log_prob(jnp.zeros(4))


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda s: jaxkl.MultivariateNormalDiag(jnp.zeros(2), s).entropy())
    assert np.isfinite(f(jnp.ones(2)))
    with pytest.raises(ValueError, match="scale_diag must be > 0"):
        f(jnp.array([1.0, -1.0]))


def test_pytree_roundtrip_through_jit_vmap_grad():
    d = jaxkl.MultivariateNormalDiag(jnp.asarray(LOC, jnp.float32), jnp.asarray(SCALE, jnp.float32))
    x = jnp.ones(D)
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(x))(d), d.log_prob(x), rtol=1e-6)
    per = jax.vmap(lambda d: d.log_prob(x))(d)
    np.testing.assert_allclose(per, d.log_prob(x), rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(x).sum())(d)
    assert isinstance(g, jaxkl.MultivariateNormalDiag)
    # ∂/∂μ log p(x) = (x − μ)/s².
    np.testing.assert_allclose(g.loc, (1.0 - LOC) / SCALE**2, rtol=1e-4)
