"""The configuration table, proved exactly: every statement by enumeration on the toy.

No sampling here: each expectation is a finite sum over all sequences (or all pairs), in
float64, so every equality holds to rounding and every inequality by a wide margin.
"""

import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.rl import KLConfig, all_configs, expected_gradient, kl_surrogate
from jaxkl.rl.configurations import (
    LEMMAS,
    is_exact_regulariser,
    is_unbiased,
    named_gradient,
    render_table,
)
from jaxkl.rl.toy import SequenceToy
from tests.rl.problem import BEHAVIOUR, PROBLEM, REF, THETA

CONFIGS = all_configs()


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        th, ref, b = (jnp.asarray(np.asarray(a), jnp.float64) for a in (THETA, REF, BEHAVIOUR))
        yield th, ref, b, PROBLEM.exact_gradients(th, ref)


def _rel(a, b, scale):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(scale))


def test_docstring_table_is_the_rendered_table():
    doc = inspect.cleandoc(kl_surrogate.__doc__)
    assert render_table() in doc, "kl_surrogate's table is stale: paste render_table()"
    assert len(CONFIGS) == 21


def test_lemmas_hold_exactly(x64):
    exact = x64[3]
    for primitive, named in LEMMAS.items():
        got = exact[primitive]
        want = PROBLEM.stated_gradient(exact, named) if named else jnp.zeros_like(got)
        assert _rel(got, want, exact["kl_seq"]) < 1e-12, primitive
    # The lemmas are not vacuous: the three named gradients are far apart here.
    for a, b in (("kl_seq", "token_reverse"), ("kl_seq", "token_forward")):
        assert _rel(exact[a], exact[b], exact["kl_seq"]) > 0.2


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_each_row_on_policy_by_enumeration(config, x64):
    th, ref, _, exact = x64
    got = PROBLEM.expected_surrogate_gradient(th, ref, config)
    stated = PROBLEM.stated_gradient(exact, expected_gradient(config))
    assert _rel(got, stated, exact["kl_seq"]) < 1e-12
    named = PROBLEM.stated_gradient(exact, named_gradient(expected_gradient(config)))
    assert _rel(named, stated, exact["kl_seq"]) < 1e-12
    distance = _rel(stated, exact["kl_seq"], exact["kl_seq"])
    assert (distance < 1e-12) if is_unbiased(config) else (distance > 0.1), distance


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_each_row_off_policy_by_enumeration(config, x64):
    """Tokens from b ≠ π_θ: only the prefix ratio keeps the on-policy expectation."""
    th, ref, b, exact = x64
    got = PROBLEM.expected_surrogate_gradient(th, ref, config, behaviour=b)
    stated = PROBLEM.stated_gradient(exact, expected_gradient(config))
    if config.correction == "prefix":
        assert _rel(got, stated, exact["kl_seq"]) < 1e-12
    else:
        assert _rel(got, stated, exact["kl_seq"]) > 0.05
    distance = _rel(got, exact["kl_seq"], exact["kl_seq"])
    assert (distance < 1e-12) if is_unbiased(config, off_policy=True) else (distance > 0.1)


def test_loo_baseline_leaves_the_expectation_unchanged(x64):
    """On-policy, or off-policy with a ratio; without one, E_b[∇log π_t] ≠ 0 and it moves."""
    th, ref, b, exact = x64
    for correction, law in itertools.product((None, "token", "prefix"), (None, b)):
        plain = KLConfig("reward", "k1", correction)
        loo = KLConfig("reward", "k1", correction, baseline="loo")
        e1 = PROBLEM.expected_surrogate_gradient(th, ref, plain, behaviour=law)
        e2 = PROBLEM.expected_surrogate_gradient(th, ref, loo, behaviour=law, batch_size=2)
        distance = _rel(e1, e2, exact["kl_seq"])
        if law is None or correction is not None:
            assert distance < 1e-12, (correction, law is None)
        else:
            assert distance > 0.01


def test_aggregations_scale_or_bias_the_expectation(x64):
    th, ref, _, exact = x64
    g = exact["kl_seq"]

    def expected(aggregate, batch_size=1, problem=PROBLEM, t=th, r=ref):
        cfg = KLConfig("loss", "k3", "prefix", aggregate=aggregate)
        return problem.expected_surrogate_gradient(t, r, cfg, batch_size=batch_size)

    assert _rel(expected("seq-sum", 2), 2 * g, g) < 1e-12  # × B
    # token-mean at B = 1 is seq-mean-token-mean; neither is ∝ ∇KL_seq with variable lengths.
    tm1, sm = expected("token-mean"), expected("seq-mean-token-mean")
    assert _rel(tm1, sm, g) < 1e-12
    for got in (tm1, expected("token-mean", 2)):
        cos = float(jnp.vdot(got, g) / (jnp.linalg.norm(got) * jnp.linalg.norm(g)))
        assert cos < 0.99, cos
    # With every sequence of length T both are exactly ∇KL_seq / T, at any batch size.
    fixed = SequenceToy(vocab_size=3, horizon=3, end_token=None)
    ft = fixed.random_logits(0, 0.8, jnp.float64)
    fr = fixed.random_logits(1, 0.5, jnp.float64)
    fg = jax.grad(fixed.kl_seq)(ft, fr)
    for agg, bs in (("token-mean", 2), ("seq-mean-token-mean", 1)):
        got = expected(agg, bs, fixed, ft, fr)
        assert _rel(got, fg / 3, fg) < 1e-12, agg


def test_clipping_adds_a_bias(x64):
    th, ref, _, exact = x64
    cfg = KLConfig("loss", "k3", "prefix")
    loose = PROBLEM.expected_surrogate_gradient(th, ref, cfg, clip_log_ratio=50.0)
    tight = PROBLEM.expected_surrogate_gradient(th, ref, cfg, clip_log_ratio=0.5)
    assert _rel(loose, exact["kl_seq"], exact["kl_seq"]) < 1e-12
    assert _rel(tight, exact["kl_seq"], exact["kl_seq"]) > 0.05


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="'k3\\+' differs from 'k3' only in its gradient"):
        KLConfig("reward", "k3+")
    with pytest.raises(ValueError, match="baseline applies to placement='reward'"):
        KLConfig("loss", "k1", baseline="loo")
    with pytest.raises(ValueError, match="correction must be one of"):
        KLConfig("loss", "k1", "sequence")
    with pytest.raises(ValueError, match="baseline='loo' needs B >= 2"):
        kl_surrogate(
            jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2)), estimator="k1", baseline="loo"
        )


def test_exact_regulariser_needs_the_per_sequence_mean():
    exact = [c.name for c in all_configs() if is_exact_regulariser(c)]
    assert exact == ["reward-k1-none", "reward-k1-token", "reward-k1-prefix", "loss-k1-prefix",
                     "loss-k3-prefix"]  # fmt: skip
    for aggregate in ("token-mean", "seq-mean-token-mean", "seq-sum"):
        config = KLConfig("reward", "k1", aggregate=aggregate)
        assert is_unbiased(KLConfig("reward", "k1")) and not is_exact_regulariser(config)
    off = [c.name for c in all_configs() if is_exact_regulariser(c, off_policy=True)]
    assert off == ["reward-k1-prefix", "loss-k1-prefix", "loss-k3-prefix"]
