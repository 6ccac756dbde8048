"""sequence_kl: unbiased for KL_seq (k1, k3) on- and off-policy, k3's check, prompts by vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.rl import kl_surrogate, sequence_kl, token_kl
from tests.rl.problem import BEHAVIOUR, PROBLEM, REF, THETA

R, B = 400, 64  # 25 600 sequences per check


def _replicates(estimator, law=THETA, off_policy=False, shift=0.0, **kw):
    def one(key):
        b = PROBLEM.sample(key, law, B)
        old = b.log_probs(law) if off_policy else None
        est = sequence_kl(
            b.log_probs(THETA),
            b.log_probs(REF) + shift,
            b.mask,
            estimator=estimator,
            old_logp=old,
            **kw,
        )
        return est.value, est.checks_passed

    v, ok = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(11), R))
    v = np.asarray(v, np.float64)
    return v.mean(), v.std(ddof=1) / np.sqrt(R), np.asarray(ok)


def _exact_k2_sum(theta):
    seqs = PROBLEM.sequences
    k2 = token_kl(seqs.log_probs(theta), seqs.log_probs(REF), seqs.mask, estimator="k2")
    return float(jnp.exp(PROBLEM.sequence_log_probs(theta)) @ k2.sum(1))


# On-policy (old_logp=None) is the off-policy computation with prefix weights
# exp(logp − stop_gradient(logp)) = 1: CI runs the off-policy case (k1 and k3 unbiased
# with the weights, k2 biased and equal to its own expectation, k1 without the ratio
# biased), holds on-policy k1 to KL_seq by the coverage of its intervals
# (tests/rl/test_aggregate.py::test_intervals_cover_across_sequences_on_the_toy) and runs
# on-policy k3 in test_k3_check_passes_on_policy_and_catches_an_unnormalised_reference:
# --run-slow.
@pytest.mark.parametrize(
    "off_policy",
    [
        pytest.param(False, marks=pytest.mark.slow, id="on-policy"),
        pytest.param(True, id="off-policy"),
    ],
)
def test_k1_k3_unbiased_k2_biased(off_policy):
    law = BEHAVIOUR if off_policy else THETA
    truth = float(PROBLEM.kl_seq(THETA, REF))
    for estimator in ("k1", "k3"):
        mean, se, _ = _replicates(estimator, law, off_policy)
        assert abs(mean - truth) < 5 * se, (estimator, mean, truth, se)
    mean, se, _ = _replicates("k2", law, off_policy)
    assert abs(mean - truth) > 5 * se  # k2 estimates E[Σ ½ log² r], not the KL
    assert abs(mean - _exact_k2_sum(THETA)) < 5 * se
    if off_policy:  # without the ratio, samples of b estimate b's average, not π's
        mean, se, _ = _replicates("k1", law, off_policy=False)
        assert abs(mean - truth) > 5 * se


def test_k3_check_passes_on_policy_and_catches_an_unnormalised_reference():
    _, _, ok = _replicates("k3")
    assert ok.mean() > 0.95  # |mean(Σ(r − 1))| ≤ 3 SE: ≈ 99.7 % under the null
    _, _, ok = _replicates("k3", shift=0.5)  # π_ref·e^0.5 is not normalised: E[r] = e^0.5
    assert ok.mean() < 0.05


def test_value_gradient_is_the_prefix_corrected_loss():
    b = PROBLEM.sample(3, THETA, 32)
    lq = b.log_probs(REF)
    for estimator in ("k1", "k3"):
        g = jax.grad(
            lambda t, e=estimator: sequence_kl(b.log_probs(t), lq, b.mask, estimator=e).value
        )(THETA)
        want = jax.grad(
            lambda t, e=estimator: kl_surrogate(
                b.log_probs(t), lq, b.mask, estimator=e, placement="loss", correction="prefix"
            )
        )(THETA)
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)


def test_vmap_over_prompts_and_empty_rows():
    b = PROBLEM.sample(4, THETA, 24)
    shape = (3, 8, PROBLEM.horizon)  # 3 prompts × 8 sequences
    lp, lq = b.log_probs(THETA).reshape(shape), b.log_probs(REF).reshape(shape)
    mask = b.mask.reshape(shape).at[1, :3].set(False)  # prompt 1 has 3 padding rows
    est = jax.jit(jax.vmap(lambda x, y, m: sequence_kl(x, y, m, estimator="k3")))(lp, lq, mask)
    assert est.value.shape == (3,) and est.dof == 7
    for i in range(3):
        one = sequence_kl(lp[i], lq[i], mask[i], estimator="k3")
        np.testing.assert_allclose(est.value[i], one.value, rtol=1e-6)
        np.testing.assert_allclose(est.stderr[i], one.stderr, rtol=1e-5)
    assert float(est.diagnostics["num_sequences"][1]) == 5.0
    empty = sequence_kl(lp[0], lq[0], jnp.zeros_like(mask[0]), estimator="k3")
    assert float(empty.value) == 0.0 and not bool(empty.reliable)
    with pytest.raises(ValueError, match="estimator must be one of"):
        sequence_kl(lp[0], lq[0], mask[0], estimator="k3+")
