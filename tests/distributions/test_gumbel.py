"""Gumbel beyond the checks every family shares (test_family_conformance.py): the tails,
the sampler against the CDF, reparameterisation."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import jaxkl


def test_log_prob_in_the_tails():
    d = jaxkl.Gumbel(0.0, 1.0)
    # Far left the density is exp(−e^{−z}): −inf once e^{−z} overflows, never NaN.
    x = jnp.array([-jnp.inf, -200.0, -30.0, 50.0, jnp.inf])
    lp = np.asarray(d.log_prob(x))
    assert not np.any(np.isnan(lp))
    np.testing.assert_array_equal(lp[[0, 1, 4]], -np.inf)
    np.testing.assert_allclose(lp[[2, 3]], stats.gumbel_r.logpdf([-30.0, 50.0]), rtol=1e-6)


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
