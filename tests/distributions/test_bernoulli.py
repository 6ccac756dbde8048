"""Bernoulli: log_prob/entropy/moments against scipy, extremes, samples, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxkl

RNG = np.random.default_rng(0)


def test_log_prob_entropy_moments_match_scipy():
    logits = RNG.normal(0.0, 3.0, size=5).astype(np.float32)
    d = jaxkl.Bernoulli(logits)
    p = special.expit(logits.astype(np.float64))
    ref = stats.bernoulli(p)
    x = np.array([0.0, 1.0])[:, None]
    np.testing.assert_allclose(d.log_prob(x), ref.logpmf(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-5)
    np.testing.assert_allclose(d.probs, p, rtol=1e-6)


def test_extreme_logits_float32_are_finite_and_accurate():
    # scipy.stats.bernoulli rounds σ(50) to 1 in float64, so the reference is log σ itself.
    logits = np.array([-50.0, -20.0, 20.0, 50.0], np.float32)
    d = jaxkl.Bernoulli(logits)
    l64 = logits.astype(np.float64)
    np.testing.assert_allclose(d.log_prob(1.0), special.log_expit(l64), rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(0.0), special.log_expit(-l64), rtol=1e-6)
    p, q = special.expit(l64), special.expit(-l64)
    h_ref = -(p * special.log_expit(l64) + q * special.log_expit(-l64))
    np.testing.assert_allclose(d.entropy(), h_ref, rtol=1e-5)
    np.testing.assert_allclose(d.variance(), p * q, rtol=1e-5)
    g = jax.grad(lambda l: jaxkl.Bernoulli(l).log_prob(jnp.array([0.0, 1.0, 0.0, 1.0])).sum())(
        jnp.asarray(logits)
    )
    assert np.all(np.isfinite(g))


def test_infinite_logits_are_point_masses():
    d = jaxkl.Bernoulli(jnp.array([-jnp.inf, jnp.inf]))
    np.testing.assert_array_equal(d.log_prob(jnp.array([0.0, 1.0])), [0.0, 0.0])
    np.testing.assert_array_equal(d.log_prob(jnp.array([1.0, 0.0])), [-np.inf, -np.inf])
    np.testing.assert_array_equal(d.entropy(), [0.0, 0.0])
    np.testing.assert_array_equal(d.mean(), [0.0, 1.0])
    np.testing.assert_array_equal(d.variance(), [0.0, 0.0])
    np.testing.assert_array_equal(d.sample(0, (3,)), [[0.0, 1.0]] * 3)


def test_log_prob_off_support_is_minus_inf():
    d = jaxkl.Bernoulli(0.3)
    out = d.log_prob(jnp.array([-1.0, 0.5, 2.0, jnp.nan]))
    np.testing.assert_array_equal(out, [-np.inf] * 4)


def test_sample_moments_within_5_se():
    logits = jnp.array([-2.0, 0.0, 1.5])
    d = jaxkl.Bernoulli(logits)
    n = 100_000
    x = d.sample(jax.random.key(3), (n,))
    assert x.shape == (n, 3) and x.dtype == d.dtype
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    x = np.asarray(x, np.float64)
    p = np.asarray(d.mean(), np.float64)
    var = p * (1 - p)
    # SE of the sample mean: √(p(1−p)/n).
    assert np.all(np.abs(x.mean(0) - p) < 5 * np.sqrt(var / n))
    # SE of the sample variance: √((μ₄ − σ⁴(n−3)/(n−1))/n) (exact for any n; at p = ½ the
    # leading μ₄ − σ⁴ vanishes), Bernoulli μ₄ = p(1−p)(1 − 3p(1−p)).
    mu4 = var * (1 - 3 * var)
    se_var = np.sqrt((mu4 - var**2 * (n - 3) / (n - 1)) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_float64_under_x64():
    with jax.enable_x64(True):
        d = jaxkl.Bernoulli(jnp.array([0.3, -4.0], jnp.float64))
        assert d.dtype == jnp.float64
        assert d.sample(0, (2,)).dtype == jnp.float64
        p = special.expit(np.array([0.3, -4.0]))
        np.testing.assert_allclose(d.entropy(), stats.bernoulli(p).entropy(), rtol=1e-13)


def test_shapes_and_pytree():
    d = jaxkl.Bernoulli(jnp.zeros((4, 1)))
    assert d.batch_shape == (4, 1) and d.event_shape == ()
    assert d.sample(0, (2, 3)).shape == (2, 3, 4, 1)
    assert d.log_prob(jnp.zeros((5, 4, 3))).shape == (5, 4, 3)
    out = jax.jit(lambda d: d.log_prob(1.0))(d)
    np.testing.assert_allclose(out, d.log_prob(1.0), rtol=1e-6)
    per = jax.vmap(lambda d: d.entropy())(jaxkl.Bernoulli(jnp.arange(3.0)))
    np.testing.assert_allclose(per, jaxkl.Bernoulli(jnp.arange(3.0)).entropy(), rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(1.0).sum())(d)
    assert isinstance(g, jaxkl.Bernoulli)
    np.testing.assert_allclose(g.logits, 0.5)  # d/dℓ log σ(ℓ) = σ(−ℓ)
    assert not jaxkl.Bernoulli.reparameterized


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="logits must not be NaN"):
        jaxkl.Bernoulli(jnp.array([0.0, jnp.nan]))
    f = jaxkl.checked(lambda l: jaxkl.Bernoulli(l).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="logits must not be NaN"):
        f(jnp.nan)
