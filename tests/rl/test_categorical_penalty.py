"""jaxkl.rl.categorical_penalty.regularised_optima: the optima the KL-penalty study aims at."""

import math

import jax
import numpy as np
import pytest

from jaxkl.rl.categorical_penalty import regularised_optima


def _problem(k=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1.5, k), rng.normal(0, 1.0, k)


def _log_p(ref):
    # As regularised_optima takes it: JAX's log_softmax (float32), then float64.
    return np.asarray(jax.nn.log_softmax(ref), np.float64)


def _objectives(q, log_p, r, beta):
    """E_q[r] − β·KL(q‖p) and E_q[r] − β·KL(p‖q) in float64."""
    p = np.exp(log_p)
    return q @ r - beta * np.sum(q * (np.log(q) - log_p)), q @ r - beta * np.sum(
        p * (log_p - np.log(q))
    )


@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_each_optimum_beats_every_nearby_policy(beta):
    ref, reward = _problem()
    log_p = _log_p(ref)
    opt = regularised_optima(ref, reward, beta)
    rev_q = np.exp(log_p + reward / beta - np.logaddexp.reduce(log_p + reward / beta))
    assert opt["reverse"]["reward"] == pytest.approx(rev_q @ reward, rel=1e-12)
    assert opt["reverse"]["kl_qp"] == pytest.approx(np.sum(rev_q * np.log(rev_q / np.exp(log_p))))
    best = {
        name: opt[name]["reward"] - beta * opt[name][kl]
        for name, kl in (("reverse", "kl_qp"), ("forward", "kl_pq"))
    }
    rng = np.random.default_rng(1)
    for _ in range(200):
        q = np.exp(np.log(rev_q) + rng.normal(0, 0.3, rev_q.size))
        q /= q.sum()
        reverse, forward = _objectives(q, log_p, reward, beta)
        assert reverse <= best["reverse"] + 1e-12
        assert forward <= best["forward"] + 1e-12


def test_without_penalty_the_policy_collapses_on_the_best_token():
    ref, reward = _problem()
    log_p = _log_p(ref)
    unreg = regularised_optima(ref, reward, 1.0)["unregularised"]
    assert unreg["kl_qp"] == pytest.approx(-log_p[np.argmax(reward)])
    assert unreg["kl_pq"] == math.inf and unreg["reward"] == pytest.approx(reward.max())
