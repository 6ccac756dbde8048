"""Sampling strategies as values: construction, the shared draw, and the spellings of mc_kl.

The statistical properties of each strategy (unbiased, honest stderr, less variance) are
tested in test_variance_reduction.py through the older flags; here the sampler values and
strings are tied to those flags bit for bit, so those tests cover them too.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.estimators.samplers import (
    SAMPLER_NAMES,
    as_sampler,
    broadcast_batches,
    check_num_samples,
    draw,
)
from jaxkl.estimators.variance_reduction import (
    antithetic_sample,
    gaussian_from_standard_normal,
    rqmc_standard_normal,
)
from jaxkl.fit import forward_kl_snis, reverse_kl, sampled_kl_penalty
from tests._subset import slow_except_grid
from tests.estimators.gaussian_pairs import GAUSSIAN_PAIRS

IID, Antithetic, RQMC = jaxkl.IID, jaxkl.Antithetic, jaxkl.RQMC
N = 64
P = jaxkl.Normal(0.5, 1.3)

PAIRS = {
    **GAUSSIAN_PAIRS,
    # p's leading batch axis (2) is one q lacks: it becomes an extra sample axis.
    "batched": lambda: (
        jaxkl.MultivariateNormalDiag(jnp.zeros((3, 2)), jnp.ones((3, 2))),
        jaxkl.MultivariateNormalDiag(jnp.full((2, 1, 2), 0.2), jnp.full((2, 1, 2), 1.1)),
    ),
}
# Each strategy in its three spellings: the older flags, the string, the value.
SPELLINGS = {
    "iid": ({}, "iid", IID()),
    "antithetic": ({"antithetic": True}, "antithetic", Antithetic()),
    "rqmc": ({"qmc": True}, "rqmc", RQMC()),
    "rqmc8": ({"qmc": True, "qmc_randomizations": 8}, None, RQMC(randomizations=8)),
}


def _assert_identical(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------ construction
def test_samplers_are_hashable_values():
    assert RQMC(16) == RQMC(randomizations=16) == RQMC(np.int64(16))
    assert hash(RQMC(16)) == hash(RQMC(np.int64(16)))
    assert type(RQMC(np.int64(16)).randomizations) is int
    assert RQMC() == RQMC(32) != RQMC(16)
    assert IID() == IID() != Antithetic()
    assert len({IID(), Antithetic(), RQMC(), RQMC(32), RQMC(8)}) == 4
    assert repr(RQMC(8)) == "RQMC(randomizations=8)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        RQMC().randomizations = 4
    assert [IID.independent, Antithetic.independent, RQMC.independent] == [True, False, False]


@pytest.mark.parametrize(
    "m, error, match",
    [
        (1, ValueError, "RQMC: randomizations must be >= 2 for a standard error.*got 1"),
        (0, ValueError, ">= 2"),
        (16.0, TypeError, "RQMC: randomizations must be an int; got float 16.0"),
        (True, TypeError, "must be an int; got bool"),
        ("16", TypeError, "must be an int; got str"),
    ],
)
def test_invalid_rqmc_cannot_be_built(m, error, match):
    with pytest.raises(error, match=match):
        RQMC(m)


def test_sampler_names():
    assert {name: as_sampler("mc_kl", name) for name in SAMPLER_NAMES} == SAMPLER_NAMES
    assert as_sampler("mc_kl", RQMC(4)) == RQMC(4)
    with pytest.raises(ValueError, match=r"mc_kl: sampler must be one of 'iid'.*got str 'qmc'"):
        as_sampler("mc_kl", "qmc")
    with pytest.raises(TypeError, match=r"sampler must be one of .*got type"):
        as_sampler("mc_kl", RQMC)  # the class, not a value


# ------------------------------------------------------------------ mc_kl's arguments
@pytest.mark.parametrize(
    "q, kw, error, match",
    [
        # A strategy and an older flag that spell different things.
        (None, {"sampler": IID(), "antithetic": True}, ValueError, r"sampler=IID\(\) disagrees"),
        (None, {"sampler": "rqmc", "qmc_randomizations": 8}, ValueError, "disagrees"),
        (None, {"sampler": RQMC(16), "qmc": True, "qmc_randomizations": 8}, ValueError, "spell"),
        (None, {"sampler": Antithetic(), "qmc": True}, ValueError, "disagrees"),
        (None, {"sampler": 2}, TypeError, "sampler must be one of"),
        # What a strategy needs of q and n, named by the sampler.
        (jaxkl.Gamma(2.0, 1.0), {"sampler": Antithetic()}, ValueError, "symmetric about"),
        (None, {"sampler": "antithetic", "num": 7}, ValueError, "Antithetic.*even num_samples"),
        (jaxkl.Laplace(0.0, 1.0), {"sampler": RQMC(8)}, ValueError, "Gaussian q"),
        (None, {"sampler": RQMC(16), "num": 100}, ValueError, r"multiple of RQMC.*\(16\)"),
        # Estimator options that need independent draws.
        (None, {"sampler": RQMC(8), "gradient": "score_loo"}, ValueError, "independent draws"),
        (None, {"sampler": "antithetic", "control_variate": True}, ValueError, "independent"),
    ],
)
def test_bad_sampler_arguments(q, kw, error, match):
    kw = dict(kw)
    n = kw.pop("num", N)
    with pytest.raises(error, match=match):
        jaxkl.mc_kl(0, jaxkl.Normal(0.0, 1.0) if q is None else q, P, n, **kw)


def test_older_flags_may_restate_the_sampler():
    q = jaxkl.Normal(0.0, 1.0)
    plain = jaxkl.mc_kl(0, q, P, N, sampler=RQMC(16))
    for kw in ({"qmc": True}, {"qmc": True, "qmc_randomizations": 16}):
        _assert_identical(jaxkl.mc_kl(0, q, P, N, sampler=RQMC(16), **kw), plain)
    pairs = jaxkl.mc_kl(0, q, P, N, sampler=Antithetic())
    _assert_identical(jaxkl.mc_kl(0, q, P, N, sampler="antithetic", antithetic=True), pairs)


# ------------------------------------------------------------------ same draws, same result
# CI runs a covering subset of the spelling × pair × estimator product: every spelling,
# every pair and both estimators at least once; the batched pair (p with more batch axes
# than q) with k3, whose closed-form ratio moments broadcast the two batches. k1 on the
# batched pair runs a subset of that path (the same draw with an extra sample axis, the
# same reduction to units; no ratio moments), and each strategy's draw with an extra
# axis is checked bit for bit in test_draw_is_each_strategys_own_construction.
# --run-slow runs the whole product.
_SPELLING_CI = {
    ("iid", "normal", "k1"),
    ("antithetic", "mvn_diag", "k3"),
    ("rqmc", "mvn_tril", "k1"),
    ("rqmc8", "batched", "k3"),
}


@pytest.mark.parametrize(
    "spelling, pair, estimator",
    slow_except_grid(SPELLINGS, PAIRS, ("k1", "k3"), keep=_SPELLING_CI),
)
def test_every_spelling_gives_the_same_estimate(spelling, pair, estimator):
    q, p = PAIRS[pair]()
    flags, name, value = SPELLINGS[spelling]
    key = jax.random.key(5)
    reference = jaxkl.mc_kl(key, q, p, N, estimator=estimator, **flags)
    same = jaxkl.mc_kl(key, q, p, N, estimator=estimator, sampler=value)
    named = name and jaxkl.mc_kl(key, q, p, N, estimator=estimator, sampler=name)
    _assert_identical(same, reference)
    if named:
        _assert_identical(named, reference)
    units = {"iid": N, "antithetic": N // 2, "rqmc": 32, "rqmc8": 8}[spelling]
    assert reference.dof == units - 1


def test_draw_is_each_strategys_own_construction():
    # The formulas the draws were made by before samplers existed, for fixed keys.
    q = jaxkl.MultivariateNormalTriL(jnp.zeros((3, 2)), jnp.broadcast_to(jnp.eye(2), (3, 2, 2)))
    key, batch = jax.random.key(2), (4, 3)  # one extra axis of 4
    np.testing.assert_array_equal(draw(key, q, 8, batch=batch), q.sample(key, (8, 4)))
    np.testing.assert_array_equal(
        draw(key, q, 8, sampler=Antithetic(), batch=batch), antithetic_sample(q, key, 4, (4,))
    )
    eps = rqmc_standard_normal(key, 4, 2, (4, 3), 2, q.dtype)
    np.testing.assert_array_equal(
        draw(key, q, 8, sampler=RQMC(4), batch=batch), gaussian_from_standard_normal(q, eps)
    )
    # An int seed is the same key.
    np.testing.assert_array_equal(draw(2, q, 8, batch=batch), draw(key, q, 8, batch=batch))


@pytest.mark.parametrize(
    "sampler, sample_axes", [(IID(), (12,)), (Antithetic(), (2, 6)), (RQMC(4), (4, 3))]
)
def test_draw_shapes_and_units(sampler, sample_axes):
    q = jaxkl.MultivariateNormalDiag(jnp.zeros((3, 2)), jnp.ones((3, 2)))
    # eval_shape traces without compiling: shape checks need no numbers (the draws' values
    # are checked in test_draw_is_each_strategys_own_construction).
    x = jax.eval_shape(lambda: draw(0, q, 12, sampler=sampler, batch=(5, 3)))
    assert x.shape == (*sample_axes, 5, 3, 2)
    units = jax.eval_shape(lambda: sampler.to_units(jnp.zeros((*sample_axes, 5, 3))))
    assert units.shape == ({"IID": 12, "Antithetic": 6, "RQMC": 4}[type(sampler).__name__], 5, 3)


def test_draw_checks_what_the_strategy_needs():
    with pytest.raises(ValueError, match=r"fit: sampler=Antithetic\(\) needs an even"):
        draw(0, jaxkl.Normal(0.0, 1.0), 5, sampler=Antithetic(), where="fit")


# ------------------------------------------------------------------ jit and vmap
def test_jit_with_the_sampler_static_compiles_once_per_strategy():
    traces = []

    @functools.partial(jax.jit, static_argnames="sampler")
    def value(key, loc, sampler):
        traces.append(sampler)
        return jaxkl.mc_kl(key, jaxkl.Normal(loc, 1.0), P, N, sampler=sampler).value

    first = value(jax.random.key(0), 0.1, sampler=RQMC(8))
    value(jax.random.key(1), 0.3, sampler=RQMC(8))  # an equal value: no retrace
    assert traces == [RQMC(8)]
    value(jax.random.key(1), 0.3, sampler=Antithetic())
    assert traces == [RQMC(8), Antithetic()]
    eager = jaxkl.mc_kl(jax.random.key(0), jaxkl.Normal(0.1, 1.0), P, N, sampler=RQMC(8))
    # Compiled and eager programs may fuse the arithmetic differently.
    np.testing.assert_allclose(first, eager.value, rtol=1e-6)


def test_vmap_over_keys():
    q = jaxkl.Normal(0.2, 1.0)
    keys = jax.random.split(jax.random.key(3), 4)
    batched = jax.vmap(lambda k: jaxkl.mc_kl(k, q, P, N, sampler=Antithetic()))(keys)
    one_by_one = [jaxkl.mc_kl(k, q, P, N, sampler=Antithetic()) for k in keys]
    # The draws are the same bits; vmapped arithmetic may round differently in the last ulp.
    np.testing.assert_allclose(batched.value, [e.value for e in one_by_one], rtol=1e-6)
    np.testing.assert_allclose(batched.stderr, [e.stderr for e in one_by_one], rtol=1e-5)
    assert batched.dof == N // 2 - 1


# ------------------------------------------------------------------ the shared checks
def test_shared_checks_name_the_caller():
    assert check_num_samples("x", np.int32(3)) == 3
    assert broadcast_batches("x", q=(3,), p=(2, 1), proposal=()) == (2, 3)
    unbroadcastable = r"mc_kl: batch shapes do not broadcast: q \(3,\), p \(4,\)"
    with pytest.raises(ValueError, match=unbroadcastable):
        jaxkl.mc_kl(0, jaxkl.Normal(jnp.zeros(3), 1.0), jaxkl.Normal(jnp.zeros(4), 1.0), 8)
    q = jaxkl.Normal(0.0, 1.0)
    for name, call in {
        "mc_kl": lambda n: reverse_kl(0, q, P, n),  # reverse_kl is mc_kl's k1
        "sampled_kl_penalty": lambda n: sampled_kl_penalty(0, q, P, n),
        "forward_kl_snis": lambda n: forward_kl_snis(0, q, P, n),
    }.items():
        with pytest.raises(TypeError, match=f"{name}: num_samples must be a Python int; got float"):
            call(8.0)
        with pytest.raises(ValueError, match=f"{name}: num_samples must be below 2\\*\\*31"):
            call(2**31)
