"""Gamma: log_prob/entropy against scipy, moments and implicit-reparameterisation
gradients from samples, transformations, errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

CONC = np.array([0.3, 1.0, 2.5, 40.0])
RATE = np.array([0.5, 2.0, 1.0, 3.0])


def test_log_prob_and_entropy_match_scipy():
    d = jaxkl.Gamma(CONC, RATE)
    x = np.logspace(-4, 2, 25)[:, None]
    ref = stats.gamma(CONC, scale=1 / RATE).logpdf(x)
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(d.entropy(), stats.gamma(CONC, scale=1 / RATE).entropy(), rtol=1e-5)


def test_entropy_keeps_precision_for_large_concentration():
    # The textbook α + log Γ(α) + (1 − α)ψ(α) cancels terms of size α·log α; the Stirling
    # form must match scipy's float64 value to float32 precision even at α = 1e6.
    conc = np.array([9.99, 10.0, 10.01, 1e3, 1e5, 1e6])
    got = jaxkl.Gamma(conc, 1.0).entropy()
    np.testing.assert_allclose(got, stats.gamma(conc).entropy(), rtol=2e-6)


def test_log_prob_float64_matches_scipy():
    with jax.enable_x64(True):
        d = jaxkl.Gamma(jnp.asarray(CONC), jnp.asarray(RATE))
        x = np.logspace(-6, 2, 25)[:, None]
        lp = d.log_prob(x)
        assert lp.dtype == jnp.float64
        ref = stats.gamma(CONC, scale=1 / RATE).logpdf(x)
        np.testing.assert_allclose(lp, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            d.entropy(), stats.gamma(CONC, scale=1 / RATE).entropy(), rtol=1e-12
        )
        assert d.sample(0, (3,)).dtype == jnp.float64


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


def test_sample_moments_within_5_se():
    conc, rate = np.array([0.5, 3.0, 20.0]), np.array([2.0, 1.0, 0.5])
    d = jaxkl.Gamma(conc, rate)
    n = 40_000
    x = np.asarray(d.sample(jax.random.key(1), (n,)), np.float64)
    assert x.shape == (n, 3) and np.all(x >= 0)
    var = conc / rate**2
    np.testing.assert_allclose(d.mean(), conc / rate, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), var, rtol=1e-6)
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(0) - conc / rate) < 5 * se_mean)
    # SE of the sample variance: √((μ₄ − σ⁴)/n), gamma central μ₄ = 3α(α + 2)/β⁴.
    mu4 = 3 * conc * (conc + 2) / rate**4
    se_var = np.sqrt((mu4 - var**2) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


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


def test_shapes_broadcast():
    d = jaxkl.Gamma(jnp.ones((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.ones((5, 4, 3))).shape == (5, 4, 3)
    assert d.entropy().shape == d.mean().shape == d.variance().shape == (4, 3)


@pytest.mark.parametrize(
    "conc, rate, match",
    [
        (0.0, 1.0, "concentration must be > 0"),
        (-1.0, 1.0, "concentration must be > 0"),
        (np.nan, 1.0, "concentration must be > 0"),
        (1.0, 0.0, "rate must be > 0"),
        (1.0, -2.0, "rate must be > 0"),
        (1.0, np.nan, "rate must be > 0"),
        (np.ones(3), np.ones(4), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(conc, rate, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Gamma(conc, rate)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda c: jaxkl.Gamma(c, 1.0).entropy())
    assert np.isfinite(f(2.0))
    with pytest.raises(ValueError, match="concentration must be > 0"):
        f(-1.0)


def test_jit_vmap_grad_and_no_retrace():
    conc, rate = jnp.array([0.5, 2.0, 7.0]), jnp.array([1.0, 0.3, 4.0])
    x = jnp.array([0.2, 1.5, 3.0])
    traces = 0

    def f(c, r, x):
        nonlocal traces
        traces += 1
        return jaxkl.Gamma(c, r).log_prob(x)

    jf = jax.jit(f)
    np.testing.assert_allclose(jf(conc, rate, x), f(conc, rate, x), rtol=1e-6)
    jf(conc + 1.0, rate, x)
    assert traces == 2  # one eager call, one trace; the second jitted call reuses it
    per = jax.vmap(f)(conc, rate, x)
    loop = jnp.stack([f(c, r, xi) for c, r, xi in zip(conc, rate, x, strict=True)])
    np.testing.assert_allclose(per, loop, rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(x).sum())(jaxkl.Gamma(conc, rate))
    assert isinstance(g, jaxkl.Gamma)
    assert np.all(np.isfinite(g.concentration)) and np.all(np.isfinite(g.rate))
