"""numpyro, distrax and TFP-on-JAX distributions in jaxkl: conversion, kl, estimators.

Oracles: each library's own ``kl_divergence`` (where it has one) and ``log_prob``; the
Monte Carlo estimates agree with the closed form within 5 SE. Every test skips cleanly
when its library is not installed (CI installs all three: ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl
from jaxkl import convert

LIBS = ("numpyro", "distrax", "tfp")
_MODULES = {
    "numpyro": "numpyro.distributions",
    "distrax": "distrax",
    "tfp": "tensorflow_probability.substrates.jax.distributions",
}
# Families a library lacks: distrax has no LogNormal, Exponential or Poisson.
_MISSING = {"distrax": {"LogNormal", "Exponential", "Poisson"}}


def _lib(name):
    return pytest.importorskip(_MODULES[name])


def _pairs():
    """(family, a, b) in float64, parameters far enough apart for 1e-10 agreement."""
    v = lambda *x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return [
        ("Normal", jaxkl.Normal(0.3, 1.2), jaxkl.Normal(-0.5, 0.7)),
        ("LogNormal", jaxkl.LogNormal(0.3, 1.2), jaxkl.LogNormal(-0.5, 0.7)),
        ("Laplace", jaxkl.Laplace(0.3, 1.2), jaxkl.Laplace(-0.5, 0.7)),
        ("Gumbel", jaxkl.Gumbel(0.3, 1.2), jaxkl.Gumbel(-0.5, 0.7)),
        ("Uniform", jaxkl.Uniform(0.0, 1.0), jaxkl.Uniform(-1.0, 2.0)),
        ("Exponential", jaxkl.Exponential(1.5), jaxkl.Exponential(0.5)),
        ("Gamma", jaxkl.Gamma(2.0, 1.5), jaxkl.Gamma(3.0, 0.5)),
        ("Beta", jaxkl.Beta(2.0, 3.0), jaxkl.Beta(1.5, 0.7)),
        ("Dirichlet", jaxkl.Dirichlet(v(1.0, 2.0, 3.0)), jaxkl.Dirichlet(v(2.0, 2.0, 2.0))),
        ("Poisson", jaxkl.Poisson(3.0), jaxkl.Poisson(5.0)),
        ("Bernoulli", jaxkl.Bernoulli(0.3), jaxkl.Bernoulli(-1.2)),
        ("Categorical", jaxkl.Categorical(v(0.1, 0.5, -1.0)), jaxkl.Categorical(v(0.0, 0.0, 1.0))),
        (
            "MultivariateNormalDiag",
            jaxkl.MultivariateNormalDiag(v(0.0, 1.0), v(1.0, 2.0)),
            jaxkl.MultivariateNormalDiag(v(1.0, 0.0), v(2.0, 0.5)),
        ),
        (
            "MultivariateNormalTriL",
            jaxkl.MultivariateNormalTriL(v(0.0, 1.0), v([1.0, 0.0], [0.5, 2.0])),
            jaxkl.MultivariateNormalTriL(v(1.0, 0.0), v([2.0, 0.0], [-0.3, 0.5])),
        ),
        (
            "Independent",
            jaxkl.Independent(jaxkl.Laplace(v(0.0, 1.0), v(1.0, 2.0)), 1),
            jaxkl.Independent(jaxkl.Laplace(v(1.0, 0.0), v(2.0, 0.5)), 1),
        ),
    ]


def _ids():
    with jax.enable_x64(True):
        return [family for family, _, _ in _pairs()]


def _their_kl(lib: str, a, b):
    """The library's own closed-form KL, or None where it has none for the pair."""
    try:
        if lib == "numpyro":
            from numpyro.distributions.kl import kl_divergence

            return kl_divergence(a, b)
        if lib == "distrax":
            return a.kl_divergence(b)
        tfd = importlib.import_module(_MODULES["tfp"])
        # TFP's Categorical KL compares int32 with float64 internally, which strict
        # promotion rejects: their code, evaluated under the standard rules.
        with jax.numpy_dtype_promotion("standard"):
            return tfd.kl_divergence(a, b)
    except NotImplementedError:
        return None


