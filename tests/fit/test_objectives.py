"""Objectives: values against closed forms, gradient estimators against exact gradients.

Statistical checks use fixed keys and |mean − truth| < 5·SE, SE = replicate sd / √R.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.fit import (
    REVERSE_KL_GRADIENTS,
    forward_kl,
    forward_kl_snis,
    gaussian_from_params,
    gaussian_params,
    gradient_stats,
    reverse_kl,
    sampled_kl_penalty,
)

P = jaxkl.MultivariateNormalTriL(jnp.array([1.0, -0.5]), jnp.array([[1.2, 0.0], [0.5, 0.6]]))
Q_PARAMS = gaussian_params(jnp.array([0.2, 0.3]), jnp.array([[0.8, 0.0], [-0.3, 1.1]]))


def assert_unbiased(stats, exact, replicates, label=""):
    """Every coordinate of the mean gradient within 5 SE of the exact gradient.

    A coordinate with zero variance (the ignored upper triangle of the raw scale matrix)
    must match exactly.
    """
    for m, v, e in zip(
        jax.tree_util.tree_leaves(stats.mean),
        jax.tree_util.tree_leaves(stats.variance),
        jax.tree_util.tree_leaves(exact),
        strict=True,
    ):
        m, e = np.asarray(m, np.float64), np.asarray(e, np.float64)
        se = np.sqrt(np.asarray(v, np.float64) / replicates)
        fixed = se == 0
        assert np.all(m[fixed] == e[fixed]), label
        z = np.abs(m[~fixed] - e[~fixed]) / se[~fixed]
        assert np.all(z < 5), (label, z)


# Every gradient of reverse_kl on this q (gaussian_from_params, 2-D scale_tril) against the
# exact one: CI keeps the same check in tests/fit/test_experiments.py
# (test_stl_variance_vanishes_and_estimators_unbiased: the gradient_variance experiment
# holds reparam, stl, score and score_loo of reverse_kl on gaussian_from_params to the exact
# gradient within 5 SE at every checkpoint), and "auto" in tests/estimators/test_gradients.py
# (test_auto_gradient_needs_no_choice_and_is_unbiased). 11 s of compiling: --run-slow.
@pytest.mark.slow
def test_reverse_kl_gradients_unbiased():
    reps = 2000

    @jax.jit
    def all_stats():
        out = {}
        for i, gradient in enumerate(REVERSE_KL_GRADIENTS):

            def loss(prm, key, gradient=gradient):
                return reverse_kl(key, gaussian_from_params(prm), P, 8, gradient=gradient)

            out[gradient] = gradient_stats(loss, Q_PARAMS, i, reps)
        return out

    exact = jax.grad(lambda prm: jaxkl.kl(gaussian_from_params(prm), P))(Q_PARAMS)
    for gradient, stats in all_stats().items():
        assert_unbiased(stats, exact, reps, gradient)


def test_reverse_kl_value_is_k1_for_every_gradient():
    @jax.jit
    def values():
        q = gaussian_from_params(Q_PARAMS)
        k1 = jaxkl.mc_kl(3, q, P, 64, estimator="k1").value
        return k1, {g: reverse_kl(3, q, P, 64, gradient=g).value for g in REVERSE_KL_GRADIENTS}

    k1, vals = values()
    for g, v in vals.items():
        assert float(v) == pytest.approx(float(k1), rel=1e-6), g


# reverse_kl hands its sampler to mc_kl unchanged, one line for every strategy: CI checks
# the hand-over with RQMC. Antithetic's draws and dof are mc_kl's own (CI:
# test_every_spelling_gives_the_same_estimate in tests/estimators/test_samplers.py), and
# its refusal of score_loo is the same `sampler.independent` check RQMC meets here:
# --run-slow.
@pytest.mark.parametrize(
    "sampler",
    [
        pytest.param(jaxkl.Antithetic(), marks=pytest.mark.slow, id="antithetic"),
        pytest.param(jaxkl.RQMC(4), id="rqmc"),
    ],
)
def test_reverse_kl_draws_with_the_sampler_it_is_given(sampler):
    # The same draws as mc_kl's with that sampler: value, stderr, dof and gradient agree
    # exactly, and differ from the i.i.d. default.
    def objective(prm, fn):
        return fn(gaussian_from_params(prm))

    prm = Q_PARAMS
    mine = lambda q: reverse_kl(3, q, P, 64, gradient="reparam", sampler=sampler)  # noqa: E731
    theirs = lambda q: jaxkl.mc_kl(3, q, P, 64, gradient="reparam", sampler=sampler)  # noqa: E731
    a, b = objective(prm, mine), objective(prm, theirs)
    assert (float(a.value), float(a.stderr), a.dof) == (float(b.value), float(b.stderr), b.dof)
    assert a.dof != reverse_kl(3, gaussian_from_params(prm), P, 64).dof
    ga = jax.grad(lambda x: objective(x, mine).value)(prm)
    gb = jax.grad(lambda x: objective(x, theirs).value)(prm)
    for u, v in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb), strict=True):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="independent draws"):
        reverse_kl(3, gaussian_from_params(prm), P, 64, gradient="score_loo", sampler=sampler)


@jax.jit
def _grads_at_optimum():
    prm = gaussian_params(P.loc, P.scale_tril)
    return {
        g: jax.grad(lambda x, g=g: reverse_kl(0, gaussian_from_params(x), P, 16, gradient=g).value)(
            prm
        )
        for g in ("stl", "score_loo")
    }


# reverse_kl is mc_kl's k1, and CI holds both gradients to 0 at q = p there:
# tests/estimators/test_monte_carlo.py::test_stl_variance_vanishes_at_optimum (STL, and
# reverse_kl's own docstring example) and
# tests/estimators/test_gradients.py::test_score_loo_gradient_exactly_zero_at_q_equals_p:
# --run-slow.
@pytest.mark.slow
@pytest.mark.parametrize("gradient", ["stl", "score_loo"])
def test_gradient_exactly_zero_at_optimum(gradient):
    """At q = p every per-sample log-ratio is 0: STL's path term and RLOO's advantages vanish
    (up to float32 rounding of the parameter round trip)."""
    for leaf in jax.tree_util.tree_leaves(_grads_at_optimum()[gradient]):
        np.testing.assert_allclose(leaf, 0.0, atol=1e-5)


def test_unnormalised_target_shifts_value_not_gradient():
    def val(prm, shift):
        return reverse_kl(
            2, gaussian_from_params(prm), lambda x: P.log_prob(x) + shift, 32, gradient="stl"
        ).value

    vg = jax.jit(jax.value_and_grad(val))
    v0, g0 = vg(Q_PARAMS, 0.0)
    v1, g1 = vg(Q_PARAMS, 5.0)
    assert float(v1) == pytest.approx(float(v0) - 5.0, abs=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_forward_kl_value_and_gradient():
    reps = 2000

    def loss(prm, key):
        return forward_kl(gaussian_from_params(prm), P.sample(key, (8,)), P)

    @jax.jit
    def run():
        q = gaussian_from_params(Q_PARAMS)
        x = P.sample(0, (20_000,))
        # Without log p: the cross-entropy KL(p‖q) + H(p).
        truth = (jaxkl.kl(P, q), jaxkl.kl(P, q) + P.entropy())
        exact = jax.grad(lambda prm: jaxkl.kl(P, gaussian_from_params(prm)))(Q_PARAMS)
        return (
            forward_kl(q, x, P),
            forward_kl(q, x),
            truth,
            exact,
            gradient_stats(loss, Q_PARAMS, 4, reps),
        )

    est, ce, (kl_truth, ce_truth), exact, stats = run()
    assert abs(float(est.value) - float(kl_truth)) < 5 * float(est.stderr)
    assert abs(float(ce.value) - float(ce_truth)) < 5 * float(ce.stderr)
    assert_unbiased(stats, exact, reps)


def test_snis_value_invariant_to_normaliser_and_calibrated():
    q, p = jaxkl.Normal(0.5, 1.5), jaxkl.Normal(0.0, 1.0)
    truth = float(jaxkl.kl(p, q))
    a, b = jax.jit(
        lambda: (
            forward_kl_snis(0, q, p, 4000),
            forward_kl_snis(0, q, lambda x: p.log_prob(x) + 30.0, 4000),
        )
    )()
    assert float(b.value) == pytest.approx(float(a.value), abs=1e-4)
    assert float(b.ess) == pytest.approx(float(a.ess), rel=1e-4)
    assert abs(float(a.value) - truth) < 5 * float(a.stderr)
    assert 1.0 <= float(a.ess) <= 4000.0
    # The delta-method SE against the spread of independent replicates: sd/mean(SE) = 1
    # within 5 SE of a sample sd, ≈ 1/√(2(R − 1)) relative.
    reps = 400
    ests = jax.jit(jax.vmap(lambda k: forward_kl_snis(k, q, p, 500)))(
        jax.random.split(jax.random.key(1), reps)
    )
    ratio = float(np.std(np.asarray(ests.value), ddof=1) / np.mean(np.asarray(ests.stderr)))
    assert abs(ratio - 1.0) < 5 / np.sqrt(2 * (reps - 1)), ratio


def test_snis_gradient_with_proposal_p_is_unbiased():
    """With proposal = p all weights are equal, so the gradient is forward_kl's: unbiased.

    (With another proposal the self-normalised gradient is only consistent: its bias is
    O(1/n) and a replicate test at fixed n would detect it.)
    """
    reps = 1000

    def loss(prm, key):
        return forward_kl_snis(
            key, gaussian_from_params(prm), lambda x: P.log_prob(x) + 3.0, 8, proposal=P
        )

    exact = jax.jit(jax.grad(lambda prm: jaxkl.kl(P, gaussian_from_params(prm))))(Q_PARAMS)
    stats = jax.jit(lambda: gradient_stats(loss, Q_PARAMS, 5, reps))()
    assert_unbiased(stats, exact, reps)


def test_snis_target_with_zero_density_regions():
    """Draws where p̃ = 0 (log p̃ = −inf) get weight 0 and contribute nothing, not NaN."""
    p, q = jaxkl.Uniform(-1.0, 1.0), jaxkl.Normal(0.3, 1.2)

    @jax.jit
    def run(loc):
        return jax.value_and_grad(
            lambda m: forward_kl_snis(0, jaxkl.Normal(m, 1.2), p, 8000).value
        )(loc), forward_kl_snis(0, q, p, 8000)

    (v, g), est = run(jnp.asarray(0.3))
    assert np.isfinite(float(v)) and np.isfinite(float(g))
    assert abs(float(est.value) - float(jaxkl.kl(p, q))) < 5 * float(est.stderr)


# An explicit proposal only changes where the draws come from and the log r of the
# weights: CI runs that path in test_snis_gradient_with_proposal_p_is_unbiased
# (proposal=P) and holds the value to the truth in
# test_snis_value_invariant_to_normaliser_and_calibrated: --run-slow.
@pytest.mark.slow
def test_snis_with_explicit_proposal():
    q, p, r = jaxkl.Normal(0.5, 1.5), jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.0, 2.0)
    est = jax.jit(lambda: forward_kl_snis(0, q, p, 8000, proposal=r))()
    assert abs(float(est.value) - float(jaxkl.kl(p, q))) < 5 * float(est.stderr)


# The expectations of the sampled-token penalties' gradients (held-fixed samples).
K_LOGITS_Q = jnp.array([0.5, -1.0, 2.0, 0.0, -0.3])
K_LOGITS_P = jnp.array([0.0, 0.0, 1.0, 1.0, -2.0])


# The same claim, on the same estimator code (sampled_kl_penalty of a Categorical q, tokens
# held fixed), is checked in CI by tests/fit/test_experiments.py
# (test_penalty_gradient_bias_claims: the kl_penalty experiment's k1, k2 and k3 mean
# gradients within 5 SE of 0, ∇KL(q‖p) and ∇KL(p‖q)). 7 s of compiling: --run-slow.
@pytest.mark.slow
def test_sampled_penalty_expected_gradients():
    """k1 → 0, k2 → ∇KL(q‖p), k3 → ∇KL(p‖q) (tokens held fixed)."""
    reps = 3000
    p = jaxkl.Categorical(K_LOGITS_P)
    expected = {
        "k1": jnp.zeros(5),
        "k2": jax.grad(lambda th: jaxkl.analytic.categorical(th, K_LOGITS_P))(K_LOGITS_Q),
        "k3": jax.grad(lambda th: jaxkl.analytic.categorical(K_LOGITS_P, th))(K_LOGITS_Q),
    }

    @jax.jit
    def all_stats():
        out = {}
        for i, est in enumerate(expected):

            def loss(theta, key, est=est):
                return sampled_kl_penalty(key, jaxkl.Categorical(theta), p, 16, estimator=est)

            out[est] = gradient_stats(loss, K_LOGITS_Q, i, reps)
        return out

    for est, stats in all_stats().items():
        assert_unbiased(stats, expected[est], reps, est)
    # The three expectations differ, so each assertion can fail for the wrong estimator.
    assert float(jnp.linalg.norm(expected["k2"] - expected["k3"])) > 0.1


def test_bad_arguments():
    q = gaussian_from_params(Q_PARAMS)
    with pytest.raises(ValueError, match="gradient must be one of"):
        reverse_kl(0, q, P, 8, gradient="dreg")
    with pytest.raises(ValueError, match="needs num_samples >= 2"):
        reverse_kl(0, q, P, 1, gradient="score_loo")
    with pytest.raises(TypeError, match="q must be a jaxkl distribution"):
        forward_kl(P.log_prob, jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="p must be a jaxkl distribution or a callable"):
        forward_kl_snis(0, q, 3.0, 16)
    with pytest.raises(ValueError, match="estimator must be one of"):
        sampled_kl_penalty(0, q, P, 8, estimator="k4")
    with pytest.raises(ValueError, match="leading sample axis"):
        forward_kl(jaxkl.Normal(0.0, 1.0), jnp.asarray(0.5))
