"""Normal: log_prob/entropy against scipy, moments from samples, errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl


def test_log_prob_and_entropy_match_scipy():
    loc, scale = np.array([-1.0, 0.5, 3.0]), np.array([0.3, 1.0, 4.0])
    d = jaxkl.Normal(loc, scale)
    x = np.linspace(-5, 5, 11)[:, None]
    expected = stats.norm(loc, scale).logpdf(x)
    np.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), stats.norm(loc, scale).entropy(), rtol=1e-5)


def test_sample_moments_within_5_se():
    d = jaxkl.Normal(jnp.array([0.0, 2.0]), jnp.array([1.0, 3.0]))
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(1), (n,)), np.float64)
    assert x.shape == (n, 2)
    se_mean = np.sqrt(np.asarray(d.variance()) / n)
    assert np.all(np.abs(x.mean(0) - d.mean()) < 5 * se_mean)
    # SE of the sample variance of a normal: σ²·√(2/(n−1)).
    se_var = np.asarray(d.variance()) * np.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(x.var(0, ddof=1) - d.variance()) < 5 * se_var)


def test_shapes_broadcast():
    d = jaxkl.Normal(jnp.zeros((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample(0, (2,)).shape == (2, 4, 3)
    assert d.log_prob(jnp.zeros((5, 4, 3))).shape == (5, 4, 3)


@pytest.mark.parametrize(
    "loc, scale, match",
    [
        (0.0, 0.0, "scale must be > 0"),
        (0.0, -1.0, "scale must be > 0"),
        (np.nan, 1.0, "loc must be finite"),
        (0.0, np.nan, "scale must be > 0"),
        (np.zeros(3), np.ones(4), "do not broadcast"),
    ],
)
def test_bad_parameters_raise(loc, scale, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Normal(loc, scale)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda s: jaxkl.Normal(0.0, s).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="scale must be > 0"):
        f(-1.0)


def test_pytree_roundtrip_through_jit_vmap_grad():
    d = jaxkl.Normal(jnp.arange(3.0), jnp.ones(3))
    leaves, _ = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    out = jax.jit(lambda d: d.log_prob(0.0))(d)
    np.testing.assert_allclose(out, d.log_prob(0.0), rtol=1e-6)
    per = jax.vmap(lambda d: d.entropy())(d)
    assert per.shape == (3,)
    g = jax.grad(lambda d: d.log_prob(1.0).sum())(d)
    assert isinstance(g, jaxkl.Normal)
