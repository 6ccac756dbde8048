"""Exponential: log_prob/entropy against scipy, moments and pathwise gradients from
samples, transformations, errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

RATE = np.array([0.01, 0.5, 2.0, 300.0])


def test_log_prob_and_entropy_match_scipy():
    d = jaxkl.Exponential(RATE)
    x = np.logspace(-5, 2, 20)[:, None]
    ref = stats.expon(scale=1 / RATE).logpdf(x)
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), stats.expon(scale=1 / RATE).entropy(), rtol=1e-5)
    with jax.enable_x64(True):
        d64 = jaxkl.Exponential(jnp.asarray(RATE))
        np.testing.assert_allclose(d64.log_prob(x), ref, rtol=1e-13, atol=1e-13)
        assert d64.sample(0, (2,)).dtype == jnp.float64


def test_log_prob_at_and_outside_the_support_edge():
    d = jaxkl.Exponential(jnp.array([0.5, 4.0]))
    np.testing.assert_allclose(d.log_prob(0.0), np.log([0.5, 4.0]), rtol=1e-6)
    assert np.all(np.asarray(d.log_prob(-1e-3)) == -np.inf)
    g = jax.grad(lambda r: jaxkl.Exponential(r).log_prob(-1.0).sum())(jnp.array([0.5, 4.0]))
    np.testing.assert_array_equal(g, 0.0)


def test_sample_moments_within_5_se():
    rate = np.array([0.5, 3.0])
    d = jaxkl.Exponential(rate)
    n = 100_000
    x = np.asarray(d.sample(jax.random.key(2), (n,)), np.float64)
    assert x.shape == (n, 2) and np.all(x >= 0)
    var = 1 / rate**2
    np.testing.assert_allclose(d.mean(), 1 / rate, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), var, rtol=1e-6)
    assert np.all(np.abs(x.mean(0) - 1 / rate) < 5 * np.sqrt(var / n))
    # SE of the sample variance: √((μ₄ − σ⁴)/n) with central μ₄ = 9/λ⁴.
    se_var = np.sqrt((9 / rate**4 - var**2) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_pathwise_gradient_of_the_mean():
    # d E[x]/dλ = −1/λ²; per-sample derivatives from a jvp, mean within 5 SE.
    rate, n = 2.0, 50_000
    _, dx = jax.jvp(lambda r: jaxkl.Exponential(r).sample(3, (n,)), (rate,), (1.0,))
    dx = np.asarray(dx, np.float64)
    se = dx.std(ddof=1) / np.sqrt(n)
    assert abs(dx.mean() + 1 / rate**2) < 5 * se


def test_shapes_broadcast():
    d = jaxkl.Exponential(jnp.ones((4, 3)))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.ones((5, 4, 3))).shape == (5, 4, 3)


@pytest.mark.parametrize("rate", [0.0, -1.0, np.nan, np.array([1.0, 0.0])])
def test_bad_parameters_raise(rate):
    with pytest.raises(ValueError, match="Exponential: rate must be > 0"):
        jaxkl.Exponential(rate)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda r: jaxkl.Exponential(r).entropy())
    assert np.isfinite(f(2.0))
    with pytest.raises(ValueError, match="rate must be > 0"):
        f(0.0)


def test_jit_vmap_grad_and_no_retrace():
    rate, x = jnp.array([0.5, 2.0, 7.0]), jnp.array([0.2, 1.5, 3.0])
    traces = 0

    def f(r, x):
        nonlocal traces
        traces += 1
        return jaxkl.Exponential(r).log_prob(x)

    jf = jax.jit(f)
    np.testing.assert_allclose(jf(rate, x), f(rate, x), rtol=1e-6)
    jf(rate * 2.0, x)
    assert traces == 2
    loop = jnp.stack([f(r, xi) for r, xi in zip(rate, x, strict=True)])
    np.testing.assert_allclose(jax.vmap(f)(rate, x), loop, rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(x).sum())(jaxkl.Exponential(rate))
    np.testing.assert_allclose(g.rate, 1 / rate - x, rtol=1e-6)
