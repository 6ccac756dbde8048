"""Categorical beyond the checks every family shares (test_family_conformance.py):
index broadcasting, the support, masked categories, extreme logits, category frequencies
of samples, bad shapes and rows without mass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl


def _probs64(logits):
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


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