# CI runs each family once, on one library, the libraries taking five each: most of a
# case's time is compiling the family's kernels, which a second library repeats for little.
# The choice reaches each library's own converters: numpyro's Normal(...).to_event(1) for
# the diagonal MVN (read back as Independent) and its Bernoulli; distrax's Beta (renamed
# parameters), lower-triangular MVN and Independent; TFP's rate families (rate or
# log_rate), Categorical and Dirichlet. --run-slow runs the whole matrix.
_CI_LIBRARY = {
    **dict.fromkeys(
        ("Normal", "LogNormal", "Laplace", "MultivariateNormalDiag", "Bernoulli"), "numpyro"
    ),
    **dict.fromkeys(
        ("Uniform", "Gumbel", "Beta", "MultivariateNormalTriL", "Independent"), "distrax"
    ),
    **dict.fromkeys(("Exponential", "Gamma", "Poisson", "Categorical", "Dirichlet"), "tfp"),
}
# Dirichlet runs under --run-slow only (3–4 s of compiling on TFP): Beta is its K = 2
# kernel, run in CI by Beta-distrax, and its converters are the generic ones of the
# families every library names alike (TFP's, read back into jaxkl, run in CI through
# test_mc_kl_and_importance_kl_take_their_objects[tfp]).
_SLOW_FAMILIES = {"Dirichlet"}


def _matrix():
    for lib in LIBS:
        for index, family in enumerate(_ids()):
            in_ci = _CI_LIBRARY[family] == lib and family not in _SLOW_FAMILIES
            marks = [] if in_ci else [pytest.mark.slow]
            yield pytest.param(lib, index, id=f"{family}-{lib}", marks=marks)


@pytest.mark.parametrize("lib, index", list(_matrix()))
def test_kl_of_their_objects_is_ours_and_agrees_with_theirs(lib, index):
    _lib(lib)
    with jax.enable_x64(True), jax.numpy_rank_promotion("allow"):
        family, a, b = _pairs()[index]
        if family in _MISSING.get(lib, ()):
            pytest.skip(f"{lib} has no {family}")
        to, back = getattr(convert, f"to_{lib}"), getattr(convert, f"from_{lib}")
        ta, tb = to(a), to(b)
        ours = float(jaxkl.kl(a, b))
        assert float(jaxkl.kl(ta, tb)) == pytest.approx(ours, rel=1e-12)
        assert float(jaxkl.kl(a, tb)) == pytest.approx(ours, rel=1e-12)  # mixed pair
        # The conversion keeps the law: densities agree at draws of a.
        x = a.sample(0, (16,))
        # numpyro's Bernoulli.log_prob mixes bool with float64 and TFP's Categorical
        # float32 with float64: their code, which strict promotion would reject.
        with jax.numpy_dtype_promotion("standard"):
            theirs_log_prob = ta.log_prob(x)
        np.testing.assert_allclose(theirs_log_prob, a.log_prob(x), rtol=1e-10, atol=1e-12)
        round_trip = back(ta)  # numpyro's MVNDiag comes back as Independent(Normal, 1)
        assert not isinstance(round_trip, convert.ForeignDistribution)
        np.testing.assert_allclose(round_trip.log_prob(x), a.log_prob(x), rtol=1e-12)
        theirs = _their_kl(lib, ta, tb)
        if theirs is not None:
            assert float(theirs) == pytest.approx(ours, rel=1e-10)


@pytest.mark.parametrize("lib", LIBS)
def test_mc_kl_and_importance_kl_take_their_objects(lib):
    _lib(lib)
    with jax.numpy_rank_promotion("allow"):
        q = getattr(convert, f"to_{lib}")(jaxkl.Normal(0.0, 1.0))
        p = getattr(convert, f"to_{lib}")(jaxkl.Normal(1.0, 1.0))
        wide = getattr(convert, f"to_{lib}")(jaxkl.Normal(0.0, 2.0))
        for est in (
            jaxkl.mc_kl(0, q, p, 4096),
            jaxkl.mc_kl(1, jaxkl.Normal(0.0, 1.0), p, 4096),  # ours ‖ theirs: p is callable
            jaxkl.importance_kl(2, q, p, proposal=wide, num_samples=4096),
            jaxkl.fit.reverse_kl(3, q, p, 4096),
        ):
            assert abs(float(est.value) - 0.5) < 5 * float(est.stderr)
        grad = jax.grad(lambda m: jaxkl.mc_kl(4, jaxkl.Normal(m, 1.0), p, 4096).value)(0.0)
        assert abs(float(grad) + 1.0) < 0.1  # d/dm ½(m − 1)² at 0, pathwise


