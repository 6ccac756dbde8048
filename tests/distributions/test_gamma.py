"""Gamma beyond the checks every family shares (test_family_conformance.py): large
concentrations, the support edge, implicit-reparameterisation gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import jaxkl


def test_entropy_keeps_precision_for_large_concentration():
    # The textbook α + log Γ(α) + (1 − α)ψ(α) cancels terms of size α·log α; the Stirling
    # form must match scipy's float64 value to float32 precision even at α = 1e6.
    conc = np.array([9.99, 10.0, 10.01, 1e3, 1e5, 1e6])
    got = jaxkl.Gamma(conc, 1.0).entropy()
    np.testing.assert_allclose(got, stats.gamma(conc).entropy(), rtol=2e-6)


def test_log_prob_at_and_outside_the_support_edge():
    d = jaxkl.Gamma(jnp.array([0.5, 1.0, 2.0]), jnp.array([3.0, 3.0, 3.0]))
    at_zero = np.asarray(d.log_prob(0.0))
    assert at_zero[0] == np.inf
    np.testing.assert_allclose(at_zero[1], np.log(3.0), rtol=1e-6)
    assert at_zero[2] == -np.inf
    assert np.all(np.asarray(d.log_prob(-1.0)) == -np.inf)
    # The discarded branch at x < 0 must not leak NaN into parameter gradients.
    g = jax.grad(lambda c: jaxkl.Gamma(c, 3.0).log_prob(-1.0).sum())(jnp.array([0.5, 2.0]))
    np.testing.assert_array_equal(g, 0.0)


def test_implicit_reparameterisation_gradient_of_the_mean():
    # d E[x]/dα = 1/β and d E[x]/dβ = −α/β²; the per-sample pathwise derivatives come
    # from a jvp, and their mean must match within 5 standard errors.
    conc, rate, n = 2.5, 1.5, 20_000
    key = jax.random.key(7)

    def draw(c, r):
        return jaxkl.Gamma(c, r).sample(key, (n,))

    _, dx_dc = jax.jvp(draw, (conc, rate), (1.0, 0.0))
    _, dx_dr = jax.jvp(draw, (conc, rate), (0.0, 1.0))
    for dx, expected in [(dx_dc, 1 / rate), (dx_dr, -conc / rate**2)]:
        dx = np.asarray(dx, np.float64)
        assert np.all(np.isfinite(dx))
        se = dx.std(ddof=1) / np.sqrt(n)
        assert abs(dx.mean() - expected) < 5 * se
