"""Uniform beyond the checks every family shares (test_family_conformance.py): the closed
support, the sampler against the CDF, reparameterisation."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import jaxkl


def test_log_prob_support_is_closed_interval():
    d = jaxkl.Uniform(1.0, 3.0)
    lp = np.asarray(d.log_prob(jnp.array([0.999, 1.0, 2.0, 3.0, 3.001, jnp.inf])))
    np.testing.assert_allclose(lp[1:4], -np.log(2.0), rtol=1e-6)
    np.testing.assert_array_equal(lp[[0, 4, 5]], -np.inf)


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
