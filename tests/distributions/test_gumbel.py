"""Gumbel: log_prob/entropy against scipy, sampler against moments and the CDF, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_log_prob_and_entropy_match_scipy():
    loc, scale = np.array([-1.0, 0.5, 3.0]), np.array([0.3, 1.0, 4.0])
    d = jaxkl.Gumbel(loc, scale)
    x = np.linspace(-2.0, 8.0, 11)[:, None]
    ref = stats.gumbel_r(loc, scale)
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-5)
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-6)


def test_log_prob_in_the_tails():
    d = jaxkl.Gumbel(0.0, 1.0)
    # Far left the density is exp(−e^{−z}): −inf once e^{−z} overflows, never NaN.
    x = jnp.array([-jnp.inf, -200.0, -30.0, 50.0, jnp.inf])
    lp = np.asarray(d.log_prob(x))
    assert not np.any(np.isnan(lp))
    np.testing.assert_array_equal(lp[[0, 1, 4]], -np.inf)
    np.testing.assert_allclose(lp[[2, 3]], stats.gumbel_r.logpdf([-30.0, 50.0]), rtol=1e-6)


def test_sample_moments_within_5_se():
    d = jaxkl.Gumbel(jnp.array([0.0, 2.0]), jnp.array([1.0, 3.0]))
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(1), (n,)), np.float64)
    assert x.shape == (n, 2) and np.all(np.isfinite(x))
    var = np.asarray(d.variance())
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(0) - d.mean()) < 5 * se_mean)
    # SE of the sample variance: sqrt((μ4 − σ⁴)/n); the Gumbel has μ4 = 5.4σ⁴.
    se_var = var * np.sqrt(4.4 / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_samples_follow_the_cdf():
    x = np.asarray(jaxkl.Gumbel(1.0, 2.0).sample(jax.random.key(7), (50_000,)), np.float64)
    assert stats.kstest(x, stats.gumbel_r(1.0, 2.0).cdf).pvalue > 1e-3


def test_samples_stay_finite():
    x = jaxkl.Gumbel(0.0, 1.0).sample(jax.random.key(3), (200_000,))
    assert bool(jnp.all(jnp.isfinite(x)))


def test_sample_is_reparameterized():
    assert jaxkl.Gumbel.reparameterized

    def mean_sample(loc, scale):
        return jaxkl.Gumbel(loc, scale).sample(jax.random.key(0), (1000,)).mean()

    g_loc, g_scale = jax.grad(mean_sample, argnums=(0, 1))(0.5, 2.0)
    eps = np.asarray(jaxkl.Gumbel(0.0, 1.0).sample(jax.random.key(0), (1000,)))
    np.testing.assert_allclose(g_loc, 1.0, rtol=1e-6)
    np.testing.assert_allclose(g_scale, eps.mean(), rtol=1e-4, atol=1e-6)


def test_shapes_broadcast():
    d = jaxkl.Gumbel(jnp.zeros((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.zeros((5, 4, 3))).shape == (5, 4, 3)


def test_float64_under_x64():
    with jax.enable_x64(True):
        d = jaxkl.Gumbel(0.0, 1.0)
        assert d.sample(0, (3,)).dtype == jnp.float64
        assert d.log_prob(0.0).dtype == jnp.float64


@pytest.mark.parametrize(
    "loc, scale, match",
    [
        (0.0, 0.0, "Gumbel: scale must be > 0"),
        (0.0, -1.0, "Gumbel: scale must be > 0"),
        (0.0, np.nan, "Gumbel: scale must be > 0"),
        (np.nan, 1.0, "Gumbel: loc must be finite"),
        (np.zeros(3), np.ones(4), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(loc, scale, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Gumbel(loc, scale)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda s: jaxkl.Gumbel(0.0, s).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="Gumbel: scale must be > 0"):
        f(-1.0)


def test_pytree_through_jit_vmap_grad():
    d = jaxkl.Gumbel(jnp.arange(3.0), jnp.ones(3))
    assert len(jax.tree_util.tree_leaves(d)) == 2
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(0.5))(d), d.log_prob(0.5), rtol=1e-6)
    assert jax.vmap(lambda d: d.entropy())(d).shape == (3,)
    g = jax.grad(lambda d: d.log_prob(1.0).sum())(d)
    assert isinstance(g, jaxkl.Gumbel)
    # d/dloc of −z − e^{−z}, z = x − μ (β = 1): 1 − e^{−z}.
    np.testing.assert_allclose(g.loc, 1.0 - np.exp(-(1.0 - np.arange(3.0))), rtol=1e-5)
