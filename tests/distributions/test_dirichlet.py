"""Dirichlet beyond the checks every family shares (test_family_conformance.py): large
concentrations, the simplex edges, implicit-reparameterisation gradients, bad shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_entropy_keeps_precision_for_large_concentrations():
    conc = np.array([2e3, 5e4, 3e5])
    np.testing.assert_allclose(
        jaxkl.Dirichlet(conc).entropy(), stats.dirichlet(conc).entropy(), rtol=1e-5
    )


def test_log_prob_off_the_simplex_and_at_vertices():
    d = jaxkl.Dirichlet(jnp.array([0.5, 2.0, 1.0]))
    x = jnp.array([[-0.1, 0.6, 0.5], [1.2, -0.1, -0.1], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    lp = np.asarray(d.log_prob(x))
    assert lp[0] == -np.inf and lp[1] == -np.inf
    assert lp[2] == np.inf  # a₁ < 1: the density diverges at x₁ = 0
    assert lp[3] == -np.inf  # a₂ > 1: the density vanishes at x₂ = 0
    g = jax.grad(lambda c: jaxkl.Dirichlet(c).log_prob(x[:2]).sum())(jnp.array([0.5, 2.0, 1.0]))
    np.testing.assert_array_equal(g, 0.0)


def test_implicit_reparameterisation_gradient_of_the_mean():
    # d E[xₖ]/da₀ = (δₖ₀ a_tot − aₖ)/a_tot²; per-sample derivatives by jvp.
    conc, n = jnp.array([1.5, 2.0, 4.0]), 20_000
    tangent = jnp.array([1.0, 0.0, 0.0])
    _, dx = jax.jvp(lambda c: jaxkl.Dirichlet(c).sample(9, (n,)), (conc,), (tangent,))
    dx = np.asarray(dx, np.float64)
    total = float(conc.sum())
    expected = (np.array([total, 0.0, 0.0]) - np.asarray(conc)) / total**2
    se = dx.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(dx.mean(0) - expected) < 5 * se)


@pytest.mark.parametrize(
    "conc, match",
    [
        (np.array([1.0]), "K >= 2"),
        (np.ones((3, 1)), "K >= 2"),
        (1.0, "at least 1 dimension"),
        (np.array([1.0, 0.0]), "concentration must be > 0"),
        (np.array([1.0, -2.0]), "concentration must be > 0"),
        (np.array([1.0, np.nan]), "concentration must be > 0"),
    ],
)
def test_bad_parameters_raise(conc, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Dirichlet(conc)


def test_log_prob_rejects_wrong_event_shape():
    with pytest.raises(ValueError, match="event_shape"):
        jaxkl.Dirichlet(jnp.ones(3)).log_prob(jnp.full((4,), 0.25))
