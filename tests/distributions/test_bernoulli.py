"""Bernoulli beyond the checks every family shares (test_family_conformance.py):
extreme and infinite logits, values off the support."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

import jaxkl


def test_extreme_logits_float32_are_finite_and_accurate():
    # scipy.stats.bernoulli rounds σ(50) to 1 in float64, so the reference is log σ itself.
    logits = np.array([-50.0, -20.0, 20.0, 50.0], np.float32)
    d = jaxkl.Bernoulli(logits)
    l64 = logits.astype(np.float64)
    np.testing.assert_allclose(d.log_prob(1.0), special.log_expit(l64), rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(0.0), special.log_expit(-l64), rtol=1e-6)
    p, q = special.expit(l64), special.expit(-l64)
    h_ref = -(p * special.log_expit(l64) + q * special.log_expit(-l64))
    np.testing.assert_allclose(d.entropy(), h_ref, rtol=1e-5)
    np.testing.assert_allclose(d.variance(), p * q, rtol=1e-5)
    g = jax.grad(lambda l: jaxkl.Bernoulli(l).log_prob(jnp.array([0.0, 1.0, 0.0, 1.0])).sum())(
        jnp.asarray(logits)
    )
    assert np.all(np.isfinite(g))


def test_infinite_logits_are_point_masses():
    d = jaxkl.Bernoulli(jnp.array([-jnp.inf, jnp.inf]))
    np.testing.assert_array_equal(d.log_prob(jnp.array([0.0, 1.0])), [0.0, 0.0])
    np.testing.assert_array_equal(d.log_prob(jnp.array([1.0, 0.0])), [-np.inf, -np.inf])
    np.testing.assert_array_equal(d.entropy(), [0.0, 0.0])
    np.testing.assert_array_equal(d.mean(), [0.0, 1.0])
    np.testing.assert_array_equal(d.variance(), [0.0, 0.0])
    np.testing.assert_array_equal(d.sample(0, (3,)), [[0.0, 1.0]] * 3)


def test_log_prob_off_support_is_minus_inf():
    d = jaxkl.Bernoulli(0.3)
    out = d.log_prob(jnp.array([-1.0, 0.5, 2.0, jnp.nan]))
    np.testing.assert_array_equal(out, [-np.inf] * 4)
