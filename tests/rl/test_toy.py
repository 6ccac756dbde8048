"""The toy oracle against independent computations: brute force in numpy, jaxkl.kl, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.rl.toy import SequenceToy
from jaxkl.rl.training import kl_to_optimum
from tests._subset import slow_except
from tests.rl.problem import PROBLEM, REF, THETA


def _brute_force_log_probs(problem, theta):
    """log π(y) of every sequence by walking the token tree in numpy float64.

    Independent of the toy's tables: states are numbered here by first visit in the same
    depth-first order the toy documents, and checked against its own numbering.
    """
    theta = np.asarray(theta, np.float64)
    log_pi = theta - np.logaddexp.reduce(theta, axis=-1, keepdims=True)
    states, out = {}, {}

    def walk(prefix, logp):
        sid = states.setdefault(prefix, len(states))
        for v in range(problem.vocab_size):
            y, lp = (*prefix, v), logp + log_pi[sid, v]
            if v == problem.end_token or len(y) == problem.horizon:
                out[y] = lp
            else:
                walk(y, lp)

    walk((), 0.0)
    return out


_TOYS = [(4, 3, 0), (3, 2, 0), (3, 3, None), (2, 4, 1)]


# CI keeps the tests' toy (end token 0), no end token and end token 1; (3, 2, 0) is a second
# size of the first's path: --run-slow.
@pytest.mark.parametrize(
    "vocab, horizon, end",
    slow_except(
        _TOYS,
        ["-".join(map(str, toy)) for toy in _TOYS],
        {"4-3-0", "3-3-None", "2-4-1"},
        unpack=True,
    ),
)
def test_enumeration_matches_brute_force(vocab, horizon, end):
    problem = SequenceToy(vocab, horizon, end)
    theta = problem.random_logits(0, 1.5, jnp.float32)
    brute = _brute_force_log_probs(problem, theta)
    assert problem.num_sequences == len(brute)
    if end is None:
        assert problem.num_sequences == vocab**horizon
    seqs = problem.sequences
    got = np.asarray(problem.sequence_log_probs(theta), np.float64)
    for i in range(problem.num_sequences):
        y = tuple(int(t) for t in np.asarray(seqs.tokens[i])[np.asarray(seqs.mask[i])])
        np.testing.assert_allclose(got[i], brute[y], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(got).sum(), 1.0, rtol=1e-6)


def test_kl_seq_three_ways():
    with jax.enable_x64(True):
        th, ref = (jnp.asarray(np.asarray(a), jnp.float64) for a in (THETA, REF))
        kl = float(PROBLEM.kl_seq(th, ref))
        # a categorical over whole sequences, through jaxkl's own kernel
        seq_kl = jaxkl.kl(
            jaxkl.Categorical(PROBLEM.sequence_log_probs(th)),
            jaxkl.Categorical(PROBLEM.sequence_log_probs(ref)),
        )
        np.testing.assert_allclose(kl, float(seq_kl), rtol=1e-12)
        # the chain rule: Σ over prefixes of P(prefix)·KL of the next-token laws
        np.testing.assert_allclose(kl, float(PROBLEM.token_kl_sum(th, ref)), rtol=1e-12)
        brute_p = _brute_force_log_probs(PROBLEM, th)
        brute_q = _brute_force_log_probs(PROBLEM, ref)
        brute = sum(np.exp(lp) * (lp - brute_q[y]) for y, lp in brute_p.items())
        np.testing.assert_allclose(kl, brute, rtol=1e-12)


def test_sampler_is_exact():
    n = 200_000
    batch = jax.jit(lambda k: PROBLEM.sample(k, THETA, n))(jax.random.key(3))
    p = np.exp(np.asarray(PROBLEM.sequence_log_probs(THETA), np.float64))
    counts = np.bincount(np.asarray(batch.index), minlength=PROBLEM.num_sequences)
    z = (counts / n - p) / np.sqrt(p * (1 - p) / n)
    assert np.max(np.abs(z)) < 5
    seqs = PROBLEM.sequences
    for name in ("tokens", "states", "mask"):
        np.testing.assert_array_equal(
            getattr(batch, name), np.asarray(getattr(seqs, name))[np.asarray(batch.index)]
        )
    # each state is reached with the probability the oracle says
    visits = np.zeros(PROBLEM.num_states)
    np.add.at(visits, np.asarray(batch.states)[np.asarray(batch.mask)], 1.0)
    d = np.asarray(PROBLEM.state_probs(THETA), np.float64)
    assert d[0] == pytest.approx(1.0)
    assert np.max(np.abs(visits / n - d) / np.sqrt(d * (1 - d) / n + 1e-12)) < 5


def test_optimum_is_the_regularised_maximiser():
    with jax.enable_x64(True):
        ref = jnp.asarray(np.asarray(REF), jnp.float64)
        reward = PROBLEM.random_reward(2, 1.0, jnp.float64)
        beta = 0.5
        log_opt = PROBLEM.optimum_log_probs(ref, reward, beta)
        star = PROBLEM.optimum_logits(ref, reward, beta)
        np.testing.assert_allclose(PROBLEM.sequence_log_probs(star), log_opt, atol=1e-12)
        assert abs(float(kl_to_optimum(PROBLEM, star, log_opt))) < 1e-12

        def objective(theta):
            expected = jnp.exp(PROBLEM.sequence_log_probs(theta)) @ reward
            return expected - beta * PROBLEM.kl_seq(theta, ref)

        assert float(jnp.max(jnp.abs(jax.grad(objective)(star)))) < 1e-12
        for seed in range(5):
            other = star + PROBLEM.random_logits(seed, 0.3, jnp.float64)
            # J(π*) − J(π) = β·KL(π‖π*) exactly
            gap = float(objective(star) - objective(other))
            np.testing.assert_allclose(
                gap, beta * float(kl_to_optimum(PROBLEM, other, log_opt)), rtol=1e-9
            )


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="vocab_size >= 2"):
        SequenceToy(1, 3)
    with pytest.raises(ValueError, match="end_token must be in"):
        SequenceToy(3, 3, end_token=3)
    with pytest.raises(ValueError, match="too many to list"):
        PROBLEM.expected_surrogate_gradient(
            THETA, REF, jaxkl.rl.KLConfig("reward", "k1"), batch_size=4
        )
