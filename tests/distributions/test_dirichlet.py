"""Dirichlet: log_prob/entropy against scipy, moments and implicit-reparameterisation
gradients from samples, shapes, transformations, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

CONCS = [np.array([0.5, 2.0, 3.0]), np.array([4.0, 4.0]), np.array([0.3, 1.0, 10.0, 150.0])]


@pytest.mark.parametrize("conc", CONCS)
def test_log_prob_and_entropy_match_scipy(conc):
    d = jaxkl.Dirichlet(conc)
    assert d.event_shape == conc.shape and d.batch_shape == ()
    x = np.random.default_rng(0).dirichlet(np.ones_like(conc), 20)
    ref = stats.dirichlet.logpdf(x.T, conc)
    np.testing.assert_allclose(d.log_prob(x.astype(np.float32)), ref, rtol=2e-5, atol=5e-5)
    np.testing.assert_allclose(d.entropy(), stats.dirichlet(conc).entropy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.mean(), stats.dirichlet.mean(conc), rtol=1e-6)
    np.testing.assert_allclose(d.variance(), stats.dirichlet.var(conc), rtol=1e-6)
    with jax.enable_x64(True):
        d64 = jaxkl.Dirichlet(jnp.asarray(conc))
        np.testing.assert_allclose(d64.log_prob(x), ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d64.entropy(), stats.dirichlet(conc).entropy(), rtol=1e-12)


def test_entropy_keeps_precision_for_large_concentrations():
    conc = np.array([2e3, 5e4, 3e5])
    np.testing.assert_allclose(
        jaxkl.Dirichlet(conc).entropy(), stats.dirichlet(conc).entropy(), rtol=1e-5
    )


def test_batched_log_prob_and_broadcasting():
    conc = np.stack(CONCS[:1] * 2) * np.array([[1.0], [2.0]])  # batch (2,), K = 3
    d = jaxkl.Dirichlet(conc)
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = np.random.default_rng(1).dirichlet(np.ones(3), (5, 2))
    lp = d.log_prob(x.astype(np.float32))
    assert lp.shape == (5, 2)
    for j in range(2):
        np.testing.assert_allclose(
            lp[:, j], stats.dirichlet.logpdf(x[:, j].T, conc[j]), rtol=2e-5, atol=5e-5
        )
    assert d.sample(0, (4,)).shape == (4, 2, 3)
    assert d.entropy().shape == (2,) and d.mean().shape == (2, 3)


def test_log_prob_off_the_simplex_and_at_vertices():
    d = jaxkl.Dirichlet(jnp.array([0.5, 2.0, 1.0]))
    x = jnp.array([[-0.1, 0.6, 0.5], [1.2, -0.1, -0.1], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    lp = np.asarray(d.log_prob(x))
    assert lp[0] == -np.inf and lp[1] == -np.inf
    assert lp[2] == np.inf  # a₁ < 1: the density diverges at x₁ = 0
    assert lp[3] == -np.inf  # a₂ > 1: the density vanishes at x₂ = 0
    g = jax.grad(lambda c: jaxkl.Dirichlet(c).log_prob(x[:2]).sum())(jnp.array([0.5, 2.0, 1.0]))
    np.testing.assert_array_equal(g, 0.0)


def test_sample_moments_within_5_se():
    conc = np.array([0.5, 2.0, 7.5])
    d = jaxkl.Dirichlet(conc)
    n = 30_000
    x = np.asarray(d.sample(jax.random.key(8), (n,)), np.float64)
    assert x.shape == (n, 3) and np.all(x >= 0)
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    mean, var = np.asarray(d.mean(), np.float64), np.asarray(d.variance(), np.float64)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
    # Marginals are Beta(aₖ, a₀ − aₖ): SE of the sample variance √(σ⁴(2 + excess kurtosis)/n).
    a, b = conc, conc.sum() - conc
    s = a + b
    ex_kurt = 6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
    se_var = np.sqrt(var**2 * (2 + ex_kurt) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


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


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda c: jaxkl.Dirichlet(c).entropy())
    assert np.isfinite(f(jnp.ones(3)))
    with pytest.raises(ValueError, match="concentration must be > 0"):
        f(jnp.array([1.0, -1.0, 1.0]))


def test_jit_vmap_grad_and_no_retrace():
    conc = jnp.array([[0.5, 2.0, 1.0], [3.0, 1.0, 1.0]])
    x = jnp.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    traces = 0

    def f(c, x):
        nonlocal traces
        traces += 1
        return jaxkl.Dirichlet(c).log_prob(x)

    jf = jax.jit(f)
    np.testing.assert_allclose(jf(conc, x), f(conc, x), rtol=1e-6)
    jf(conc + 1.0, x)
    assert traces == 2
    loop = jnp.stack([f(c, xi) for c, xi in zip(conc, x, strict=True)])
    np.testing.assert_allclose(jax.vmap(f)(conc, x), loop, rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(x).sum())(jaxkl.Dirichlet(conc))
    assert isinstance(g, jaxkl.Dirichlet) and np.all(np.isfinite(g.concentration))
