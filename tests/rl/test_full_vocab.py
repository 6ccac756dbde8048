"""full_vocab_token_kl: jaxkl's categorical kernel per position, masked, in bounded memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.rl import full_vocab_token_kl

A = 2.0 * jax.random.normal(jax.random.key(0), (3, 4, 37))
B = A + jax.random.normal(jax.random.key(1), (3, 4, 37))
MASK = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], bool)


def _float64_reference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    la = a - np.logaddexp.reduce(a, axis=-1, keepdims=True)
    lb = b - np.logaddexp.reduce(b, axis=-1, keepdims=True)
    return np.sum(np.exp(la) * (la - lb), axis=-1)


@pytest.mark.parametrize("rows_per_chunk", [None, 5, 12])  # one pass; chunks with overlap
def test_equals_jaxkl_kl_and_a_float64_reference(rows_per_chunk):
    got = jax.jit(lambda a, b: full_vocab_token_kl(a, b, MASK, rows_per_chunk=rows_per_chunk))(A, B)
    exact = jaxkl.kl(jaxkl.Categorical(A), jaxkl.Categorical(B))
    np.testing.assert_array_equal(np.asarray(got), np.where(MASK, exact, 0.0))
    np.testing.assert_allclose(got, np.where(MASK, _float64_reference(A, B), 0.0), rtol=2e-6)


def test_gradient_is_the_kernels_and_masked_rows_give_exact_zeros():
    dirty = jnp.where(MASK[..., None], A, jnp.nan).at[0, 3, 0].set(jnp.inf)

    def loss(a, chunk):
        return jnp.sum(full_vocab_token_kl(a, B, MASK, rows_per_chunk=chunk))

    def per_row(a):
        return jnp.sum(jaxkl.kl(jaxkl.Categorical(a), jaxkl.Categorical(B)) * MASK.astype(a.dtype))

    want = jax.grad(per_row)(A)
    for chunk in (None, 5):
        g = jax.jit(jax.grad(loss), static_argnums=1)(dirty, chunk)
        assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~MASK] == 0.0)
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)
        assert np.all(np.asarray(full_vocab_token_kl(dirty, B, MASK))[~MASK] == 0.0)


def test_peak_memory_stays_within_a_small_multiple_of_the_inputs():
    """B·T = 256 positions, V = 151 936 (Qwen's vocabulary), float32: XLA's own accounting.

    Peak = arguments + outputs + temporaries − aliased. Without chunking the masking alone
    copies both inputs (2.0× for the value); chunked, the value needs ≈ 1.1× and the
    gradient with respect to the logits (whose output is itself 0.5×) ≈ 1.6×.
    """
    shape = (16, 16, 151_936)
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    mask = jax.ShapeDtypeStruct(shape[:2], jnp.bool_)
    inputs = 2 * np.prod(shape) * 4

    def peak(f):
        m = jax.jit(f).lower(spec, spec, mask).compile().memory_analysis()
        total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
        return (total - m.alias_size_in_bytes) / inputs

    def value(a, b, m):
        return full_vocab_token_kl(a, b, m)

    def grad_logits(a, b, m):
        return jax.grad(lambda x: full_vocab_token_kl(x, b, m).sum())(a)

    def grad_both(a, b, m):
        return jax.grad(lambda x, y: full_vocab_token_kl(x, y, m).sum(), (0, 1))(a, b)

    assert peak(value) <= 1.5
    assert peak(grad_logits) <= 2.0
    assert peak(grad_both) <= 3.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"logits must have shape \[B, T, V\]"):
        full_vocab_token_kl(A[0], B[0], MASK[0])
    with pytest.raises(ValueError, match=r"ref_logits must have the shape of logits"):
        full_vocab_token_kl(A, B[..., :5], MASK)
    with pytest.raises(ValueError, match=r"mask must have .*\(3, 4\)"):
        full_vocab_token_kl(A, B, MASK[:, :2])
