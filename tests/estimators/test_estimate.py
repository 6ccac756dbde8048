"""The Estimate type: static metadata, intervals, reliability, arithmetic, refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl
from jaxkl.estimators.estimate import Estimate, mean_with_stderr, sum_estimates
from tests._subset import slow_except

Q, P = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)


def _estimators():
    x = Q.sample(0, (200,))
    y = P.sample(1, (200,))
    return {
        "mc_kl": lambda s: jaxkl.mc_kl(0, jaxkl.Normal(s, 1.0), P, 64),
        "mc_kl-antithetic": lambda s: jaxkl.mc_kl(0, jaxkl.Normal(s, 1.0), P, 64, antithetic=True),
        "mc_kl-qmc": lambda s: jaxkl.mc_kl(0, jaxkl.Normal(s, 1.0), P, 64, qmc=True),
        "kl_from_log_probs": lambda s: jaxkl.kl_from_log_probs(Q.log_prob(x) + s, P.log_prob(x)),
        "importance_kl": lambda s: jaxkl.importance_kl(
            0, jaxkl.Normal(s, 1.0), P, jaxkl.Normal(0.0, 1.5), 64
        ),
        "knn_kl": lambda s: jaxkl.knn_kl(x + s, y),
    }


EXPECTED_DOF = {
    "mc_kl": 63,
    "mc_kl-antithetic": 31,
    "mc_kl-qmc": 31,
    "kl_from_log_probs": 199,
    "importance_kl": 63,
    "knn_kl": 9,
}


# The antithetic and QMC variants compile their own vmapped programs (5-6 s of CPU each):
# --run-slow. So do knn_kl and importance_kl, whose static fields CI checks elsewhere:
# knn_kl's dof (G − 1, a Python int under jit) in test_knn.py::test_dof_is_subsample_…
# and test_coverage.py::test_knn_ci_covers (dof 9 under jit, t₉ intervals under vmap);
# importance_kl's ImportanceEstimate leaves jit∘vmap with its static fields in
# test_psis.py::test_psis_smooth_cuts_variance_… and its ci reads the static dof under
# vmap in test_coverage.py::test_ci_covers[importance]. kl_from_log_probs builds its
# Estimate with mc_kl's own _estimate_from_terms (dof n − 1), which the mc_kl case checks
# here. --run-slow.
_SLOW_DOF = {"mc_kl-antithetic", "mc_kl-qmc", "knn_kl", "importance_kl", "kl_from_log_probs"}


@pytest.mark.parametrize(
    "name",
    slow_except(EXPECTED_DOF, list(EXPECTED_DOF), keep=set(EXPECTED_DOF) - _SLOW_DOF),
)
def test_dof_and_num_samples_are_python_ints_under_jit_and_vmap(name):
    fn = _estimators()[name]
    for est in (fn(0.0), jax.jit(fn)(0.0), jax.vmap(fn)(jnp.zeros(2))):
        assert type(est.num_samples) is int and type(est.dof) is int
        assert est.dof == EXPECTED_DOF[name]
    batched = jax.vmap(fn)(jnp.zeros(2))
    assert batched.value.shape == (2,) and batched.pareto_k.shape == (2,)


def test_ci_is_student_t_with_dof():
    est = mean_with_stderr(jnp.array([1.0, 2.0, 4.0, 7.0]))
    low, high = est.ci(0.9)
    half = stats.t.ppf(0.95, 3) * float(est.stderr)
    np.testing.assert_allclose([low, high], [3.5 - half, 3.5 + half], rtol=1e-6)
    one = mean_with_stderr(jnp.array([1.0]))
    assert one.dof == 0 and one.ci()[0] == -jnp.inf and one.ci()[1] == jnp.inf
    with pytest.raises(ValueError, match="level"):
        est.ci(1.5)


def test_reliable_reads_tail_stderr_and_own_check():
    v = jnp.array([1.0, 1.0])
    ok = Estimate(v, jnp.array([0.1, 0.1]), 100, pareto_k=jnp.array([0.2, 0.6]))
    assert ok.reliable.tolist() == [True, False]
    nan_k = Estimate(v, jnp.array([0.1, jnp.inf]), 10)  # k̂ NaN: too few terms
    assert nan_k.reliable.tolist() == [True, False]
    checked = Estimate(v, jnp.array([0.1, 0.1]), 100, checks_passed=jnp.array([False, True]))
    assert checked.reliable.tolist() == [False, True]
    smoothed = Estimate(v, v, 100, pareto_k=jnp.array([0.6, 0.8]), khat_threshold=0.7)
    assert smoothed.reliable.tolist() == [True, False]


def test_mean_with_stderr_tail_diagnostic():
    z = jax.random.normal(jax.random.key(0), (4000,))
    assert float(mean_with_stderr(z).pareto_k) < 0.3
    assert float(mean_with_stderr(jnp.exp(3.0 * z)).pareto_k) > 0.5
    assert not bool(mean_with_stderr(jnp.exp(3.0 * z)).reliable)
    assert np.isnan(float(mean_with_stderr(z[:20]).pareto_k))  # ≤ 20 terms: no fit
    with pytest.raises(ValueError, match="out of range"):
        mean_with_stderr(z, axis=3)
    with pytest.raises(ValueError, match="at least one dimension"):
        mean_with_stderr(jnp.asarray(1.0))


def test_arithmetic_of_independent_estimates():
    a = mean_with_stderr(jnp.array([1.0, 2.0, 3.0]))
    b = mean_with_stderr(jnp.array([0.0, 2.0, 4.0, 6.0]))
    s = a + b
    assert float(s.value) == 5.0
    np.testing.assert_allclose(s.stderr, np.hypot(a.stderr, b.stderr), rtol=1e-6)
    assert s.dof == 2 and s.num_samples == 7
    d = a - b
    assert float(d.value) == -1.0 and float(d.stderr) == pytest.approx(float(s.stderr))
    scaled = -2.0 * a
    assert float(scaled.value) == -4.0
    assert float(scaled.stderr) == pytest.approx(2 * float(a.stderr))
    shifted = a + 1.0
    assert float(shifted.value) == 3.0 and float(shifted.stderr) == float(a.stderr)
    assert float((1.0 - a).value) == -1.0
    assert float((a / 2.0).stderr) == pytest.approx(float(a.stderr) / 2)
    total = sum_estimates([a, b, a])
    np.testing.assert_allclose(total.stderr, np.sqrt(2 * a.stderr**2 + b.stderr**2), rtol=1e-6)


# CI: the formula in test_arithmetic_of_independent_estimates; mc_kl's stderr held to its
# replicates in test_coverage.py::test_ci_covers[k1].
@pytest.mark.slow
def test_sum_stderr_matches_replicates():
    """stderr of a sum of two independent estimates = √(se₁² + se₂²), checked against the
    spread of 2000 replicate sums (within 5 SE of a variance ratio)."""
    q2, p2 = jaxkl.Normal(0.0, 2.0), jaxkl.Normal(0.5, 1.5)

    def one(key):
        k1, k2 = jax.random.split(key)
        s = jaxkl.mc_kl(k1, Q, P, 256) + jaxkl.mc_kl(k2, q2, p2, 128)
        return s.value, s.stderr

    v, se = map(np.asarray, jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(5), 2000)))
    ratio = np.mean(se**2) / v.var(ddof=1)
    assert abs(ratio - 1.0) < 5 * np.sqrt(2.0 / 2000), ratio


def test_refusals():
    est = mean_with_stderr(jnp.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"est\.value"):
        float(est)
    with pytest.raises(TypeError, match=r"est\.value"):
        np.asarray(est)
    with pytest.raises(TypeError, match="not a tuple"):
        tuple(est)
    pair = (1.0, 2.0)
    with pytest.raises(TypeError):
        est + pair  # no silent tuple concatenation
    with pytest.raises(TypeError, match="not supported"):
        est * est
    with pytest.raises(TypeError, match="Python int"):
        Estimate(jnp.zeros(()), jnp.zeros(()), jnp.asarray(3))


def test_pytree_roundtrip_keeps_static_fields():
    est = jaxkl.mc_kl(0, Q, P, 32, estimator="k3")
    leaves, tree = jax.tree.flatten(est)
    again = jax.tree.unflatten(tree, leaves)
    assert (again.num_samples, again.dof) == (32, 31)
    assert set(again.diagnostics) == set(est.diagnostics)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), est, est)
    assert stacked.value.shape == (2,) and stacked.num_samples == 32
