"""Categorical KL on rows longer than one chunk: the chunked path against the one-chunk path
and against a long-double oracle, values and gradients (no timing here: speed lives in
the benchmarks/throughput package)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.analytic import discrete
from tests.analytic.test_discrete import _categorical_grads_ld, _categorical_kl_centred_ld


def test_chunk_counts():
    assert discrete._chunks(16384) == 1
    assert discrete._chunks(32768) == 2
    assert discrete._chunks(151936) == 16  # 9496 categories per chunk
    assert discrete._chunks(40000) == 4
    assert discrete._chunks(65537) == 1  # prime: no divisor gives chunks ≥ 1024


def _logits(k, seed):
    """Three rows: moderate logits, ±50 extremes with −inf entries, and a near-equal pair."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, k)).astype(np.float32)
    b = rng.normal(size=(3, k)).astype(np.float32)
    a[1] *= 50.0
    b[1] = a[1] + rng.normal(size=k).astype(np.float32) * 10.0
    a[1, ::7] = -np.inf  # a excludes these categories; b keeps them (finite KL)
    b[2] = a[2] + np.float32(1e-3) * rng.normal(size=k).astype(np.float32)
    return a, b


def _one_chunk(monkeypatch, f, *args):
    with monkeypatch.context() as m:
        m.setattr(discrete, "_CHUNK_MAX", 1 << 30)
        return jax.jit(f)(*args)


# K = 32768 (2 chunks) runs the chunked code of K = 40000 (4 chunks) again: --run-slow.
@pytest.mark.parametrize("k", [40000, pytest.param(32768, marks=pytest.mark.slow)])
def test_chunked_equals_one_chunk_and_long_double(monkeypatch, k):
    a, b = _logits(k, seed=k)
    assert discrete._chunks(k) > 1
    got = np.asarray(jax.jit(discrete.categorical)(a, b))
    ref = np.asarray(_one_chunk(monkeypatch, discrete.categorical, a, b))
    np.testing.assert_allclose(got, ref, rtol=2e-6)
    oracle = _categorical_kl_centred_ld(a, b)
    np.testing.assert_allclose(got, oracle, rtol=2e-5)

    grad = jax.grad(lambda x, y: jnp.sum(discrete.categorical(x, y)), argnums=(0, 1))
    ga, gb = (np.asarray(g) for g in jax.jit(grad)(a, b))
    ra, rb = (np.asarray(g) for g in _one_chunk(monkeypatch, grad, a, b))
    np.testing.assert_allclose(ga, ra, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-5, atol=1e-12)
    # Against the oracle, to float32's absolute resolution of g − E_p[g] on the ±50 row.
    oa, ob = _categorical_grads_ld(a, b)
    np.testing.assert_allclose(ga, oa, rtol=1e-3, atol=1e-4 * np.abs(oa).max())
    np.testing.assert_allclose(gb, ob, rtol=1e-3, atol=1e-4 * np.abs(ob).max())


def test_chunked_batch_shapes_and_infinite_rows():
    k = 40000
    a, b = _logits(k, seed=1)
    b[0, 5] = -np.inf  # b excludes a category that a gives mass to: +inf for row 0
    out = discrete.categorical(a.reshape(3, 1, k), b.reshape(3, 1, k))
    assert out.shape == (3, 1)
    assert out[0, 0] == np.inf and np.all(np.isfinite(out[1:]))
    single = discrete.categorical(a[2], b[2])
    assert single.shape == ()
    np.testing.assert_allclose(single, out[2, 0], rtol=1e-6)
