"""Laplace beyond the checks every family shares (test_family_conformance.py): ±inf, the
sampler against the CDF and in the tails, reparameterisation."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import jaxkl


def test_log_prob_at_infinity_is_minus_inf():
    d = jaxkl.Laplace(0.0, 1.0)
    np.testing.assert_array_equal(d.log_prob(jnp.array([-jnp.inf, jnp.inf])), [-np.inf, -np.inf])


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
