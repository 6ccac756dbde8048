"""kl_surrogate by sampling: ≥ 20 000 sequences per configuration against the exact table.

Each configuration's gradient is computed as a user computes it (``jax.grad`` of
``kl_surrogate`` on sampled ``[B, T]`` arrays), averaged over R batches, and compared
with the table's expectation (exact, by enumeration): the mean's projections on fixed
directions — ∇KL_seq, the predicted bias, six random ones — must be within 5 standard
errors. A configuration the table calls biased must differ from ∇KL_seq by more than
5 standard errors along its predicted bias.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.rl import KLConfig, all_configs, expected_gradient, kl_surrogate
from jaxkl.rl.configurations import is_unbiased
from jaxkl.rl.gradient_study import sampled_gradients
from tests._subset import slow_except
from tests.rl.problem import BEHAVIOUR, PROBLEM, REF, THETA, flat

CONFIGS = all_configs()
R, B = 2500, 8  # 20 000 sequences per configuration
DIRECTIONS = np.asarray(jax.random.normal(jax.random.key(99), (6, THETA.size)), np.float64)


@pytest.fixture(scope="module")
def exact():
    return {k: flat(v) for k, v in PROBLEM.exact_gradients(THETA, REF).items()}


# One program computes every sampled configuration's gradients (common random numbers), so
# its compile and run time grow with the number of configurations. CI runs a covering
# subset: in each placement every estimator and every correction; on-policy, unbiased and
# biased rows; off-policy, an unbiased prefix row (reward-k1-prefix, loss-k3-prefix), a
# biased prefix row (reward-k3-prefix, loss-k3plus-prefix) and a row unbiased on-policy but
# biased off it (reward-k1-token). --run-slow runs every row of the table. Each replicate's
# sequences depend only on its key and law, and each configuration's gradient only on them,
# so a row's gradients are the same whether or not the other rows are computed beside it.
_SAMPLED_CI = {
    "reward-k1-token",
    "reward-k1-prefix",
    "reward-k2-none",
    "reward-k3-prefix",
    "loss-k1-none",
    "loss-k2-token",
    "loss-k3-prefix",
    "loss-k3plus-prefix",
}
_SAMPLED_PARAMS = slow_except(CONFIGS, [c.name for c in CONFIGS], _SAMPLED_CI)


@pytest.fixture(scope="module")
def sampled(request):
    """Sampled gradients by configuration name: every row under --run-slow, else CI's."""
    configs = [
        c for c in CONFIGS if request.config.getoption("--run-slow") or c.name in _SAMPLED_CI
    ]

    # On-policy through the off-policy program (old_logp = π_θ's own log-probs, as data):
    # one compilation serves both.
    def run(law, seed):
        grads = sampled_gradients(
            PROBLEM, THETA, REF, configs, seed, replicates=R, num_sequences=B, behaviour=law
        )
        return {c.name: g for c, g in zip(configs, grads, strict=True)}

    return {"on": run(THETA, 0), "off": run(BEHAVIOUR, 1)}


def _z(grads, target, directions):
    """z-scores of mean(grads) − target along each unit direction (rows)."""
    u = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    proj = (grads - target) @ u.T
    return proj.mean(0) / (proj.std(0, ddof=1) / np.sqrt(grads.shape[0]))


def _check(grads, expected, truth, biased):
    dirs = np.vstack([truth, DIRECTIONS])
    bias = expected - truth
    if biased:
        dirs = np.vstack([dirs, bias])
    assert np.max(np.abs(_z(grads, expected, dirs))) < 5.0
    if biased:
        z = _z(grads, truth, bias[None])[0]
        assert z > 5.0, z


@pytest.mark.parametrize("config", _SAMPLED_PARAMS)
def test_on_policy_mean_gradient_is_the_tables(config, sampled, exact):
    stated = sum(c * exact[name] for name, c in expected_gradient(config).items())
    _check(sampled["on"][config.name], stated, exact["kl_seq"], biased=not is_unbiased(config))


@pytest.mark.parametrize("config", _SAMPLED_PARAMS)
def test_off_policy_only_the_prefix_ratio_stays_unbiased(config, sampled, exact):
    enumerated = flat(PROBLEM.expected_surrogate_gradient(THETA, REF, config, behaviour=BEHAVIOUR))
    unbiased = is_unbiased(config, off_policy=True)
    if unbiased:
        np.testing.assert_allclose(enumerated, exact["kl_seq"], atol=1e-6)
    _check(sampled["off"][config.name], enumerated, exact["kl_seq"], biased=not unbiased)


COUPLED = [
    KLConfig("reward", "k1", None, baseline="loo"),
    KLConfig("reward", "k3", "token", baseline="loo"),
    KLConfig("reward", "k1", None, aggregate="token-mean"),
    KLConfig("loss", "k3", "prefix", aggregate="token-mean"),
    KLConfig("loss", "k1", "prefix", aggregate="seq-mean-token-mean"),
    KLConfig("loss", "k3", "prefix", aggregate="seq-sum"),
]


