"""Uniform: log_prob/entropy against scipy, sampler against moments and the CDF, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_log_prob_and_entropy_match_scipy():
    low, high = np.array([-1.0, 0.5, 3.0]), np.array([0.0, 2.0, 10.0])
    d = jaxkl.Uniform(low, high)
    x = np.linspace(-2.0, 11.0, 27)[:, None]
    ref = stats.uniform(low, high - low)
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-5)
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-6)


def test_log_prob_support_is_closed_interval():
    d = jaxkl.Uniform(1.0, 3.0)
    lp = np.asarray(d.log_prob(jnp.array([0.999, 1.0, 2.0, 3.0, 3.001, jnp.inf])))
    np.testing.assert_allclose(lp[1:4], -np.log(2.0), rtol=1e-6)
    np.testing.assert_array_equal(lp[[0, 4, 5]], -np.inf)


def test_sample_moments_within_5_se():
    d = jaxkl.Uniform(jnp.array([0.0, -2.0]), jnp.array([1.0, 5.0]))
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(1), (n,)), np.float64)
    assert x.shape == (n, 2)
    assert np.all(x >= np.asarray(d.low)) and np.all(x <= np.asarray(d.high))
    var = np.asarray(d.variance())
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(0) - d.mean()) < 5 * se_mean)
    # SE of the sample variance: sqrt((μ4 − σ⁴)/n); the uniform has μ4 = 1.8σ⁴.
    se_var = var * np.sqrt(0.8 / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_samples_follow_the_cdf():
    x = np.asarray(jaxkl.Uniform(1.0, 4.0).sample(jax.random.key(7), (50_000,)), np.float64)
    assert stats.kstest(x, stats.uniform(1.0, 3.0).cdf).pvalue > 1e-3


def test_sample_is_reparameterized():
    assert jaxkl.Uniform.reparameterized

    def mean_sample(low, high):
        return jaxkl.Uniform(low, high).sample(jax.random.key(0), (1000,)).mean()

    g_low, g_high = jax.grad(mean_sample, argnums=(0, 1))(0.5, 2.0)
    u = np.asarray(jaxkl.Uniform(0.0, 1.0).sample(jax.random.key(0), (1000,)))
    np.testing.assert_allclose(g_high, u.mean(), rtol=1e-5)
    np.testing.assert_allclose(g_low, 1.0 - u.mean(), rtol=1e-5)


def test_shapes_broadcast():
    d = jaxkl.Uniform(jnp.zeros((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.zeros((5, 4, 3))).shape == (5, 4, 3)


def test_float64_under_x64():
    with jax.enable_x64(True):
        d = jaxkl.Uniform(0.0, 1.0)
        assert d.sample(0, (3,)).dtype == jnp.float64
        assert d.log_prob(0.5).dtype == jnp.float64


@pytest.mark.parametrize(
    "low, high, match",
    [
        (0.0, 0.0, "Uniform: high must be > low"),
        (1.0, 0.0, "Uniform: high must be > low"),
        (np.array([0.0, 2.0]), 1.0, "Uniform: high must be > low"),
        (np.nan, 1.0, "Uniform: low must be finite"),
        (0.0, np.nan, "Uniform: high must be finite"),
        (-np.inf, 1.0, "Uniform: low must be finite"),
        (0.0, np.inf, "Uniform: high must be finite"),
        (np.zeros(3), np.ones(4), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(low, high, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Uniform(low, high)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda h: jaxkl.Uniform(0.0, h).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="Uniform: high must be > low"):
        f(-1.0)


def test_pytree_through_jit_vmap_grad():
    d = jaxkl.Uniform(jnp.arange(3.0), jnp.arange(3.0) + 2.0)
    assert len(jax.tree_util.tree_leaves(d)) == 2
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(1.5))(d), d.log_prob(1.5), rtol=1e-6)
    assert jax.vmap(lambda d: d.entropy())(d).shape == (3,)
    g = jax.grad(lambda d: d.entropy().sum())(d)
    assert isinstance(g, jaxkl.Uniform)
    np.testing.assert_allclose(g.high, 0.5, rtol=1e-6)
    np.testing.assert_allclose(g.low, -0.5, rtol=1e-6)
