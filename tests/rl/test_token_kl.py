"""token_kl: the per-token terms, masking that nothing leaks through, opt-in clamping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.rl import TOKEN_ESTIMATORS, token_kl

KEY = jax.random.key(0)
LOGP = -jnp.abs(jax.random.normal(jax.random.fold_in(KEY, 1), (3, 5)))
REF = -jnp.abs(jax.random.normal(jax.random.fold_in(KEY, 2), (3, 5)))
MASK = jnp.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
GARBAGE = (1e4, -1e4, jnp.inf, -jnp.inf, jnp.nan)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_unmasked_terms_are_per_sample_kl(estimator):
    got = token_kl(LOGP, REF, MASK, estimator=estimator)
    want = jaxkl.per_sample_kl(LOGP, REF, estimator)
    np.testing.assert_allclose(got[MASK], want[MASK], rtol=1e-6)
    assert np.all(np.asarray(got)[~np.asarray(MASK)] == 0.0)


def test_k3_plus_has_k3_value_and_k2_gradient():
    value = token_kl(LOGP, REF, MASK, estimator="k3+")
    assert np.array_equal(value, token_kl(LOGP, REF, MASK, estimator="k3"))

    def grad(est):
        return jax.grad(lambda lp: token_kl(lp, REF, MASK, estimator=est).sum())(LOGP)

    assert np.array_equal(grad("k3+"), grad("k2"))
    assert not np.allclose(grad("k3"), grad("k2"))


@pytest.mark.parametrize("estimator", TOKEN_ESTIMATORS)
def test_masked_garbage_gives_exact_zeros_and_leaks_nowhere(estimator):
    def total(lp, ref):
        return token_kl(lp, ref, MASK, estimator=estimator).sum()

    @jax.jit
    @jax.vmap
    def value_and_grads(bad):  # one row of the vmap per kind of garbage
        lp, ref = jnp.where(MASK, LOGP, bad), jnp.where(MASK, REF, -bad)
        return token_kl(lp, ref, MASK, estimator=estimator), *jax.grad(total, (0, 1))(lp, ref)

    dirty = value_and_grads(jnp.asarray(GARBAGE))
    clean = value_and_grads(jnp.zeros(1))
    for got, want in zip(dirty, clean, strict=True):
        got = np.asarray(got)
        assert np.all(np.isfinite(got))
        assert np.all(got[:, ~np.asarray(MASK)] == 0.0)  # exactly 0, not merely small
        assert np.array_equal(got, np.broadcast_to(want, got.shape))  # the rest is untouched


@pytest.mark.parametrize("mask_dtype", [jnp.int32, jnp.float32])
def test_zero_one_masks_equal_bool_masks(mask_dtype):
    got = token_kl(LOGP, REF, MASK.astype(mask_dtype), estimator="k3")
    assert np.array_equal(got, token_kl(LOGP, REF, MASK, estimator="k3"))


def test_clip_is_opt_in_and_flat_beyond_the_bound():
    lp = jnp.array([[-0.1, -3.0, -0.2]])
    ref = jnp.array([[-0.3, -0.1, -9.0]])  # log r = −0.2, 2.9, −8.8
    mask = jnp.ones((1, 3), bool)
    free = token_kl(lp, ref, mask, estimator="k1")
    np.testing.assert_allclose(free, [[0.2, -2.9, 8.8]], rtol=1e-6)  # no silent clamp
    clipped = token_kl(lp, ref, mask, estimator="k1", clip_log_ratio=1.0)
    np.testing.assert_allclose(clipped, [[0.2, -1.0, 1.0]], rtol=1e-6)
    g = jax.grad(lambda x: token_kl(x, ref, mask, estimator="k3", clip_log_ratio=1.0).sum())(lp)
    assert g[0, 0] != 0.0 and g[0, 1] == 0.0 and g[0, 2] == 0.0  # the far tokens are let go
    # k3 of a log-ratio beyond float32's exp range is +inf unless the user clamps it.
    far = jnp.array([[-100.0]])
    assert token_kl(far, jnp.zeros((1, 1)), jnp.ones((1, 1)), estimator="k3")[0, 0] == jnp.inf
    assert jnp.isfinite(
        token_kl(far, jnp.zeros((1, 1)), jnp.ones((1, 1)), estimator="k3", clip_log_ratio=20.0)
    ).all()
    with pytest.raises(ValueError, match="clip_log_ratio must be > 0"):
        token_kl(lp, ref, mask, estimator="k1", clip_log_ratio=0.0)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (jnp.zeros((2, 3)), jnp.zeros((2, 4)), jnp.ones((2, 3))),
            r"ref_logp must have .*\(2, 3\).*\(2, 4\)",
        ),
        (
            (jnp.zeros((6,)), jnp.zeros((6,)), jnp.ones((6,))),
            r"logp must have shape \[B, T\]; got .*\(6,\)",
        ),
        (
            (jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((3, 2))),
            r"mask must have .*\(2, 3\).*\(3, 2\)",
        ),
        ((jnp.zeros((2, 3)), jnp.zeros((2, 3)), 2 * jnp.ones((2, 3))), "only 0 and 1"),
        ((jnp.full((2, 3), jnp.nan), jnp.zeros((2, 3)), jnp.ones((2, 3))), "logp is NaN"),
    ],
)
def test_errors_name_the_argument_and_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        token_kl(*args, estimator="k1")
    with pytest.raises(ValueError, match="estimator must be one of"):
        token_kl(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones((1, 1)), estimator="k4")


def test_shape_errors_are_raised_at_trace_time():
    f = jax.jit(lambda lp, ref, m: token_kl(lp, ref, m, estimator="k3"))
    with pytest.raises(ValueError, match="ref_logp must have"):
        f(jnp.zeros((2, 3)), jnp.zeros((3, 2)), jnp.ones((2, 3)))


def test_jit_vmap_and_no_retrace():
    traces = []

    @jax.jit
    def f(lp, ref, m):
        traces.append(None)
        return token_kl(lp, ref, m, estimator="k3")

    for i in range(3):
        out = f(LOGP + i, REF, MASK)
    assert len(traces) == 1
    np.testing.assert_allclose(out, token_kl(LOGP + 2, REF, MASK, estimator="k3"), rtol=1e-6)
    stacked = jnp.stack([LOGP, LOGP - 1.0])
    batched = jax.vmap(lambda lp: token_kl(lp, REF, MASK, estimator="k2"))(stacked)
    for i in range(2):
        np.testing.assert_allclose(batched[i], token_kl(stacked[i], REF, MASK, estimator="k2"))


def test_float64_stays_float64():
    with jax.enable_x64(True):
        lp = jnp.asarray(np.asarray(LOGP), jnp.float64)
        ref = jnp.asarray(np.asarray(REF), jnp.float64)
        out = token_kl(lp, ref, MASK, estimator="k3")
        assert out.dtype == jnp.float64
        log_r = np.asarray(ref) - np.asarray(lp)
        want = np.where(np.asarray(MASK), np.expm1(log_r) - log_r, 0.0)
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-14)