# What the baseline and the batch-coupling aggregations do to the expectation is proved
# in CI over all pairs by tests/rl/test_configurations.py
# (test_loo_baseline_leaves_the_expectation_unchanged,
# test_aggregations_scale_or_bias_the_expectation: B = 2 enumeration of kl_surrogate
# itself); sampled_gradients' gradient of a batch is jax.grad of kl_surrogate exactly
# (tests/rl/test_gradient_study.py::test_gradient_at_n_is_the_n_row_batchs, loo and
# token-mean rows included) and the toy's sampler is exact (tests/rl/test_toy.py::
# test_sampler_is_exact). 10 000 sampled pairs through six more programs: --run-slow.
@pytest.mark.slow
def test_batch_coupled_configurations_match_exact_pairs(exact):
    """A baseline or a token-mean couples the rows of a batch: exact over all pairs, B = 2."""
    grads = sampled_gradients(PROBLEM, THETA, REF, COUPLED, 2, replicates=10_000, num_sequences=2)
    for config, g in zip(COUPLED, grads, strict=True):
        want = flat(PROBLEM.expected_surrogate_gradient(THETA, REF, config, batch_size=2))
        z = _z(g, want, np.vstack([exact["kl_seq"], DIRECTIONS]))
        assert np.max(np.abs(z)) < 5.0, config.name


# Each configuration compiles its own program. CI runs a covering subset: every placement
# with every correction and every estimator it takes, and both baseline configurations;
# --run-slow runs every row of the table.
_MASKED_CI = {
    "reward-k1-none",
    "reward-k2-token",
    "reward-k3-prefix",
    "loss-k1-token",
    "loss-k2-prefix",
    "loss-k3-none",
    "loss-k3plus-prefix",
    *(c.name for c in COUPLED[:2]),
}


@pytest.mark.parametrize(
    "config",
    slow_except(CONFIGS + COUPLED[:2], [c.name for c in CONFIGS + COUPLED[:2]], _MASKED_CI),
)
def test_masked_garbage_and_empty_rows_change_nothing(config):
    b = PROBLEM.sample(5, THETA, 6)
    mask = b.mask.at[4].set(False)  # row 4 is padding
    lq, old = b.log_probs(REF), b.log_probs(BEHAVIOUR)
    kwargs = config.kwargs()

    @jax.jit
    def value_and_grad(theta, bad):
        def f(th):
            lp = jnp.where(mask, b.log_probs(th), bad)
            return kl_surrogate(
                lp, jnp.where(mask, lq, -bad), mask, old_logp=jnp.where(mask, old, bad), **kwargs
            )

        return jax.value_and_grad(f)(theta)

    clean = value_and_grad(THETA, 0.0)
    for bad in (1e4, -jnp.inf, jnp.nan):
        v, g = value_and_grad(THETA, bad)
        assert np.isfinite(float(v)) and np.all(np.isfinite(g))
        np.testing.assert_array_equal(v, clean[0])
        np.testing.assert_array_equal(g, clean[1])
    # All rows masked: value 0, gradient 0, under jit, no NaN.
    empty = jax.jit(
        jax.value_and_grad(
            lambda th: kl_surrogate(
                b.log_probs(th), lq, jnp.zeros_like(mask), old_logp=old, **kwargs
            )
        )
    )(THETA)
    assert float(empty[0]) == 0.0 and np.all(np.asarray(empty[1]) == 0.0)


# In CI kl_surrogate's gradient runs under jit and vmap in the sampled fixture above and in
# tests/rl/test_gradient_study.py::test_gradient_at_n_is_the_n_row_batchs (jit(vmap(grad))
# equal to the eager gradient of every batch, the loo baseline included); vmap over
# prompts [P, B, T] in tests/rl/test_sequence_kl.py::test_vmap_over_prompts_and_empty_rows
# and no retrace in tests/rl/test_token_kl.py::test_jit_vmap_and_no_retrace (the same
# fixed-shape token terms): --run-slow.
@pytest.mark.slow
def test_jit_vmap_and_no_retrace():
    traces = []
    b = PROBLEM.sample(6, THETA, 16)
    lq = b.log_probs(REF)

    @jax.jit
    def grad(theta, key):
        traces.append(None)
        batch = PROBLEM.sample(key, theta, 16)
        return jax.grad(
            lambda th: kl_surrogate(
                batch.log_probs(th),
                batch.log_probs(REF),
                batch.mask,
                estimator="k3",
                placement="loss",
                correction="prefix",
            )
        )(theta)

    for seed in range(3):
        grad(THETA + 0.01 * seed, jax.random.key(seed))
    assert len(traces) == 1
    # vmap over prompts: [P, B, T] -> P scalars, each the one-prompt value.
    stack = lambda x: jnp.stack([x[:8], x[8:]])  # noqa: E731
    f = lambda lp, ref, m: kl_surrogate(lp, ref, m, estimator="k1", baseline="loo")  # noqa: E731
    batched = jax.vmap(f)(stack(b.log_probs(THETA)), stack(lq), stack(b.mask))
    for p in range(2):
        want = f(stack(b.log_probs(THETA))[p], stack(lq)[p], stack(b.mask)[p])
        np.testing.assert_allclose(batched[p], want, rtol=1e-6)


def test_value_is_the_aggregated_estimate():
    b = PROBLEM.sample(7, THETA, 16)
    lp, lq = b.log_probs(THETA), b.log_probs(REF)
    from jaxkl.rl import aggregate_value, token_kl

    for config in CONFIGS:
        got = kl_surrogate(lp, lq, b.mask, **config.kwargs())
        k = token_kl(lp, lq, b.mask, estimator=config.estimator)
        np.testing.assert_allclose(got, aggregate_value(k, b.mask, config.aggregate), rtol=1e-6)
