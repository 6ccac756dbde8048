"""Beta: log_prob/entropy against scipy (including extreme concentrations), moments and
implicit-reparameterisation gradients from samples, transformations, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxkl

A = np.array([0.3, 1.0, 2.5, 40.0, 0.7])
B = np.array([0.6, 1.0, 7.0, 15.0, 3.0])


def test_log_prob_and_entropy_match_scipy():
    d = jaxkl.Beta(A, B)
    x = np.linspace(0.01, 0.99, 25)[:, None]
    ref = stats.beta(A, B).logpdf(x)
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(d.entropy(), stats.beta(A, B).entropy(), rtol=1e-5, atol=1e-6)


def test_float64_matches_scipy():
    with jax.enable_x64(True):
        d = jaxkl.Beta(jnp.asarray(A), jnp.asarray(B))
        x = np.linspace(1e-6, 1 - 1e-6, 25)[:, None]
        lp = d.log_prob(x)
        assert lp.dtype == jnp.float64
        np.testing.assert_allclose(lp, stats.beta(A, B).logpdf(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d.entropy(), stats.beta(A, B).entropy(), rtol=1e-12)
        assert d.sample(0, (2,)).dtype == jnp.float64


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


def test_sample_moments_within_5_se():
    a, b = np.array([0.5, 3.0, 20.0]), np.array([0.5, 1.0, 50.0])
    d = jaxkl.Beta(a, b)
    n = 30_000
    x = np.asarray(d.sample(jax.random.key(4), (n,)), np.float64)
    assert x.shape == (n, 3) and np.all((x >= 0) & (x <= 1))
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    np.testing.assert_allclose(d.mean(), mean, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), var, rtol=1e-6)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
    # SE of the sample variance √((μ₄ − σ⁴)/n), μ₄ = σ⁴(3 + excess kurtosis of the beta).
    s = a + b
    ex_kurt = 6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
    se_var = np.sqrt(var**2 * (2 + ex_kurt) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


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


def test_shapes_broadcast():
    d = jaxkl.Beta(jnp.ones((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.full((5, 4, 3), 0.5)).shape == (5, 4, 3)
    assert d.entropy().shape == d.mean().shape == d.variance().shape == (4, 3)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (0.0, 1.0, "concentration1 must be > 0"),
        (-1.0, 1.0, "concentration1 must be > 0"),
        (np.nan, 1.0, "concentration1 must be > 0"),
        (1.0, 0.0, "concentration0 must be > 0"),
        (1.0, np.nan, "concentration0 must be > 0"),
        (np.ones(2), np.ones(3), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(a, b, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Beta(a, b)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda a: jaxkl.Beta(a, 1.0).entropy())
    assert np.isfinite(f(2.0))
    with pytest.raises(ValueError, match="concentration1 must be > 0"):
        f(-1.0)


def test_jit_vmap_grad_and_no_retrace():
    a, b = jnp.array([0.5, 2.0, 7.0]), jnp.array([1.0, 0.3, 4.0])
    x = jnp.array([0.2, 0.5, 0.9])
    traces = 0

    def f(a, b, x):
        nonlocal traces
        traces += 1
        return jaxkl.Beta(a, b).log_prob(x)

    jf = jax.jit(f)
    np.testing.assert_allclose(jf(a, b, x), f(a, b, x), rtol=1e-6)
    jf(a + 1.0, b, x)
    assert traces == 2
    loop = jnp.stack([f(ai, bi, xi) for ai, bi, xi in zip(a, b, x, strict=True)])
    np.testing.assert_allclose(jax.vmap(f)(a, b, x), loop, rtol=1e-6)
    # d log p / da = log x − ψ(a) + ψ(a + b)
    g = jax.grad(lambda d: d.log_prob(x).sum())(jaxkl.Beta(a, b))
    a64, b64, x64 = (np.asarray(v, np.float64) for v in (a, b, x))
    expected = np.log(x64) - special.digamma(a64) + special.digamma(a64 + b64)
    np.testing.assert_allclose(g.concentration1, expected, rtol=1e-4, atol=1e-5)
