"""Beta beyond the checks every family shares (test_family_conformance.py): log B at
mixed scales, extreme concentrations, the support edges, implicit-reparameterisation
gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_log_prob_small_and_huge_concentration_float32():
    # Beta(0.2, 3e5): log B needs log Γ(3e5) − log Γ(3e5 + 0.2) without cancellation.
    d = jaxkl.Beta(0.2, 3e5)
    x = np.array([1e-9, 1e-7, 1e-6, 1e-5])
    np.testing.assert_allclose(d.log_prob(x), stats.beta(0.2, 3e5).logpdf(x), rtol=1e-5)


def test_entropy_keeps_precision_for_large_concentrations():
    a, b = np.array([10.0, 2e3, 1e5, 0.5]), np.array([12.0, 3e3, 4e5, 1e5])
    np.testing.assert_allclose(jaxkl.Beta(a, b).entropy(), stats.beta(a, b).entropy(), rtol=1e-5)


def test_log_prob_at_and_outside_the_support_edges():
    d = jaxkl.Beta(jnp.array([0.5, 1.0, 2.0]), jnp.array([2.0, 3.0, 0.5]))
    at0, at1 = np.asarray(d.log_prob(0.0)), np.asarray(d.log_prob(1.0))
    assert at0[0] == np.inf and at0[2] == -np.inf
    np.testing.assert_allclose(at0[1], np.log(3.0), rtol=1e-6)  # Beta(1, b) at 0: b
    assert at1[0] == -np.inf and at1[1] == -np.inf and at1[2] == np.inf
    for outside in (-0.1, 1.1):
        assert np.all(np.asarray(d.log_prob(outside)) == -np.inf)
    g = jax.grad(lambda a: jaxkl.Beta(a, 2.0).log_prob(1.5).sum())(jnp.array([0.5, 3.0]))
    np.testing.assert_array_equal(g, 0.0)


# Beta draws are sigmoid(log X − log Y) of jax.random.loggamma variates, whose implicit
# reparameterisation gradient CI holds to the mean's derivative in test_dirichlet.py's
# test of the same name (softmax of the same draws); the sigmoid is plain autodiff: --run-slow.
@pytest.mark.slow
def test_implicit_reparameterisation_gradient_of_the_mean():
    # d E[x]/da = b/(a + b)², d E[x]/db = −a/(a + b)²; per-sample derivatives by jvp.
    a, b, n = 2.0, 3.0, 20_000

    def draw(a, b):
        return jaxkl.Beta(a, b).sample(5, (n,))

    for tangent, expected in [((1.0, 0.0), b / (a + b) ** 2), ((0.0, 1.0), -a / (a + b) ** 2)]:
        _, dx = jax.jvp(draw, (a, b), tangent)
        dx = np.asarray(dx, np.float64)
        assert np.all(np.isfinite(dx))
        assert abs(dx.mean() - expected) < 5 * dx.std(ddof=1) / np.sqrt(n)


def test_small_concentrations_sample_without_nan():
    x = np.asarray(jaxkl.Beta(0.05, 0.05).sample(6, (2000,)))
    assert np.all((x >= 0) & (x <= 1))
