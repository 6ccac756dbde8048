"""LogNormal beyond the checks every family shares (test_family_conformance.py): the
variance at tiny scales, values off the support, reparameterised samples."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import jaxkl


def _scipy(loc, scale):
    return stats.lognorm(s=scale, scale=np.exp(loc))


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


def test_reparameterized_sample_gradient():
    # d/dμ E[X] = E[X] for the lognormal; the pathwise gradient of the sample mean of
    # fixed-key draws is the sample mean itself (each draw is e^{μ+σε}).
    assert jaxkl.LogNormal.reparameterized
    key = jax.random.key(0)
    g = jax.grad(lambda m: jaxkl.LogNormal(m, 0.5).sample(key, (1000,)).mean())(0.2)
    x = jaxkl.LogNormal(0.2, 0.5).sample(key, (1000,))
    np.testing.assert_allclose(g, x.mean(), rtol=1e-5)