def test_unknown_family_goes_through_its_own_sampler_and_kl_names_it():
    nd = _lib("numpyro")
    with jax.numpy_rank_promotion("allow"):
        t = nd.StudentT(5.0, 0.0, 1.0)  # no converter; a pytree with rsample
        # KL(t₅ ‖ N(1, 1)) = −H(t₅) + ½ log 2π + ½ (Var t₅ + 1), Var t₅ = 5/3.
        exact = -stats.t(5).entropy() + 0.5 * np.log(2 * np.pi) + 0.5 * (5 / 3 + 1)
        est = jaxkl.mc_kl(0, t, jaxkl.Normal(1.0, 1.0), 8192)
        assert abs(float(est.value) - exact) < 5 * float(est.stderr)
        wrapped = convert.as_sampleable(t)
        assert isinstance(wrapped, convert.ForeignDistribution) and wrapped.reparameterized
        out = jax.jit(lambda d: d.log_prob(jnp.zeros(3)))(wrapped)
        np.testing.assert_allclose(out, t.log_prob(jnp.zeros(3)), rtol=1e-6)
        with pytest.raises(jaxkl.NoAnalyticKL) as err:
            jaxkl.kl(t, nd.Normal(0.0, 1.0))
    message = str(err.value)
    assert "numpyro.distributions.continuous.StudentT" in message
    for lib in LIBS:
        assert f"jaxkl.convert.from_{lib}" in message
    with pytest.raises(convert.UnsupportedDistribution, match="StudentT"):
        convert.from_numpyro(t)


def test_discrete_foreign_q_uses_the_score_gradient():
    nd = _lib("numpyro")
    with jax.numpy_rank_promotion("allow"):
        logits = jnp.array([0.2, -0.4, 1.0])
        p = jaxkl.Categorical(jnp.zeros(3))
        exact = jax.grad(lambda z: jaxkl.kl(jaxkl.Categorical(z), p))(logits)
        sampled = jax.grad(lambda z: jaxkl.mc_kl(0, nd.CategoricalLogits(z), p, 20_000).value)(
            logits
        )
        np.testing.assert_allclose(sampled, exact, atol=0.03)


def test_wrong_library_and_non_distributions_are_refused():
    nd = _lib("numpyro")
    with pytest.raises(TypeError, match="expected a distrax distribution"):
        convert.from_distrax(nd.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="expected a jaxkl distribution"):
        convert.to_numpyro(nd.Normal(0.0, 1.0))
    assert convert.as_jaxkl(3.0) == 3.0  # arrays and callables pass through unchanged


@pytest.mark.parametrize("lib", LIBS)
def test_probability_parameterised_objects_keep_exact_zeros_and_tiny_probs(lib):
    # Built from probs, each library is read from its probs (jaxkl takes the log itself):
    # numpyro's own logits clamp p to [eps, 1 − eps], which would turn p = 0 into −87.
    m = _lib(lib)
    p = jnp.array([0.0, 1e-30, 0.5])
    bern = m.Bernoulli(probs=p)
    cat = m.Categorical(probs=jnp.array([0.0, 0.25, 0.75]))
    ours = getattr(convert, f"from_{lib}")(bern)
    assert ours.logits[0] == -jnp.inf and ours.logits[2] == 0.0
    np.testing.assert_allclose(ours.logits[1], np.log(1e-30), rtol=1e-6)
    cat_logits = getattr(convert, f"from_{lib}")(cat).logits
    assert cat_logits[0] == -jnp.inf
    np.testing.assert_allclose(cat_logits[1:], np.log([0.25, 0.75]), rtol=1e-6)
    logits = getattr(convert, f"from_{lib}")(m.Bernoulli(logits=jnp.array([-2.0, 3.0])))
    assert logits.logits.tolist() == [-2.0, 3.0]
