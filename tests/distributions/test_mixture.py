"""Mixture: density against numpy/scipy, moments from samples, shapes, jit/vmap, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxkl

RNG = np.random.default_rng(5)


def _normal_mixture(batch=(2,), k=3, dtype=np.float32):
    logits = RNG.normal(size=(*batch, k)).astype(dtype)
    loc = RNG.normal(0.0, 2.0, size=(*batch, k)).astype(dtype)
    scale = RNG.uniform(0.3, 1.5, size=(*batch, k)).astype(dtype)
    return logits, loc, scale


def test_log_prob_matches_scipy_mixture_density():
    logits, loc, scale = _normal_mixture()
    m = jaxkl.Mixture(logits, jaxkl.Normal(loc, scale))
    assert m.batch_shape == (2,) and m.event_shape == () and m.num_components == 3
    x = np.linspace(-6.0, 6.0, 25)[:, None]  # [25, 1] against batch (2,)
    log_w = special.log_softmax(logits.astype(np.float64), -1)
    ref = special.logsumexp(log_w + stats.norm(loc, scale).logpdf(x[..., None]), axis=-1)
    out = m.log_prob(x)
    assert out.shape == (25, 2)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_log_prob_vector_event_matches_scipy():
    k, d = 2, 3
    logits = RNG.normal(size=k).astype(np.float32)
    loc = RNG.normal(size=(k, d)).astype(np.float32)
    scale = RNG.uniform(0.5, 2.0, size=(k, d)).astype(np.float32)
    m = jaxkl.Mixture(logits, jaxkl.MultivariateNormalDiag(loc, scale))
    assert m.batch_shape == () and m.event_shape == (d,)
    x = RNG.normal(size=(7, d)).astype(np.float32)
    per = np.stack(
        [stats.multivariate_normal(loc[j], np.diag(scale[j] ** 2)).logpdf(x) for j in range(k)],
        -1,
    )
    ref = special.logsumexp(special.log_softmax(logits.astype(np.float64)) + per, axis=-1)
    np.testing.assert_allclose(m.log_prob(x), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="must have shape"):
        m.log_prob(jnp.zeros((7, d + 1)))


def test_log_prob_categorical_components():
    w = np.array([0.25, 0.75])
    comp = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    m = jaxkl.Mixture(jnp.log(jnp.asarray(w)), jaxkl.Categorical(jnp.log(jnp.asarray(comp))))
    np.testing.assert_allclose(m.log_prob(jnp.arange(3)), np.log(w @ comp), rtol=1e-6)
    x = m.sample(0, (4,))
    assert x.dtype == jnp.int32 and x.shape == (4,)


def test_mean_variance_closed_form():
    logits, loc, scale = _normal_mixture()
    m = jaxkl.Mixture(logits, jaxkl.Normal(loc, scale))
    w = special.softmax(logits.astype(np.float64), -1)
    mean = np.sum(w * loc, -1)
    var = np.sum(w * (scale.astype(np.float64) ** 2 + loc.astype(np.float64) ** 2), -1) - mean**2
    np.testing.assert_allclose(m.mean(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.variance(), var, rtol=1e-5)


def _normal_mixture_central_moment4(w, loc, scale, mean):
    # E[(X − m)⁴] = Σ_k w_k E[(Y_k − m)⁴], Y_k ~ N(μ_k, σ_k²): δ⁴ + 6δ²σ² + 3σ⁴, δ = μ_k − m.
    delta = loc - mean[..., None]
    return np.sum(w * (delta**4 + 6 * delta**2 * scale**2 + 3 * scale**4), -1)


def test_sample_moments_within_5_se():
    logits, loc, scale = _normal_mixture()
    m = jaxkl.Mixture(logits, jaxkl.Normal(loc, scale))
    n = 100_000
    x = m.sample(jax.random.key(6), (n,))
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    x = np.asarray(x, np.float64)
    mean, var = np.asarray(m.mean(), np.float64), np.asarray(m.variance(), np.float64)
    # SE of the sample mean √(σ²/n); of the sample variance √((μ₄ − σ⁴(n−3)/(n−1))/n).
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
    w = special.softmax(logits.astype(np.float64), -1)
    mu4 = _normal_mixture_central_moment4(w, loc.astype(np.float64), scale, mean)
    se_var = np.sqrt((mu4 - var**2 * (n - 3) / (n - 1)) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)


def test_sample_moments_vector_event_within_5_se():
    k, d = 3, 2
    logits = jnp.array([0.0, 1.0, -1.0])
    loc = jnp.array([[-2.0, 0.0], [1.0, 3.0], [0.0, -1.0]])
    scale = jnp.array([[0.5, 1.0], [1.0, 0.3], [2.0, 0.5]])
    m = jaxkl.Mixture(logits, jaxkl.MultivariateNormalDiag(loc, scale))
    assert m.mean().shape == (d,) and m.variance().shape == (d,)
    n = 100_000
    x = np.asarray(m.sample(jax.random.key(7), (n,)), np.float64)
    assert x.shape == (n, d)
    mean, var = np.asarray(m.mean(), np.float64), np.asarray(m.variance(), np.float64)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
    w = np.asarray(jax.nn.softmax(logits), np.float64)
    # Per coordinate the mixture is a 1-D normal mixture with the same weights.
    mu4 = np.array(
        [
            _normal_mixture_central_moment4(
                w, np.asarray(loc[:, j], np.float64), np.asarray(scale[:, j], np.float64), mean[j]
            )
            for j in range(d)
        ]
    )
    se_var = np.sqrt((mu4 - var**2 * (n - 3) / (n - 1)) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)
    del k


def test_broadcast_components_are_drawn_independently_per_batch_entry():
    # Shared components (batch (K,)) with per-entry weights (batch (4, K)).
    m = jaxkl.Mixture(jnp.zeros((4, 2)), jaxkl.Normal(jnp.array([-1.0, 1.0]), 1.0))
    assert m.batch_shape == (4,)
    n = 20_000
    x = np.asarray(m.sample(jax.random.key(8), (n,)), np.float64)
    assert x.shape == (n, 4)
    # Independent entries have sample correlation with SE ≈ 1/√n.
    corr = np.corrcoef(x.T)[np.triu_indices(4, 1)]
    assert np.all(np.abs(corr) < 5 / np.sqrt(n))
    # Middle-axis broadcasting: components (2, 1, K) against logits (3, K).
    m2 = jaxkl.Mixture(jnp.zeros((3, 2)), jaxkl.Normal(jnp.zeros((2, 1, 2)), 1.0))
    assert m2.batch_shape == (2, 3)
    assert m2.sample(0, (5,)).shape == (5, 2, 3)
    assert m2.log_prob(jnp.zeros((5, 2, 3))).shape == (5, 2, 3)
    assert m2.mean().shape == (2, 3) and m2.variance().shape == (2, 3)


def test_jit_vmap_grad():
    logits, loc, scale = _normal_mixture(batch=(3,))
    m = jaxkl.Mixture(logits, jaxkl.Normal(loc, scale))
    x = jnp.linspace(-2.0, 2.0, 3)
    np.testing.assert_allclose(jax.jit(lambda m, x: m.log_prob(x))(m, x), m.log_prob(x), rtol=1e-6)
    per = jax.vmap(lambda m, x: m.log_prob(x))(m, x)
    loop = [
        jaxkl.Mixture(logits[i], jaxkl.Normal(loc[i], scale[i])).log_prob(x[i]) for i in range(3)
    ]
    np.testing.assert_allclose(per, loop, rtol=1e-6)
    s = jax.jit(lambda m: m.sample(jax.random.key(0), (2,)))(m)
    # Same draws; the compiled path may fuse loc + scale·ε into one FMA (1 ulp apart).
    np.testing.assert_allclose(s, m.sample(jax.random.key(0), (2,)), rtol=1e-6, atol=1e-7)
    g = jax.grad(lambda m: m.log_prob(x).sum())(m)
    assert isinstance(g, jaxkl.Mixture) and isinstance(g.components, jaxkl.Normal)


def test_grad_matches_finite_differences_float64():
    with jax.enable_x64(True):
        logits = jnp.array([0.3, -0.2, 1.0])
        loc = jnp.array([-1.0, 0.5, 2.0])
        scale = jnp.array([0.7, 1.2, 0.4])

        def f(params):
            lg, mu, sd = params
            return jaxkl.Mixture(lg, jaxkl.Normal(mu, sd)).log_prob(jnp.array([0.1, 1.7])).sum()

        params = jnp.stack([logits, loc, scale])
        grad = jax.grad(f)(params)
        h = 1e-6
        fd = np.zeros(params.shape)
        for idx in np.ndindex(*params.shape):
            e = jnp.zeros(params.shape).at[idx].set(h)
            fd[idx] = (f(params + e) - f(params - e)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def test_no_retrace_on_same_shapes():
    traces = []

    @jax.jit
    def f(logits, loc):
        traces.append(1)
        return jaxkl.Mixture(logits, jaxkl.Normal(loc, 1.0)).log_prob(0.5)

    f(jnp.zeros(3), jnp.zeros(3))
    f(jnp.ones(3), jnp.arange(3.0))
    assert len(traces) == 1


def test_entropy_points_to_monte_carlo():
    m = jaxkl.Mixture(jnp.zeros(2), jaxkl.Normal(jnp.zeros(2), 1.0))
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        m.entropy()
    assert not jaxkl.Mixture.reparameterized


@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda: jaxkl.Mixture(jnp.zeros(3), jaxkl.Normal(jnp.zeros(4), 1.0)),
            r"mixture_logits has K=3 .* components have K=4",
        ),
        (
            lambda: jaxkl.Mixture(jnp.array([0.0, jnp.nan]), jaxkl.Normal(jnp.zeros(2), 1.0)),
            "mixture_logits must be finite",
        ),
        (
            lambda: jaxkl.Mixture(jnp.array([0.0, -jnp.inf]), jaxkl.Normal(jnp.zeros(2), 1.0)),
            "mixture_logits must be finite",
        ),
        (
            lambda: jaxkl.Mixture(0.0, jaxkl.Normal(jnp.zeros(1), 1.0)),
            r"mixture_logits must have at least 1 dimension",
        ),
        (
            lambda: jaxkl.Mixture(jnp.zeros(2), jaxkl.Normal(0.0, 1.0)),
            "components need a batch axis",
        ),
        (lambda: jaxkl.Mixture(jnp.zeros(2), jnp.zeros(2)), "must be a jaxkl Distribution"),
        (
            lambda: jaxkl.Mixture(jnp.zeros((3, 2)), jaxkl.Normal(jnp.zeros((4, 2)), 1.0)),
            "batch shapes do not broadcast",
        ),
    ],
)
def test_bad_input_raises(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_covariance_law_of_total_covariance():
    # Full-covariance components: against the explicit Σ_k w_k (Σ_k + δ_k δ_kᵀ) in float64
    # and against the sample covariance of 100 000 draws (each entry within 5 SE).
    logits = jnp.array([0.0, 1.0, -1.0])
    loc = jnp.array([[-2.0, 0.0], [1.0, 3.0], [0.0, -1.0]])
    tril = jnp.array(
        [[[0.5, 0.0], [0.4, 1.0]], [[1.0, 0.0], [-0.8, 0.3]], [[2.0, 0.0], [0.0, 0.5]]]
    )
    m = jaxkl.Mixture(logits, jaxkl.MultivariateNormalTriL(loc, tril))
    cov = np.asarray(m.covariance(), np.float64)
    w = special.softmax(np.asarray(logits, np.float64))
    mu, L = np.asarray(loc, np.float64), np.asarray(tril, np.float64)
    delta = mu - w @ mu
    ref = sum(w[k] * (L[k] @ L[k].T + np.outer(delta[k], delta[k])) for k in range(3))
    np.testing.assert_allclose(cov, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diagonal(cov), m.variance(), rtol=1e-5)
    n = 100_000
    x = np.asarray(m.sample(jax.random.key(11), (n,)), np.float64)
    c = x - x.mean(0)
    products = c[:, :, None] * c[:, None, :]
    se = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - ref) < 5 * se)


def test_covariance_batched_and_refused_for_scalar_events():
    comps = jaxkl.Independent(jaxkl.Normal(jnp.zeros((2, 3)), jnp.array([1.0, 2.0, 3.0])), 1)
    m = jaxkl.Mixture(jnp.zeros((4, 2)), comps)
    assert m.covariance().shape == (4, 3, 3)
    np.testing.assert_allclose(m.covariance()[0], np.diag([1.0, 4.0, 9.0]), rtol=1e-6)
    scalar = jaxkl.Mixture(jnp.zeros(2), jaxkl.Normal(jnp.zeros(2), 1.0))
    with pytest.raises(ValueError, match="needs vector events"):
        scalar.covariance()
    with pytest.raises(NotImplementedError, match="several modes"):
        scalar.mode()
