"""Poisson: log_prob/entropy against scipy (rates 0.1 … 1e4), samples, gradients, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

# Around the switch at 64 from the exact sum to the asymptotic series, and both sides.
RATES = np.array([1e-4, 0.1, 0.5, 1.0, 3.7, 10.0, 30.0, 63.9, 64.0, 64.1, 100.0, 300.0, 1e3])


def test_log_prob_matches_scipy():
    rates = np.array([0.1, 1.0, 7.5, 100.0, 1e4], np.float32)
    d = jaxkl.Poisson(rates)
    # Float32 keeps full relative precision, also at the mode of λ = 1e4 where the
    # textbook k log λ − λ − log k! loses three digits.
    for k in (0.0, 1.0, 5.0, 90.0, 1e4, 1e4 + 150.0):
        ref = stats.poisson(rates.astype(np.float64)).logpmf(k)
        np.testing.assert_allclose(d.log_prob(k), ref, rtol=1e-6)
    with jax.enable_x64(True):
        d = jaxkl.Poisson(jnp.asarray(rates, jnp.float64))
        k = np.arange(0.0, 200.0)[:, None]
        ref = stats.poisson(rates.astype(np.float64)).logpmf(k)
        np.testing.assert_allclose(d.log_prob(k), ref, rtol=1e-12)


def test_log_prob_off_support_is_minus_inf():
    d = jaxkl.Poisson(2.0)
    out = d.log_prob(jnp.array([-1.0, 0.5, 2.5, jnp.inf, jnp.nan]))
    np.testing.assert_array_equal(out, [-np.inf] * 5)


def test_entropy_matches_scipy_float64():
    with jax.enable_x64(True):
        h = jaxkl.Poisson(jnp.asarray(RATES)).entropy()
        np.testing.assert_allclose(h, stats.poisson(RATES).entropy(), rtol=1e-12)


def test_entropy_matches_scipy_float32():
    h = jaxkl.Poisson(RATES.astype(np.float32)).entropy()
    ref = stats.poisson(RATES.astype(np.float32).astype(np.float64)).entropy()
    np.testing.assert_allclose(h, ref, rtol=1e-6)


def test_entropy_at_large_rates_matches_explicit_sum():
    # scipy's own entropy() truncates its sum too early at λ = 1e4 (it warns and is off by
    # ~4e-4), so the reference is an explicit sum of scipy log-pmfs over ±60 sd.
    rates = np.array([1e4, 3e4])
    ref = []
    for lam in rates:
        k = np.arange(np.floor(lam - 60 * np.sqrt(lam)), np.ceil(lam + 60 * np.sqrt(lam)))
        lp = stats.poisson(lam).logpmf(k)
        ref.append(-np.sum(np.exp(lp) * lp))
    with jax.enable_x64(True):
        np.testing.assert_allclose(jaxkl.Poisson(jnp.asarray(rates)).entropy(), ref, rtol=1e-10)
    np.testing.assert_allclose(jaxkl.Poisson(rates.astype(np.float32)).entropy(), ref, rtol=1e-6)


def test_entropy_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rates = jnp.array([0.3, 5.0, 63.0, 65.0, 500.0])
        grad = jax.vmap(jax.grad(lambda r: jaxkl.Poisson(r).entropy()))(rates)
        h = 1e-6 * rates
        fd = (jaxkl.Poisson(rates + h).entropy() - jaxkl.Poisson(rates - h).entropy()) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-7)
        # Smallness check against the large-λ limit dH/dλ ≈ 1/(2λ).
        np.testing.assert_allclose(grad[-1], 1 / (2 * 500.0), rtol=1e-2)


def test_entropy_jit_no_retrace():
    traces = []

    @jax.jit
    def f(r):
        traces.append(1)
        return jaxkl.Poisson(r).entropy()

    np.testing.assert_allclose(f(jnp.array([2.0, 80.0])), jaxkl.Poisson([2.0, 80.0]).entropy())
    f(jnp.array([3.0, 90.0]))
    assert len(traces) == 1


def test_sample_moments_within_5_se():
    rates = jnp.array([0.2, 4.0, 150.0])
    d = jaxkl.Poisson(rates)
    n = 100_000
    x = d.sample(jax.random.key(4), (n,))
    assert x.shape == (n, 3) and x.dtype == jnp.float32
    x = np.asarray(x, np.float64)
    assert np.all(x == np.floor(x)) and np.all(x >= 0)
    lam = np.asarray(rates, np.float64)
    # SE of the mean √(λ/n); of the sample variance √((μ₄ − σ⁴(n−3)/(n−1))/n) with the
    # Poisson μ₄ = λ + 3λ².
    assert np.all(np.abs(x.mean(0) - lam) < 5 * np.sqrt(lam / n))
    se_var = np.sqrt((lam + 3 * lam**2 - lam**2 * (n - 3) / (n - 1)) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - lam) < 5 * se_var)


def test_float64_samples_under_x64():
    with jax.enable_x64(True):
        x = jaxkl.Poisson(jnp.array([3.0], jnp.float64)).sample(0, (4,))
        assert x.dtype == jnp.float64 and x.shape == (4, 1)


def test_shapes_and_pytree():
    d = jaxkl.Poisson(jnp.ones((2, 1)))
    assert d.batch_shape == (2, 1)
    assert d.sample(0, (3,)).shape == (3, 2, 1)
    assert d.log_prob(jnp.zeros((4, 2, 5))).shape == (4, 2, 5)
    assert d.entropy().shape == (2, 1)
    g = jax.grad(lambda d: d.log_prob(3.0).sum())(d)
    np.testing.assert_allclose(g.rate, 3.0 / 1.0 - 1.0)  # d/dλ (x log λ − λ) = x/λ − 1
    assert not jaxkl.Poisson.reparameterized


@pytest.mark.parametrize(
    "rate, match",
    [
        (0.0, "rate must be > 0"),
        (-1.0, "rate must be > 0"),
        (np.nan, "rate must be > 0"),
        (np.inf, "rate must be > 0 and finite"),
    ],
)
def test_bad_parameters_raise(rate, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Poisson(rate)
