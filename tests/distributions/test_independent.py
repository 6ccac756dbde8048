"""Independent: shapes, sums over reinterpreted axes, pytree behaviour, bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

RNG = np.random.default_rng(3)
LOC = RNG.normal(size=(2, 3, 4))
SCALE = np.exp(RNG.normal(scale=0.5, size=(2, 3, 4)))


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_shapes(n):
    d = jaxkl.Independent(jaxkl.Normal(LOC, SCALE), n)
    full = (2, 3, 4)
    assert d.batch_shape == full[: 3 - n]
    assert d.event_shape == full[3 - n :]
    # eval_shape traces without compiling: shape checks need no numbers.
    assert jax.eval_shape(lambda: d.sample(0, (5,))).shape == (5, *full)
    assert jax.eval_shape(lambda: d.log_prob(np.zeros(full))).shape == full[: 3 - n]
    assert jax.eval_shape(d.entropy).shape == full[: 3 - n]
    assert jax.eval_shape(d.mean).shape == full and jax.eval_shape(d.variance).shape == full
    assert d.dtype == jnp.float32


def test_log_prob_and_entropy_sum_over_reinterpreted_axes_vs_scipy():
    d = jaxkl.Independent(jaxkl.Normal(LOC, SCALE), 2)
    x = RNG.normal(size=(5, 2, 3, 4))
    ref = stats.norm(LOC, SCALE).logpdf(x).sum(axis=(-2, -1))
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-5)
    np.testing.assert_allclose(
        d.entropy(), stats.norm(LOC, SCALE).entropy().sum((-2, -1)), rtol=1e-5
    )


def test_event_axes_of_an_mvn_base_are_kept():
    loc = RNG.normal(size=(3, 2))
    scale = np.exp(RNG.normal(size=(3, 2)))
    d = jaxkl.Independent(jaxkl.MultivariateNormalDiag(loc, scale), 1)
    assert d.batch_shape == () and d.event_shape == (3, 2)
    x = RNG.normal(size=(4, 3, 2))
    ref = stats.norm(loc, scale).logpdf(x).sum(axis=(-2, -1))
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-5)
    with pytest.raises(
        ValueError, match=r"Independent.log_prob: x must have shape \[\.\.\., 3, 2\]"
    ):
        d.log_prob(np.zeros((4, 2)))


def test_sample_equals_base_sample():
    base = jaxkl.Normal(LOC, SCALE)
    d = jaxkl.Independent(base, 2)
    np.testing.assert_array_equal(d.sample(4, (3,)), base.sample(4, (3,)))


def test_reparameterized_mirrors_base():
    assert jaxkl.Independent(jaxkl.Normal(0.0, jnp.ones(2)), 1).reparameterized is True

    @dataclasses.dataclass(frozen=True, eq=False)
    class ScoreOnlyNormal(jaxkl.Normal):
        reparameterized = False

    base = ScoreOnlyNormal(jnp.zeros(2), jnp.ones(2))
    assert jaxkl.Independent(base, 1).reparameterized is False


def test_pytree_flatten_unflatten_jit_vmap_grad():
    d = jaxkl.Independent(
        jaxkl.Normal(jnp.asarray(LOC, jnp.float32), jnp.asarray(SCALE, jnp.float32)), 1
    )
    leaves, tree = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2  # the base's loc and scale; n is static auxiliary data
    rebuilt = jax.tree_util.tree_unflatten(tree, leaves)
    assert isinstance(rebuilt, jaxkl.Independent) and rebuilt.reinterpreted_batch_ndims == 1
    assert rebuilt.event_shape == (4,)
    x = jnp.zeros(4)
    np.testing.assert_allclose(jax.jit(lambda d: d.log_prob(x))(d), d.log_prob(x), rtol=1e-6)
    per = jax.vmap(lambda d: d.log_prob(x))(d)  # maps over the leading batch axis
    np.testing.assert_allclose(per, d.log_prob(x), rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(x).sum())(d)
    assert isinstance(g, jaxkl.Independent) and isinstance(g.base, jaxkl.Normal)
    np.testing.assert_allclose(g.base.loc, -LOC / SCALE**2, rtol=1e-4)


def test_static_field_distinguishes_treedefs():
    base = jaxkl.Normal(jnp.zeros((2, 3)), 1.0)
    t1 = jax.tree_util.tree_structure(jaxkl.Independent(base, 1))
    t2 = jax.tree_util.tree_structure(jaxkl.Independent(base, 2))
    assert t1 != t2


def test_numpy_integer_is_accepted():
    d = jaxkl.Independent(jaxkl.Normal(jnp.zeros(3), 1.0), np.int64(1))
    assert type(d.reinterpreted_batch_ndims) is int and d.event_shape == (3,)


@pytest.mark.parametrize(
    "n, match",
    [
        (3, r"between 0 and len\(base.batch_shape\) = 2 \(base batch_shape \(2, 3\)\); got 3"),
        (-1, "between 0 and len"),
        (1.0, "must be an int"),
        (True, "must be an int"),
    ],
)
def test_bad_reinterpreted_batch_ndims_raise(n, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.Independent(jaxkl.Normal(jnp.zeros((2, 3)), 1.0), n)


def test_base_must_be_a_distribution():
    with pytest.raises(ValueError, match="base must be a jaxkl Distribution; got ndarray"):
        jaxkl.Independent(np.zeros(3), 1)
