"""Exponential beyond the checks every family shares (test_family_conformance.py): the
support edge and the pathwise gradient of the mean."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl


def test_log_prob_at_and_outside_the_support_edge():
    d = jaxkl.Exponential(jnp.array([0.5, 4.0]))
    np.testing.assert_allclose(d.log_prob(0.0), np.log([0.5, 4.0]), rtol=1e-6)
    assert np.all(np.asarray(d.log_prob(-1e-3)) == -np.inf)
    g = jax.grad(lambda r: jaxkl.Exponential(r).log_prob(-1.0).sum())(jnp.array([0.5, 4.0]))
    np.testing.assert_array_equal(g, 0.0)


def test_pathwise_gradient_of_the_mean():
    # d E[x]/dλ = −1/λ²; per-sample derivatives from a jvp, mean within 5 SE.
    rate, n = 2.0, 50_000
    _, dx = jax.jvp(lambda r: jaxkl.Exponential(r).sample(3, (n,)), (rate,), (1.0,))
    dx = np.asarray(dx, np.float64)
    se = dx.std(ddof=1) / np.sqrt(n)
    assert abs(dx.mean() + 1 / rate**2) < 5 * se
