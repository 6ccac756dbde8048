"""importance_kl: unbiasedness and calibrated standard errors against closed-form Normal KL
(computed here in numpy), diagnostics for good and bad proposals, the forward-KL use,
callable p, infinite KL, errors, and jit / vmap / grad."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import Parameter

R = 200  # replicates, run as a batch: each batch member gets its own draws
N = 1000  # used wherever possible: every new shape compiles afresh


def _normal_kl(mq, sq, mp, sp):
    """KL(N(mq, sq²) ‖ N(mp, sp²)), textbook formula in float64 (independent of jaxkl)."""
    return math.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5


def _normal_log_density(loc, scale):
    return lambda x: -0.5 * jnp.square((x - loc) / scale) - math.log(scale * math.sqrt(2 * math.pi))


@dataclasses.dataclass(frozen=True, eq=False)
class _HalfNormal(Distribution):
    """Test-local half-normal on [0, ∞): q(x) = 0 for x < 0 exercises zero weights."""

    scale: jax.Array
    parameters = {"scale": Parameter()}

    def log_prob(self, x):
        x, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.scale)
        inside = x >= 0
        lp = -0.5 * jnp.square(x / scale) - jnp.log(scale) + 0.5 * math.log(2 / math.pi)
        return jnp.where(inside, lp, -jnp.inf)


Q, P, WIDE = (0.3, 1.0), (-0.2, 1.5), (0.0, 1.6)


@pytest.mark.parametrize("self_normalized", [False, True])
def test_unbiased_and_stderr_calibrated(self_normalized):
    q = jaxkl.Normal(jnp.full(R, Q[0]), Q[1])
    est = jaxkl.importance_kl(
        jax.random.key(0),
        q,
        jaxkl.Normal(*P),
        jaxkl.Normal(*WIDE),
        N,
        self_normalized=self_normalized,
    )
    assert est.value.shape == est.stderr.shape == est.ess.shape == est.pareto_k.shape == (R,)
    assert est.num_samples == N
    values = np.asarray(est.value, np.float64)
    truth = _normal_kl(*Q, *P)
    spread = values.std(ddof=1)
    # Plain IS is unbiased; the self-normalised bias −E[w²(f − KL)]/n is O(1e-3) here,
    # far below the 5 SE of the replicate mean.
    assert abs(values.mean() - truth) < 5 * spread / math.sqrt(R)
    # The reported stderr matches the replicate spread; the sample sd of R near-normal
    # values has relative standard error 1/√(2(R − 1)).
    ratio = spread / np.asarray(est.stderr, np.float64).mean()
    assert abs(ratio - 1) < 5 / math.sqrt(2 * (R - 1))
    ess = np.asarray(est.ess)
    assert np.all((ess >= 1) & (ess <= N)) and ess.mean() > 0.5 * N
    assert np.all(np.asarray(est.pareto_k) < 0.5)


def test_bad_proposal_small_ess_and_large_khat():
    reps, n = 50, 4000
    q = jaxkl.Normal(0.0, jnp.full(reps, 2.0))
    est = jaxkl.importance_kl(1, q, jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 0.5), n)
    ess, k = np.asarray(est.ess), np.asarray(est.pareto_k, np.float64)
    assert np.all((ess >= 1) & (ess <= n))
    assert np.all(ess < n / 5) and ess.mean() < n / 10
    assert np.all(np.isfinite(k)) and np.all(np.isfinite(np.asarray(est.value)))
    # True tail shape 0.94, approached slowly; the mean k̂ clears 0.7 by 5 SE.
    assert k.mean() - 5 * k.std(ddof=1) / math.sqrt(reps) > 0.7


def test_proposal_equal_to_q_is_plain_monte_carlo():
    q, p = jaxkl.Normal(*Q), jaxkl.Normal(*P)
    key = jax.random.key(2)
    est = jaxkl.importance_kl(key, q, p, q, N)
    x = q.sample(key, (N,))
    np.testing.assert_allclose(est.value, jnp.mean(q.log_prob(x) - p.log_prob(x)), rtol=1e-6)
    assert float(est.ess) == N
    assert float(est.pareto_k) == -np.inf  # every weight is exactly 1


def test_forward_kl_from_samples_of_q():
    # KL(p‖q) with x ~ q reweighted by p/q: the docstring's example.
    q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.2)
    est = jaxkl.importance_kl(3, p, q, proposal=q, num_samples=20_000)
    assert abs(float(est.value) - _normal_kl(0.5, 1.2, 0.0, 1.0)) < 5 * float(est.stderr)
    assert float(est.pareto_k) < 0.7


@pytest.mark.parametrize("self_normalized", [False, True])
def test_callable_p_equals_distribution_p(self_normalized):
    q, proposal = jaxkl.Normal(*Q), jaxkl.Normal(*WIDE)
    kw = {"self_normalized": self_normalized}
    by_dist = jaxkl.importance_kl(4, q, jaxkl.Normal(*P), proposal, N, **kw)
    by_fn = jaxkl.importance_kl(4, q, _normal_log_density(*P), proposal, N, **kw)
    np.testing.assert_allclose(by_fn.value, by_dist.value, rtol=1e-5)
    np.testing.assert_allclose(by_fn.stderr, by_dist.stderr, rtol=1e-4)
    if self_normalized:
        # Unnormalised p̃ = Z·p: the self-normalised value moves by exactly −log Z.
        log_z = 3.0
        fn = _normal_log_density(*P)
        shifted = jaxkl.importance_kl(4, q, lambda x: fn(x) + log_z, proposal, N, **kw)
        np.testing.assert_allclose(shifted.value, by_dist.value - log_z, rtol=1e-5)


@pytest.mark.parametrize("self_normalized", [False, True])
def test_infinite_kl_when_p_vanishes_on_q_support(self_normalized):
    half = _HalfNormal(1.0)
    est = jaxkl.importance_kl(
        5,
        jaxkl.Normal(0.0, 1.0),
        half.log_prob,
        jaxkl.Normal(*WIDE),
        N,
        self_normalized=self_normalized,
    )
    assert float(est.value) == np.inf and float(est.stderr) == np.inf
    assert np.isfinite(float(est.ess)) and not np.isnan(float(est.pareto_k))


def test_zero_weights_count_zero():
    # q = half-normal: half the draws of N(0, 1.5²) have q(x) = 0 and f = −inf − log p.
    # KL(half-normal ‖ N(0, 1)) = E_q[log 2] = log 2.
    est = jaxkl.importance_kl(
        6, _HalfNormal(1.0), jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.5), 20_000
    )
    assert np.isfinite(float(est.value))
    assert abs(float(est.value) - math.log(2)) < 5 * float(est.stderr)


def test_shapes_broadcast_and_events():
    run = jax.jit(lambda q, p, r: jaxkl.importance_kl(7, q, p, r, N))
    q = jaxkl.Normal(jnp.zeros((3, 1)), 1.0)
    p = jaxkl.Normal(jnp.linspace(-1.0, 1.0, 4), 1.0)
    est = run(q, p, jaxkl.Normal(0.0, 1.5))
    for a in (est.value, est.stderr, est.ess, est.pareto_k):
        assert a.shape == (3, 4)
    # The proposal has no batch axes, so each of the 3 identical q rows gets its own draws.
    assert len(set(np.asarray(est.value)[:, 0].tolist())) == 3
    mq = jaxkl.MultivariateNormalDiag(jnp.zeros((3, 2)), jnp.ones(2))
    mp = jaxkl.MultivariateNormalDiag(jnp.ones(2), jnp.ones(2))
    # Only the shape is checked with events: eval_shape traces the same program without
    # compiling it.
    est = jax.eval_shape(run, mq, mp, jaxkl.MultivariateNormalDiag(jnp.zeros(2), 1.5 * jnp.ones(2)))
    assert est.value.shape == (3,)


def test_key_forms_agree():
    args = (jaxkl.Normal(*Q), jaxkl.Normal(*P), jaxkl.Normal(*WIDE), N)
    ref = jaxkl.importance_kl(jax.random.key(8), *args).value
    assert jaxkl.importance_kl(8, *args).value == ref
    assert jaxkl.importance_kl(jax.random.PRNGKey(8), *args).value == ref


def test_num_samples_one():
    est = jaxkl.importance_kl(9, jaxkl.Normal(*Q), jaxkl.Normal(*P), jaxkl.Normal(*WIDE), 1)
    assert np.isfinite(float(est.value)) and float(est.stderr) == np.inf
    assert float(est.ess) == 1.0 and float(est.pareto_k) == np.inf
    sn = jaxkl.importance_kl(
        9, jaxkl.Normal(*Q), jaxkl.Normal(*P), jaxkl.Normal(*WIDE), 1, self_normalized=True
    )
    assert float(sn.stderr) == np.inf


def _mvn(d):
    return jaxkl.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d))


@pytest.mark.parametrize(
    "args, error, match",
    [
        (
            (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), 0),
            ValueError,
            "num_samples must be >= 1",
        ),
        (
            (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), 2.5),
            TypeError,
            "num_samples must be a Python int",
        ),
        (
            (jaxkl.Normal(0.0, 1.0), 3.0, jaxkl.Normal(0.0, 1.0), 10),
            TypeError,
            "p must be a jaxkl distribution or a callable",
        ),
        (
            (lambda x: x, jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), 10),
            TypeError,
            "q must be a jaxkl distribution",
        ),
        (
            (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 1.0), "normal", 10),
            TypeError,
            "proposal must be a jaxkl distribution",
        ),
        (
            (_mvn(3), _mvn(4), _mvn(3), 10),
            ValueError,
            r"event shapes must agree; got q \(3,\), proposal \(3,\), p \(4,\)",
        ),
        (
            (_mvn(3), _mvn(3), _mvn(4), 10),
            ValueError,
            r"event shapes must agree; got q \(3,\), proposal \(4,\)",
        ),
        (
            (
                jaxkl.Normal(jnp.zeros(3), 1.0),
                jaxkl.Normal(jnp.zeros(4), 1.0),
                jaxkl.Normal(0.0, 1.0),
                10,
            ),
            ValueError,
            r"batch shapes do not broadcast: q \(3,\), proposal \(\), p \(4,\)",
        ),
        (
            (
                jaxkl.Normal(jnp.zeros(3), 1.0),
                lambda x: jnp.zeros(x.shape[:1]),
                jaxkl.Normal(0.0, 1.0),
                10,
            ),
            ValueError,
            r"p\(x\) must return log densities of shape \(10, 3\)",
        ),
    ],
)
def test_bad_input_raises(args, error, match):
    with pytest.raises(error, match=match):
        jaxkl.importance_kl(0, *args)


# jit = eager for value, stderr, ess and k̂ is CI's test_vmap_over_pairs_equals_loop below
# (jit(vmap) against eager calls, every field); no retrace for importance_kl is CI's
# tests/estimators/test_conformance.py::test_conformance[importance-snis]: --run-slow.
@pytest.mark.slow
def test_jit_equals_eager_and_no_retrace():
    proposal = jaxkl.Normal(*WIDE)
    traces = []

    @jax.jit
    def f(q, p):
        traces.append(1)
        return jaxkl.importance_kl(10, q, p, proposal, N)

    q, p = jaxkl.Normal(*Q), jaxkl.Normal(*P)
    eager = jaxkl.importance_kl(10, q, p, proposal, N)
    jitted = f(q, p)
    for name in ("value", "stderr", "ess"):
        np.testing.assert_allclose(getattr(jitted, name), getattr(eager, name), rtol=1e-5)
    # k̂ is fitted to exceedances w − u of nearly equal weights, so a one-ulp difference
    # in the log weights (fused vs unfused float32) moves it by ~1e-5 relative.
    np.testing.assert_allclose(jitted.pareto_k, eager.pareto_k, rtol=2e-4)
    f(jaxkl.Normal(0.1, 1.1), p)
    assert len(traces) == 1


def test_vmap_over_pairs_equals_loop():
    locs_q, locs_p = jnp.array([0.0, 0.3, -0.5]), jnp.array([1.0, -0.2, 0.4])
    qs, ps = jaxkl.Normal(locs_q, 1.0), jaxkl.Normal(locs_p, 1.3)
    proposal = jaxkl.Normal(*WIDE)
    key = jax.random.key(11)
    batched = jax.jit(jax.vmap(lambda q, p: jaxkl.importance_kl(key, q, p, proposal, N)))(qs, ps)
    for i in range(3):
        one = jaxkl.importance_kl(
            key, jaxkl.Normal(locs_q[i], 1.0), jaxkl.Normal(locs_p[i], 1.3), proposal, N
        )
        for name in ("value", "stderr", "ess"):
            np.testing.assert_allclose(getattr(batched, name)[i], getattr(one, name), rtol=1e-5)
        # As in the jit test: k̂ sees one-ulp differences in the log weights amplified.
        np.testing.assert_allclose(batched.pareto_k[i], one.pareto_k, rtol=2e-4)


def test_grad_finite_equals_finite_differences_and_unbiased():
    proposal = jaxkl.Normal(*WIDE)
    with jax.enable_x64(True):
        proposal64 = jaxkl.Normal(*WIDE)

        @jax.jit
        def value(loc):
            q = jaxkl.Normal(loc, 1.0)
            return jaxkl.importance_kl(12, q, jaxkl.Normal(*P), proposal64, N).value

        g = float(jax.jit(jax.grad(value))(0.3))
        h = 1e-5
        fd = (float(value(0.3 + h)) - float(value(0.3 - h))) / (2 * h)
        assert np.isfinite(g)
        assert g == pytest.approx(fd, rel=1e-6)

    # Averaged over R replicates the gradient matches ∂KL/∂μ_q = (μ_q − μ_p)/σ_p².
    def total(locs):
        q = jaxkl.Normal(locs, Q[1])
        return jnp.sum(jaxkl.importance_kl(13, q, jaxkl.Normal(*P), proposal, N).value)

    grads = np.asarray(jax.jit(jax.grad(total))(jnp.full(R, Q[0])), np.float64)
    assert np.all(np.isfinite(grads))
    truth = (Q[0] - P[0]) / P[1] ** 2
    assert abs(grads.mean() - truth) < 5 * grads.std(ddof=1) / math.sqrt(R)


def test_forward_kl_gradient_with_stopped_proposal():
    # The documented recipe: ∇ KL(p‖q_θ) from draws of q_θ, with the proposal held fixed.
    mp, sp = 0.5, 1.2

    @jax.jit
    @jax.grad
    def total(locs):
        q = jaxkl.Normal(locs, 1.0)
        est = jaxkl.importance_kl(14, jaxkl.Normal(mp, sp), q, jax.lax.stop_gradient(q), N)
        return jnp.sum(est.value)

    grads = np.asarray(total(jnp.zeros(R)), np.float64)
    truth = (0.0 - mp) / 1.0**2  # ∂KL(p‖q)/∂μ_q = (μ_q − μ_p)/σ_q²
    assert abs(grads.mean() - truth) < 5 * grads.std(ddof=1) / math.sqrt(R)
