"""Poisson beyond the checks every family shares (test_family_conformance.py): log_prob
and entropy against scipy for rates 1e-4 … 3e4, entropy gradients, the support."""

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


# λ = 1e4 and 3e4 take the asymptotic series (λ ≥ 64), the branch that CI holds to scipy
# in both dtypes at λ = 100, 300, 1e3: test_entropy_matches_scipy_float64 (rtol 1e-12)
# and test_entropy_matches_scipy_float32 (rtol 1e-6). Its float64 programs for a batch
# of 2 are compiled for this test alone (about 1.3 s): --run-slow.
@pytest.mark.slow
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
