"""LogNormal: log_prob/entropy/moments against scipy, support edge, samples, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

LOC = np.array([-1.0, 0.2, 1.5])
SCALE = np.array([0.3, 0.6, 1.2])


def _scipy(loc, scale):
    return stats.lognorm(s=scale, scale=np.exp(loc))


def test_log_prob_and_entropy_match_scipy():
    d = jaxkl.LogNormal(LOC, SCALE)
    x = np.geomspace(1e-3, 50.0, 13)[:, None]
    np.testing.assert_allclose(d.log_prob(x), _scipy(LOC, SCALE).logpdf(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), _scipy(LOC, SCALE).entropy(), rtol=1e-5)


def test_mean_and_variance_match_scipy():
    d = jaxkl.LogNormal(LOC, SCALE)
    ref = _scipy(LOC, SCALE)
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-5)


def test_variance_keeps_precision_for_tiny_scale():
    # exp(σ²) − 1 would round to 0 in float32 for σ = 1e-4; expm1 keeps it.
    d = jaxkl.LogNormal(np.float32(0.5), np.float32(1e-4))
    s = np.float64(np.float32(1e-4))
    ref = np.expm1(s**2) * np.exp(2 * np.float64(np.float32(0.5)) + s**2)
    assert d.variance().dtype == jnp.float32
    np.testing.assert_allclose(float(d.variance()), ref, rtol=1e-6)


def test_log_prob_outside_support_is_minus_inf_without_nan():
    d = jaxkl.LogNormal(0.3, 0.7)
    x = jnp.array([-2.0, -0.0, 0.0, 1e-30])
    lp = d.log_prob(x)
    assert np.all(np.isneginf(np.asarray(lp[:3])))
    np.testing.assert_allclose(lp[3], _scipy(0.3, 0.7).logpdf(1e-30), rtol=1e-5)
    g = jax.vmap(jax.grad(lambda x: d.log_prob(x)))(x[:3])
    assert np.all(g == 0.0)
    gp = jax.grad(lambda loc: jaxkl.LogNormal(loc, 0.7).log_prob(-1.0))(0.3)
    assert float(gp) == 0.0


def test_sample_moments_within_5_se():
    d = jaxkl.LogNormal(jnp.array([0.0, 1.0]), jnp.array([0.25, 0.5]))
    n = 200_000
    x = np.asarray(d.sample(jax.random.key(3), (n,)), np.float64)
    assert x.shape == (n, 2) and np.all(x > 0)
    var = np.asarray(d.variance(), np.float64)
    # SE of the sample mean: √(σ²/n). SE of the sample variance: √((μ₄ − σ⁴)/n) with
    # μ₄ = (excess kurtosis + 3)·σ⁴, the lognormal's kurtosis taken from scipy.
    se_mean = np.sqrt(var / n)
    kurt = _scipy(np.array([0.0, 1.0]), np.array([0.25, 0.5])).stats(moments="k")
    se_var = var * np.sqrt((kurt + 2.0) / n)
    assert np.all(np.abs(x.mean(0) - d.mean()) < 5 * se_mean)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_reparameterized_sample_gradient():
    # d/dμ E[X] = E[X] for the lognormal; the pathwise gradient of the sample mean of
    # fixed-key draws is the sample mean itself (each draw is e^{μ+σε}).
    assert jaxkl.LogNormal.reparameterized
    key = jax.random.key(0)
    g = jax.grad(lambda m: jaxkl.LogNormal(m, 0.5).sample(key, (1000,)).mean())(0.2)
    x = jaxkl.LogNormal(0.2, 0.5).sample(key, (1000,))
    np.testing.assert_allclose(g, x.mean(), rtol=1e-5)


def test_shapes_broadcast():
    d = jaxkl.LogNormal(jnp.zeros((4, 1)), jnp.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    # eval_shape traces without compiling: shape checks need no numbers.
    assert jax.eval_shape(lambda: d.sample(0, (2,))).shape == (2, 4, 3)
    assert jax.eval_shape(lambda: d.log_prob(jnp.ones((5, 4, 3)))).shape == (5, 4, 3)


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
        jaxkl.LogNormal(loc, scale)


def test_checked_raises_under_jit():
    f = jaxkl.checked(lambda s: jaxkl.LogNormal(0.0, s).entropy())
    assert np.isfinite(f(1.0))
    with pytest.raises(ValueError, match="LogNormal: scale must be > 0"):
        f(-1.0)


def test_pytree_roundtrip_through_jit_vmap_grad():
    d = jaxkl.LogNormal(jnp.arange(3.0), jnp.ones(3))
    leaves, _ = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(2.0))(d), d.log_prob(2.0), rtol=1e-6)
    assert jax.vmap(lambda d: d.entropy())(d).shape == (3,)
    g = jax.grad(lambda d: d.log_prob(2.0).sum())(d)
    assert isinstance(g, jaxkl.LogNormal)
    # ∂/∂μ log p(x) = (log x − μ)/σ².
    np.testing.assert_allclose(g.loc, np.log(2.0) - np.arange(3.0), rtol=1e-5)
