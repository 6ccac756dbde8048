"""jaxkl._random: the flat draws are jax.random's shaped draws bit for bit, in cheaper
programs."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl import _random

SHAPES = [(), (7,), (2, 3, 4)]  # a scalar, a vector and rank 3


def _draws(key, shape, dtype):
    """(ours, jax's) for normal, uniform on [0.25, 2) and exponential."""
    return [
        (_random.normal(key, shape, dtype), jax.random.normal(key, shape, dtype)),
        (
            _random.uniform(key, shape, dtype, 0.25, 2.0),
            jax.random.uniform(key, shape, dtype, 0.25, 2.0),
        ),
        (_random.exponential(key, shape, dtype), jax.random.exponential(key, shape, dtype)),
    ]


def _assert_same_bits(pairs):
    for ours, theirs in pairs:
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_eager_draws_are_jax_randoms_bit_for_bit(shape):
    _assert_same_bits(_draws(jax.random.key(11), shape, jnp.float32))


def test_float64_draws_are_jax_randoms_bit_for_bit():
    with jax.enable_x64(True):
        _assert_same_bits(_draws(jax.random.key(12), (3, 5), jnp.float64))


def test_vmapped_and_jitted_draws_are_jax_randoms_bit_for_bit():
    keys = jax.random.split(jax.random.key(13), 6)

    _assert_same_bits(jax.jit(jax.vmap(lambda k: _draws(k, (9, 4), jnp.float32)))(keys))


@pytest.mark.parametrize(
    "key",
    [jax.random.PRNGKey(14), jax.random.key(14, impl="rbg")],
    ids=["legacy-uint32", "rbg"],
)
def test_other_keys_get_the_shaped_draw(key):
    # The flat index rule is threefry's; other keys take jax.random's own shaped call.
    _assert_same_bits(_draws(key, (3, 5), jnp.float32))


CATEGORICAL = [  # (logits shape, draw shape): no batch, a batch, a broadcast batch
    ((3,), (7,)),
    ((2, 4), (5, 2)),
    ((1, 4), (6, 3)),
]


@pytest.mark.parametrize("logits_shape, shape", CATEGORICAL, ids=str)
def test_categorical_is_jax_randoms_bit_for_bit(logits_shape, shape):
    logits = jax.random.normal(jax.random.key(20), logits_shape) * 3.0
    for key in (jax.random.key(21), jax.random.key(21, impl="rbg")):
        ours = _random.categorical(key, logits, shape)
        theirs = jax.random.categorical(key, logits, axis=-1, shape=shape)
        assert ours.shape == theirs.shape == shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_vmapped_categorical_is_jax_randoms_bit_for_bit():
    keys = jax.random.split(jax.random.key(22), 5)
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    ours = jax.jit(jax.vmap(lambda k: _random.categorical(k, logits, (200,))))(keys)
    theirs = jax.vmap(lambda k: jax.random.categorical(k, logits, shape=(200,)))(keys)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_non_partitionable_threefry_gets_the_shaped_draw():
    # There the bits depend on the shape, so the flat draw would differ: the config is
    # read at trace time and is part of jit's cache key.
    with jax.threefry_partitionable(False):
        _assert_same_bits(_draws(jax.random.key(17), (3, 5), jnp.float32))


def test_vmapped_draw_compiles_no_rank_three_threefry():
    # What the module is for: under vmap over keys an [n, d] draw would run threefry on
    # [keys, n, d] arrays, which XLA:CPU compiles several times slower than [keys, n·d].
    keys = jax.random.split(jax.random.key(15), 16)
    hlo = (
        jax.jit(jax.vmap(lambda k: _random.normal(k, (1027, 16), jnp.float32)))
        .lower(keys)
        .compile()
        .as_text()
    )
    assert re.search(r"u32\[16,16432\]", hlo)
    assert not re.search(r"u32\[16,1027,16\]", hlo)


def test_repeated_eager_calls_do_not_compile_again():
    key = jax.random.key(16)
    _random.normal(key, (5, 3), jnp.float32)
    before = _random.normal._cache_size()
    for seed in range(3):
        _random.normal(jax.random.key(seed), (5, 3), jnp.float32)
    assert _random.normal._cache_size() == before
