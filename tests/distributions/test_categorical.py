"""Categorical: log_prob/entropy/moments against scipy, masking, samples, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

RNG = np.random.default_rng(1)


def _probs64(logits):
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_log_prob_entropy_moments_match_scipy():
    logits = RNG.normal(0.0, 2.0, size=(3, 5)).astype(np.float32)
    d = jaxkl.Categorical(logits)
    assert d.batch_shape == (3,) and d.event_shape == () and d.num_categories == 5
    probs = _probs64(logits)
    x = np.arange(5)[:, None]  # [5, 1] broadcasts against batch (3,)
    lp = np.asarray(d.log_prob(x))
    assert lp.shape == (5, 3)
    for i in range(3):
        ref = stats.rv_discrete(values=(np.arange(5), probs[i]))
        np.testing.assert_allclose(lp[:, i], ref.logpmf(np.arange(5)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d.entropy()[i], ref.entropy(), rtol=1e-5)
        np.testing.assert_allclose(d.mean()[i], ref.mean(), rtol=1e-5)
        np.testing.assert_allclose(d.variance()[i], ref.var(), rtol=1e-5)
    np.testing.assert_allclose(d.probs, probs, rtol=1e-5)


def test_log_prob_broadcasts_and_accepts_integral_floats():
    d = jaxkl.Categorical(jnp.log(jnp.array([[0.2, 0.8], [0.6, 0.4]])))
    x = jnp.array([[0, 1], [1, 1], [0, 0]])
    expected = np.log([[0.2, 0.4], [0.8, 0.4], [0.2, 0.6]])
    np.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(x.astype(jnp.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(1), np.log([0.8, 0.4]), rtol=1e-6)
    with pytest.raises(ValueError, match="does not broadcast with batch_shape"):
        d.log_prob(jnp.zeros(3, jnp.int32))


def test_log_prob_off_support_is_minus_inf():
    d = jaxkl.Categorical(jnp.zeros(3))
    np.testing.assert_array_equal(d.log_prob(jnp.array([-1, 3, 7])), [-np.inf] * 3)
    np.testing.assert_array_equal(
        d.log_prob(jnp.array([0.5, -1.0, 3.0, jnp.nan, jnp.inf])), [-np.inf] * 5
    )


def test_masked_category_has_zero_probability():
    d = jaxkl.Categorical(jnp.array([0.0, -jnp.inf, 0.0]))
    assert d.log_prob(1) == -jnp.inf
    np.testing.assert_allclose(d.entropy(), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(d.mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), 1.0, rtol=1e-6)
    x = d.sample(jax.random.key(0), (2000,))
    assert not np.any(np.asarray(x) == 1)
    g = jax.grad(lambda l: jaxkl.Categorical(l).entropy())(jnp.array([0.0, -jnp.inf, 1.0]))
    assert np.all(np.isfinite(g))


def test_extreme_logits_float32():
    logits = jnp.array([50.0, -50.0, 0.0])
    d = jaxkl.Categorical(logits)
    probs = _probs64(np.asarray(logits))
    np.testing.assert_allclose(d.log_prob(jnp.arange(3)), np.log(probs), rtol=1e-6)
    h_ref = -np.sum(probs * np.log(probs))
    np.testing.assert_allclose(d.entropy(), h_ref, rtol=1e-4)
    g = jax.grad(lambda l: jaxkl.Categorical(l).entropy())(logits)
    assert np.all(np.isfinite(g))


def test_sample_frequencies_and_moments_within_5_se():
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    d = jaxkl.Categorical(jnp.log(jnp.asarray(probs, jnp.float32)))
    n = 100_000
    x = d.sample(jax.random.key(2), (n,))
    assert x.shape == (n, 2) and x.dtype == jnp.int32
    x = np.asarray(x)
    # Each frequency is a mean of n Bernoulli(p_k): SE √(p_k(1 − p_k)/n).
    freq = np.stack([(x == k).mean(0) for k in range(4)], -1)
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n))
    # Index mean: SE √(Var/n).
    var = np.asarray(d.variance(), np.float64)
    assert np.all(np.abs(x.mean(0) - np.asarray(d.mean())) < 5 * np.sqrt(var / n))


def test_jit_vmap_grad_pytree():
    logits = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
    d = jaxkl.Categorical(logits)
    np.testing.assert_allclose(jax.jit(lambda d: d.entropy())(d), d.entropy(), rtol=1e-6)
    per = jax.vmap(lambda d: d.log_prob(2))(d)
    loop = [jaxkl.Categorical(logits[i]).log_prob(2) for i in range(4)]
    np.testing.assert_allclose(per, loop, rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(1).sum())(d)
    assert isinstance(g, jaxkl.Categorical)
    # d/dℓ log softmax(ℓ)_1 = e_1 − softmax(ℓ).
    np.testing.assert_allclose(g.logits, np.eye(3)[1] - _probs64(logits), atol=1e-6)
    assert not jaxkl.Categorical.reparameterized


def test_float64_under_x64():
    with jax.enable_x64(True):
        logits = jnp.asarray(RNG.normal(size=4))
        d = jaxkl.Categorical(logits)
        assert d.dtype == jnp.float64
        p = _probs64(logits)
        np.testing.assert_allclose(d.entropy(), stats.entropy(p), rtol=1e-13)


@pytest.mark.parametrize(
    "logits, match",
    [
        (
            0.0,
            r"logits must have at least 1 dimension\(s\) \(shape \[\.\.\., K\]\); got shape \(\)",
        ),
        (np.zeros((2, 0)), "at least one category"),
        (np.array([0.0, np.nan]), "logits must not be NaN"),
        (np.array([0.0, np.inf]), r"logits must not be NaN or \+inf.*got logits\[1\] = inf"),
        (
            np.array([[0.0, 1.0], [-np.inf, -np.inf]]),
            r"at least one entry > -inf in every row.*got logits\[1, 0\] = -inf",
        ),
    ],
)
def test_bad_parameters_raise(logits, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Categorical(logits)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda l: jaxkl.Categorical(l).entropy())
    assert np.isfinite(f(jnp.zeros(3)))
    with pytest.raises(ValueError, match="logits must not be NaN"):
        f(jnp.array([0.0, jnp.nan, 1.0]))
