"""pareto_khat: recovery of a known generalised-Pareto shape, tail regimes, edge cases,
jit / vmap / grad behaviour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl
from jaxkl.estimators.psis import tail_length

# A few (rows, S) shapes only: each new one compiles afresh.
S = 2000
M = tail_length(S)  # 135
R = 200


def _gpd_log_samples(xi, shape, seed):
    rng = np.random.default_rng(seed)
    return np.log(stats.genpareto(xi).rvs(size=shape, random_state=rng))


def test_tail_length():
    assert [tail_length(s) for s in (20, 21, 100, 2000, 10_000)] == [4, 5, 20, 135, 300]


@pytest.mark.parametrize("xi", [0.2, 0.5, 0.9])
def test_recovers_gpd_shape_within_5_se(xi):
    # Exceedances of a generalised Pareto sample over any threshold are again generalised
    # Pareto with the same shape, so the fitted k̂ targets xi exactly.
    lw = _gpd_log_samples(xi, (R, S), seed=int(xi * 10))
    k = np.asarray(jaxkl.pareto_khat(lw, prior_adjustment=False), np.float64)
    assert k.shape == (R,) and np.all(np.isfinite(k))
    sd = k.std(ddof=1)
    assert abs(k.mean() - xi) < 5 * sd / math.sqrt(R)
    # Zhang & Stephens' estimator is asymptotically efficient: sd ≈ the MLE's
    # (1 + ξ)/√M. The sample sd of R near-normal values has relative SE 1/√(2(R − 1)).
    assert abs(sd / ((1 + xi) / math.sqrt(M)) - 1) < 5 / math.sqrt(2 * (R - 1))


def test_prior_adjustment_shrinks_toward_half():
    lw = _gpd_log_samples(0.9, (R, S), seed=1)
    raw = np.asarray(jaxkl.pareto_khat(lw, prior_adjustment=False), np.float64)
    adj = np.asarray(jaxkl.pareto_khat(lw), np.float64)
    np.testing.assert_allclose(adj, (M * raw + 10 * 0.5) / (M + 10), rtol=1e-5)


def _normal_log_weights(key, q, proposal, shape):
    x = proposal.sample(key, shape)
    return q.log_prob(x) - proposal.log_prob(x)


# CI: k̂ < 0.5 for bounded weights in test_importance.py::test_unbiased_and_stderr_calibrated.
@pytest.mark.slow
def test_light_tails_below_half():
    # q close to the proposal: w = exp(0.1·x + c) has every moment, k = 0.
    lw = _normal_log_weights(
        jax.random.key(0), jaxkl.Normal(0.1, 1.0), jaxkl.Normal(0.0, 1.0), (4000, 50)
    )
    k = jaxkl.pareto_khat(lw, axis=0)
    assert k.shape == (50,)
    assert np.all(np.asarray(k) < 0.5)


# The same weights and check run in CI: test_importance.py::test_bad_proposal_small_ess_….
@pytest.mark.slow
def test_lighter_tailed_proposal_above_0_7_and_finite():
    # x ~ N(0, 0.5²), q = N(0, 2²): log w = 1.875·x² + c, so P(w > t) ~ t^(−1/0.9375):
    # tail shape 0.94, approached slowly (k̂ ≈ 0.82 ± 0.11 at S = 4000). The mean over
    # 50 replicates must clear 0.7 by 5 standard errors.
    reps = 50
    lw = _normal_log_weights(
        jax.random.key(1), jaxkl.Normal(0.0, 2.0), jaxkl.Normal(0.0, 0.5), (4000, reps)
    )
    k = np.asarray(jaxkl.pareto_khat(lw, axis=0), np.float64)
    assert np.all(np.isfinite(k))
    assert k.mean() - 5 * k.std(ddof=1) / math.sqrt(reps) > 0.7


def test_special_values():
    khat = jaxkl.pareto_khat
    assert khat(jnp.zeros(100)) == -jnp.inf  # all equal: no tail at all
    assert khat(jnp.full(100, -jnp.inf)) == -jnp.inf  # all weights zero
    assert khat(jnp.zeros(20)) == jnp.inf  # M = 4 < 5: too few to judge
    assert khat(jnp.zeros(100).at[3].set(jnp.inf)) == jnp.inf
    assert jnp.isnan(khat(jnp.zeros(100).at[3].set(jnp.nan)))
    # Partial ties with the threshold, and some zero weights: finite, not NaN.
    partial = jnp.zeros(100).at[:3].set(1.0).at[50:].set(-jnp.inf)
    assert jnp.isfinite(khat(partial))
    assert jnp.isfinite(khat(jnp.zeros(100).at[:30].set(jnp.arange(30.0))))


def test_extreme_log_weight_range_is_finite_and_shift_invariant():
    lw = jnp.asarray(_gpd_log_samples(0.5, S, seed=3), jnp.float32)
    k = jaxkl.pareto_khat(lw)
    # Weights of e^±1000 overflow float32 in linear space; in log space nothing changes.
    np.testing.assert_allclose(jaxkl.pareto_khat(lw + 1000.0), k, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jaxkl.pareto_khat(lw - 1000.0), k, rtol=1e-4, atol=1e-4)
    # Log weights spanning 2·10⁵ nats: an absurdly heavy tail, still a finite k̂.
    huge = jaxkl.pareto_khat(jnp.arange(100.0) * 2000.0)
    assert jnp.isfinite(huge) and huge > 100


def test_depends_only_on_the_tail_and_not_on_order():
    lw = np.asarray(_gpd_log_samples(0.5, S, seed=4), np.float32)
    k = float(jaxkl.pareto_khat(lw))
    order = np.argsort(lw)
    below = lw.copy()
    below[order[: S - M - 1]] -= 5.0  # the body, below the threshold
    assert float(jaxkl.pareto_khat(below)) == pytest.approx(k, rel=1e-6)
    perm = np.random.default_rng(0).permutation(S)
    assert float(jaxkl.pareto_khat(lw[perm])) == pytest.approx(k, rel=1e-6)


def test_float64_agrees_with_float32():
    lw = _gpd_log_samples(0.7, S, seed=5)
    k32 = jaxkl.pareto_khat(lw.astype(np.float32))
    with jax.enable_x64(True):
        k64 = jaxkl.pareto_khat(lw)
        assert k64.dtype == jnp.float64
    assert k32.dtype == jnp.float32
    np.testing.assert_allclose(k32, k64, rtol=1e-4)


def test_jit_vmap_axis_and_no_retrace():
    lw = jnp.asarray(_gpd_log_samples(0.5, (3, S, 2), seed=6), jnp.float32)
    eager = jaxkl.pareto_khat(lw, axis=1)
    assert eager.shape == (3, 2)
    loop = np.array([[float(jaxkl.pareto_khat(lw[i, :, j])) for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(eager, loop, rtol=1e-5)
    np.testing.assert_allclose(jaxkl.pareto_khat(jnp.moveaxis(lw, 1, -1)), eager, rtol=1e-6)
    vm = jax.vmap(lambda row: jaxkl.pareto_khat(row), in_axes=2, out_axes=1)(lw)
    np.testing.assert_allclose(vm, eager, rtol=1e-5)

    traces = []

    @jax.jit
    def f(x):
        traces.append(1)
        return jaxkl.pareto_khat(x, axis=1)

    np.testing.assert_allclose(f(lw), eager, rtol=1e-5)
    f(lw + 1.0)
    assert len(traces) == 1


def test_gradient_is_zero_not_nan():
    lw = jnp.asarray(_gpd_log_samples(0.5, S, seed=7), jnp.float32)
    g = jax.grad(lambda x: jaxkl.pareto_khat(x))(lw)
    assert np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize(
    "lw, axis, match",
    [(0.0, -1, "at least one dimension"), (np.zeros((2, 30)), 2, "axis 2 out of range")],
)
def test_bad_input_raises(lw, axis, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.pareto_khat(lw, axis=axis)


# ---- Pareto smoothing and the tail diagnostic of raw terms -----------------------------


def _gpdfit_reference(x):
    """Zhang & Stephens (2009) posterior-mean GPD fit of ascending exceedances x, float64,
    written directly from the paper (plain arithmetic, no log-space tricks)."""
    n = x.size
    m = 30 + int(np.sqrt(n))
    x_star = x[int(np.floor(n / 4 + 0.5)) - 1]
    theta = 1 / x[-1] + (1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))) / 3.0 / x_star
    k = np.mean(np.log1p(-theta[:, None] * x[None, :]), axis=1)
    log_lik = n * (np.log(-theta / k) - k - 1)
    w = np.exp(log_lik - log_lik.max())
    theta_hat = np.sum(theta * w / w.sum())
    k = np.mean(np.log1p(-theta_hat * x))
    return k, -k / theta_hat


def _psis_reference(lw):
    """PSIS (Vehtari et al. 2024): tail of the M largest weights replaced by GPD quantiles."""
    lw = np.asarray(lw, np.float64)
    s = lw.size
    m = tail_length(s)
    order = np.argsort(lw)
    cutoff = lw[order[s - m - 1]]
    tail = order[s - m :]
    x = np.exp(lw[tail]) - np.exp(cutoff)
    k, sigma = _gpdfit_reference(x)
    k = (m * k + 10 * 0.5) / (m + 10)
    p = (np.arange(1, m + 1) - 0.5) / m
    quantiles = sigma * np.expm1(-k * np.log1p(-p)) / k
    out = lw.copy()
    out[tail] = np.minimum(np.log(quantiles + np.exp(cutoff)), lw.max())
    return out, k


@pytest.mark.parametrize("seed,scale", [(0, 2.0), (1, 3.0), (2, 1.2)])
def test_psis_smooth_matches_reference(seed, scale):
    with jax.enable_x64(True):
        q, proposal = jaxkl.Normal(0.0, scale), jaxkl.Normal(0.3, 1.0)
        x = proposal.sample(seed, (3000,)).astype(jnp.float64)
        lw = np.asarray(q.log_prob(x) - proposal.log_prob(x), np.float64)
        smoothed, khat = jaxkl.psis_smooth(jnp.asarray(lw))
    want, want_k = _psis_reference(lw)
    np.testing.assert_allclose(np.asarray(smoothed), want, rtol=1e-8, atol=1e-10)
    assert float(khat) == pytest.approx(want_k, rel=1e-8)
    assert np.sum(np.asarray(smoothed) != lw) <= tail_length(3000)


def test_psis_smooth_cuts_variance_of_a_heavy_importance_estimate():
    q, p, proposal = jaxkl.Normal(0.0, 2.0), jaxkl.Normal(1.0, 2.0), jaxkl.Normal(0.0, 1.0)

    def one(key, smooth):
        return jaxkl.importance_kl(key, q, p, proposal, 2000, smooth=smooth)

    keys = jax.random.split(jax.random.key(3), 400)
    plain = jax.jit(jax.vmap(lambda k: one(k, False)))(keys)
    smooth = jax.jit(jax.vmap(lambda k: one(k, True)))(keys)
    assert np.var(np.asarray(smooth.value)) < 0.5 * np.var(np.asarray(plain.value))
    assert smooth.khat_threshold == pytest.approx(min(0.7, 1 - 1 / np.log10(2000)))
    assert plain.khat_threshold == 0.5


def test_tail_khat_light_heavy_and_shift_invariant():
    z = jax.random.normal(jax.random.key(0), (4000,))
    assert float(jaxkl.tail_khat(z)) < 0.3
    heavy = jnp.exp(3.0 * z)
    assert float(jaxkl.tail_khat(heavy, tails="upper")) > 0.5
    assert float(jaxkl.tail_khat(-heavy, tails="lower")) > 0.5
    assert float(jaxkl.tail_khat(-heavy, tails="upper")) < 0.5  # that side is bounded
    np.testing.assert_allclose(
        jaxkl.tail_khat(heavy), jaxkl.tail_khat(heavy + 100.0), rtol=2e-3, atol=2e-3
    )
    assert np.isnan(float(jaxkl.tail_khat(z[:20])))
    with pytest.raises(ValueError, match="tails"):
        jaxkl.tail_khat(z, tails="left")
