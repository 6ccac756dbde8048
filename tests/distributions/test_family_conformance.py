"""Every family through the same checks, from one table of examples.

Shapes of sample/log_prob/entropy/mean/variance (traced, not compiled); float64 kept
through every method and log_prob/entropy against scipy.stats in float64, and float32
within a few roundoffs of scipy; bad parameters
raising with the parameter's name, eagerly and under ``jaxkl.checked``; the pytree
round trip through ``jit`` (without retracing), ``vmap`` and ``grad``; sample moments
within 5 standard errors of ``mean()``/``variance()``. What only one family has (tails,
extreme parameters, reparameterisation gradients, shape errors of its own) stays in
that family's test file.

Each example has batch shape (2,), so that the programs compiled for one test are reused
by the next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxkl
from jaxkl.analytic.pairs import KERNEL_PARAMETERS
from tests._subset import slow_except

BATCH = (2,)
# Draws for the moment checks: the 5-SE band on a mean is then ±3.5% of a standard
# deviation, tight enough to catch a wrong scale or shift in a sampler.
NUM_DRAWS = 20_000


def _tril(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return np.linalg.cholesky(a @ a.T + 0.5 * np.eye(d))


@dataclasses.dataclass(frozen=True)
class Family:
    """An example of a family: ``build(*params)`` with ``params`` of batch shape (2,).

    ``scipy(*params of one batch entry)`` is the frozen scipy.stats law (None: no
    counterpart); ``bad`` lists (parameter index, an invalid value put in its first
    entry, the parameter's name, the start of the rule the message states).
    """

    build: Callable
    params: tuple
    scipy: Callable | None
    bad: tuple[tuple[int, float, str, str], ...]
    event_shape: tuple[int, ...] = ()
    rtol64: float = 1e-12

    @property
    def name(self) -> str:
        return self.build.__name__


POSITIVE = "be > 0 and finite"
FINITE = "be finite"
D = 3
TRIL = np.stack([_tril(D, 0), _tril(D, 1)])

FAMILIES = [
    Family(
        jaxkl.Normal,
        (np.array([-1.0, 0.5]), np.array([0.3, 2.0])),
        lambda loc, scale: stats.norm(loc, scale),
        ((1, -1.0, "scale", POSITIVE), (0, np.nan, "loc", FINITE)),
    ),
    Family(
        jaxkl.LogNormal,
        (np.array([-1.0, 0.5]), np.array([0.3, 0.6])),
        lambda loc, scale: stats.lognorm(scale, scale=np.exp(loc)),
        ((1, 0.0, "scale", POSITIVE), (0, np.inf, "loc", FINITE)),
    ),
    Family(
        jaxkl.Laplace,
        (np.array([-1.0, 0.5]), np.array([0.3, 2.0])),
        lambda loc, scale: stats.laplace(loc, scale),
        ((1, np.nan, "scale", POSITIVE), (0, np.nan, "loc", FINITE)),
    ),
    Family(
        jaxkl.Gumbel,
        (np.array([-1.0, 0.5]), np.array([0.3, 2.0])),
        lambda loc, scale: stats.gumbel_r(loc, scale),
        ((1, -2.0, "scale", POSITIVE), (0, -np.inf, "loc", FINITE)),
    ),
    Family(
        jaxkl.Uniform,
        (np.array([-1.0, 0.0]), np.array([1.0, 3.0])),
        lambda low, high: stats.uniform(low, high - low),
        ((0, np.nan, "low", FINITE), (1, np.inf, "high", FINITE), (1, -5.0, "high", "be > low")),
    ),
    Family(
        jaxkl.Exponential,
        (np.array([0.5, 2.0]),),
        lambda rate: stats.expon(scale=1 / rate),
        ((0, 0.0, "rate", POSITIVE),),
    ),
    Family(
        jaxkl.Gamma,
        (np.array([0.5, 3.0]), np.array([2.0, 1.0])),
        lambda conc, rate: stats.gamma(conc, scale=1 / rate),
        ((0, -1.0, "concentration", POSITIVE), (1, np.nan, "rate", POSITIVE)),
    ),
    Family(
        jaxkl.Beta,
        (np.array([0.5, 2.0]), np.array([3.0, 1.5])),
        lambda c1, c0: stats.beta(c1, c0),
        ((0, 0.0, "concentration1", POSITIVE), (1, np.inf, "concentration0", POSITIVE)),
    ),
    Family(
        jaxkl.Poisson,
        (np.array([0.5, 4.0]),),
        lambda rate: stats.poisson(rate),
        ((0, -1.0, "rate", POSITIVE),),
    ),
    Family(
        jaxkl.Bernoulli,
        (np.array([-1.0, 0.5]),),
        lambda logits: stats.bernoulli(special.expit(logits)),
        ((0, np.nan, "logits", "not be NaN"),),
    ),
    Family(
        jaxkl.Categorical,
        (np.array([[0.5, -1.0, 2.0, 0.0], [0.0, 0.0, -3.0, 1.0]]),),
        lambda logits: stats.rv_discrete(values=(np.arange(4), special.softmax(logits))),
        ((0, np.inf, "logits", "not be NaN or \\+inf"),),
    ),
    Family(
        jaxkl.Dirichlet,
        (np.array([[0.5, 2.0, 3.0], [4.0, 1.0, 7.5]]),),
        lambda conc: stats.dirichlet(conc),
        ((0, -1.0, "concentration", POSITIVE),),
        event_shape=(3,),
    ),
    Family(
        jaxkl.MultivariateNormalDiag,
        (np.array([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]]), np.array([[1.0, 0.5, 2.0]] * 2)),
        lambda loc, scale: stats.multivariate_normal(loc, np.diag(scale**2)),
        ((1, 0.0, "scale_diag", POSITIVE), (0, np.nan, "loc", FINITE)),
        event_shape=(D,),
    ),
    Family(
        jaxkl.MultivariateNormalTriL,
        (np.array([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]]), TRIL),
        lambda loc, tril: stats.multivariate_normal(loc, tril @ tril.T),
        ((1, -1.0, "scale_tril", "have a diagonal > 0"), (0, np.nan, "loc", FINITE)),
        event_shape=(D,),
        rtol64=1e-10,
    ),
]
IDS = [f.name for f in FAMILIES]


def _ci(*keep: str) -> list:
    """The families, all but ``keep`` marked slow."""
    return slow_except(FAMILIES, IDS, keep)


# The three heavy checks below compile a program per family, Beta's, Dirichlet's (log-gamma
# samplers) and Poisson's for seconds each: CI keeps continuous, discrete and multivariate
# families in each, and every family in at least one (all stay in the float64 scipy check).
CONTINUOUS = ("Normal", "LogNormal", "Laplace", "Gumbel", "Uniform", "Exponential", "Gamma")
# Continuous (Gamma's reparameterised sampler included), discrete (Bernoulli) and
# multivariate (MultivariateNormalTriL) families: the others' programs compile for 2-5 s
# each. MultivariateNormalDiag goes through jit and vmap as a pytree in CI in
# tests/analytic/test_gaussian.py::test_jit_equals_eager_and_vmap_equals_loop[diag-diag].
PYTREE_CI = _ci(*CONTINUOUS, "Bernoulli", "MultivariateNormalTriL")
# Every family but Beta and Poisson (each in the moment check) and Dirichlet (2 s of
# compiling; its methods run the same code in the float64 check, and test_dirichlet.py
# holds its float32 entropy to scipy): Bernoulli and Categorical keep the discrete branches.
FLOAT32_CI = _ci(*(i for i in IDS if i not in ("Beta", "Poisson", "Dirichlet")))
# Every sampler but Dirichlet's (softmax of the log-gamma draws Beta's check exercises;
# Dirichlet's draws are in the float64 check, and the normals keep a multivariate case).
MOMENTS_CI = _ci(*(i for i in IDS if i != "Dirichlet"))


def _build(family: Family, dtype=np.float32):
    return family.build(*(jnp.asarray(p, dtype) for p in family.params))


def _with_bad_entry(family: Family, index: int, value: float) -> list[np.ndarray]:
    params = [np.array(p, np.float64) for p in family.params]
    params[index].reshape(-1)[0] = value
    return params


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_shapes(family):
    # The first parameter gets a new leading axis: batch (2, 2), by broadcasting if the
    # family has other parameters.
    first, *rest = family.params
    d = family.build(np.stack([first, first]), *rest)
    batch = (2, *BATCH)
    assert d.batch_shape == batch and d.event_shape == family.event_shape
    full = (*batch, *family.event_shape)
    # eval_shape traces without compiling: shape checks need no numbers.
    assert jax.eval_shape(lambda: d.sample(0, (5,))).shape == (5, *full)
    x = jax.eval_shape(lambda: d.sample(0, (5, 1)))
    assert jax.eval_shape(lambda: d.log_prob(jnp.zeros(x.shape, x.dtype))).shape == (5, 1, *batch)
    assert jax.eval_shape(d.entropy).shape == batch
    mean_shape = batch if family.build is jaxkl.Categorical else full
    assert jax.eval_shape(d.mean).shape == jax.eval_shape(d.variance).shape == mean_shape


# One compiled program per family and dtype evaluates every method: far cheaper than
# dispatching (and compiling) each operation of each method eagerly.
@jax.jit
def _draw_and_evaluate(d, key):
    x = d.sample(key, (16,))
    return x, d.log_prob(x), d.entropy(), d.mean(), d.variance()


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_float64_is_kept_and_matches_scipy(family):
    with jax.enable_x64(True):
        d = _build(family, np.float64)
        assert d.dtype == jnp.float64
        x, *outs = _draw_and_evaluate(d, jax.random.key(0))
        if jnp.issubdtype(x.dtype, jnp.floating):
            assert x.dtype == jnp.float64
        assert all(out.dtype == jnp.float64 for out in outs)
    x, (log_prob, entropy, mean, variance) = np.asarray(x), map(np.asarray, outs)
    tol = dict(rtol=family.rtol64, atol=1e-12)
    for b in range(BATCH[0]):
        ref = family.scipy(*(p[b] for p in family.params))
        density = ref.logpmf if hasattr(ref, "logpmf") else ref.logpdf
        want = np.array([density(xi) for xi in x[:, b]])
        np.testing.assert_allclose(log_prob[:, b], want, **tol)
        np.testing.assert_allclose(entropy[b], ref.entropy(), **tol)
        if not family.event_shape:  # scipy's multivariate laws have no mean()/var()
            np.testing.assert_allclose(mean[b], ref.mean(), **tol)
            np.testing.assert_allclose(variance[b], ref.var(), **tol)


# Float32 is what users run: each method's value within a few float32 roundoffs of
# scipy's float64 (relative 2e-5, or absolute 2e-5 where the value is near 0, as a
# log-density or an entropy can be), at the float32 program's own draws.
@pytest.mark.parametrize("family", FLOAT32_CI)
def test_float32_matches_scipy(family):
    d = _build(family, np.float32)
    x, *outs = _draw_and_evaluate(d, jax.random.key(0))
    assert all(out.dtype == jnp.float32 for out in outs)
    x, (log_prob, entropy, mean, variance) = np.asarray(x, np.float64), map(np.asarray, outs)
    if family.build is jaxkl.Dirichlet:
        # scipy wants the simplex to 1e-9; a float32 draw sums to 1 within 1e-7, and
        # renormalising moves its log-density by far less than the tolerance.
        x = x / x.sum(-1, keepdims=True)
    tol = dict(rtol=2e-5, atol=2e-5)
    for b in range(BATCH[0]):
        ref = family.scipy(
            *(np.asarray(p, np.float32)[b].astype(np.float64) for p in family.params)
        )
        density = ref.logpmf if hasattr(ref, "logpmf") else ref.logpdf
        want = np.array([density(xi) for xi in x[:, b]])
        np.testing.assert_allclose(log_prob[:, b], want, **tol)
        np.testing.assert_allclose(entropy[b], ref.entropy(), **tol)
        if not family.event_shape:
            np.testing.assert_allclose(mean[b], ref.mean(), **tol)
            np.testing.assert_allclose(variance[b], ref.var(), **tol)


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_canonical_parameters_are_the_constructor_keywords(family):
    """``canonical_parameters()`` names, in order, the arguments each example is built
    from, and passing them back by name rebuilds the same distribution (the analytic pair
    table reads kernel arguments by these names)."""
    d = _build(family)
    names = type(d).canonical_parameters()
    assert len(names) == len(family.params)
    again = family.build(**{name: getattr(d, name) for name in names})
    for a, b in zip(jax.tree_util.tree_leaves(d), jax.tree_util.tree_leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert KERNEL_PARAMETERS[type(d)] == names


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_bad_parameters_raise_naming_the_parameter(family):
    for index, value, name, rule in family.bad:
        with pytest.raises(ValueError, match=f"^{family.name}: {name} must {rule}"):
            family.build(*_with_bad_entry(family, index, value))
    if len(family.params) > 1:
        first, *rest = family.params
        with pytest.raises(ValueError, match=f"^{family.name}: .*do not broadcast"):
            family.build(np.concatenate([first, first[:1]]), *rest)
    # The same message at run time under jit, through jaxkl.checked.
    index, value, name, rule = family.bad[0]
    f = jaxkl.checked(lambda *p: family.build(*p).entropy())
    with pytest.raises(ValueError, match=f"^{family.name}: {name} must {rule}"):
        f(*(jnp.asarray(p, jnp.float32) for p in _with_bad_entry(family, index, value)))


@pytest.mark.parametrize("family", PYTREE_CI)
def test_pytree_round_trip_jit_vmap_grad(family):
    d = _build(family)
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == len(family.params)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(again) is type(d) and again.batch_shape == d.batch_shape
    traces = 0

    @jax.jit
    def through_transformations(d, key):
        nonlocal traces
        traces += 1
        x = d.sample(key, (3,))
        per_entry = jax.vmap(lambda e: e.entropy())(d)
        grads = jax.grad(lambda e: e.log_prob(x).sum())(d)
        return x, d.log_prob(x), per_entry, d.entropy(), grads

    x, log_prob, per_entry, entropy, grads = through_transformations(again, jax.random.key(1))
    np.testing.assert_allclose(log_prob, d.log_prob(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_entry, entropy, rtol=1e-5, atol=1e-6)
    assert type(grads) is type(d)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    through_transformations(jax.tree_util.tree_map(lambda leaf: leaf * 1.0, d), jax.random.key(2))
    assert traces == 1  # new values, the same shapes: no retrace


@pytest.mark.parametrize("family", MOMENTS_CI)
def test_sample_moments_within_5_se(family):
    d = _build(family)
    x = np.asarray(d.sample(jax.random.key(2), (NUM_DRAWS,)), np.float64)
    mean, var = np.asarray(d.mean(), np.float64), np.asarray(d.variance(), np.float64)
    n = NUM_DRAWS
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
    # SE of the sample variance √((μ₄ − σ⁴(n−3)/(n−1))/n), μ₄ from the sample itself.
    mu4 = np.mean((x - x.mean(0)) ** 4, axis=0)
    se_var = np.sqrt(np.maximum(mu4 - var**2 * (n - 3) / (n - 1), 0.0) / n)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 5 * se_var)
