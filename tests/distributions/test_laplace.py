"""Laplace: log_prob/entropy against scipy, sampler against moments and the CDF, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_log_prob_and_entropy_match_scipy():
    loc, scale = np.array([-1.0, 0.5, 3.0]), np.array([0.3, 1.0, 4.0])
    d = jaxkl.Laplace(loc, scale)
    x = np.linspace(-6.0, 6.0, 13)[:, None]
    ref = stats.laplace(loc, scale)
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-5)
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-6)


def test_log_prob_at_infinity_is_minus_inf():
    d = jaxkl.Laplace(0.0, 1.0)
    np.testing.assert_array_equal(d.log_prob(jnp.array([-jnp.inf, jnp.inf])), [-np.inf, -np.inf])


def test_sample_moments_within_5_se():
    d = jaxkl.Laplace(jnp.array([0.0, 2.0]), jnp.array([1.0, 3.0]))
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(1), (n,)), np.float64)
    assert x.shape == (n, 2) and np.all(np.isfinite(x))
    var = np.asarray(d.variance())
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(0) - d.mean()) < 5 * se_mean)
    # SE of the sample variance: sqrt((μ4 − σ⁴)/n); the Laplace has μ4 = 6σ⁴.
    se_var = var * np.sqrt(5.0 / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_samples_follow_the_cdf():
    # Kolmogorov–Smirnov against scipy's CDF; a fixed key, so the p-value is deterministic.
    x = np.asarray(jaxkl.Laplace(1.0, 2.0).sample(jax.random.key(7), (50_000,)), np.float64)
    assert stats.kstest(x, stats.laplace(1.0, 2.0).cdf).pvalue > 1e-3


def test_extreme_tail_samples_stay_finite():
    x = jaxkl.Laplace(0.0, 1.0).sample(jax.random.key(3), (200_000,))
    assert bool(jnp.all(jnp.isfinite(x)))
    # float32 uniforms resolve the tail to |x| ≈ 16.6 scale; no sample should exceed it.
    assert float(jnp.max(jnp.abs(x))) < 17.0


def test_sample_is_reparameterized():
    assert jaxkl.Laplace.reparameterized

    def mean_sample(loc, scale):
        return jaxkl.Laplace(loc, scale).sample(jax.random.key(0), (1000,)).mean()

    g_loc, g_scale = jax.grad(mean_sample, argnums=(0, 1))(0.5, 2.0)
    eps = np.asarray(jaxkl.Laplace(0.0, 1.0).sample(jax.random.key(0), (1000,)))
    np.testing.assert_allclose(g_loc, 1.0, rtol=1e-6)
    np.testing.assert_allclose(g_scale, eps.mean(), rtol=1e-4, atol=1e-6)


def test_shapes_broadcast():
    d = jaxkl.Laplace(jnp.zeros((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.zeros((5, 4, 3))).shape == (5, 4, 3)


def test_float64_under_x64():
    with jax.enable_x64(True):
        d = jaxkl.Laplace(0.0, 1.0)
        assert d.sample(0, (3,)).dtype == jnp.float64
        assert d.log_prob(0.0).dtype == jnp.float64


@pytest.mark.parametrize(
    "loc, scale, match",
    [
        (0.0, 0.0, "Laplace: scale must be > 0"),
        (0.0, -1.0, "Laplace: scale must be > 0"),
        (0.0, np.nan, "Laplace: scale must be > 0"),
        (np.nan, 1.0, "Laplace: loc must be finite"),
        (np.zeros(3), np.ones(4), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(loc, scale, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Laplace(loc, scale)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda s: jaxkl.Laplace(0.0, s).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="Laplace: scale must be > 0"):
        f(-1.0)


def test_pytree_through_jit_vmap_grad():
    d = jaxkl.Laplace(jnp.arange(3.0), jnp.ones(3))
    assert len(jax.tree_util.tree_leaves(d)) == 2
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(0.5))(d), d.log_prob(0.5), rtol=1e-6)
    assert jax.vmap(lambda d: d.entropy())(d).shape == (3,)
    g = jax.grad(lambda d: d.log_prob(10.0).sum())(d)
    assert isinstance(g, jaxkl.Laplace)
    # d/dscale of −|x − μ|/b − log b = |x − μ|/b² − 1/b.
    np.testing.assert_allclose(g.scale, np.abs(10.0 - np.arange(3.0)) - 1.0, rtol=1e-6)
