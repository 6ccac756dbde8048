"""Estimators under jax_enable_x64: float64 in, float64 out, same answers as float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.study.prefix import prefix_mean_stderr, prefix_self_normalized
from tests._subset import slow_except


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _pairs():
    return jaxkl.Normal(jnp.float64(0.0), 1.0), jaxkl.Normal(jnp.float64(1.0), 1.0)


_OPTIONS = {
    "iid": {},
    "k3": {"estimator": "k3"},
    "antithetic": {"antithetic": True},
    "qmc": {"qmc": True},
    "control_variate": {"control_variate": True},
}


# Each option compiles its own float64 and float32 programs (1-4 s a case). CI keeps the
# plain float64 path (i.i.d. draws, k1) and the options with dtype-dependent steps: RQMC
# clips its uniforms by the dtype's eps; the control variate's ratio moments and
# log-space gate overflow at dtype-dependent thresholds. k3 in float64 is pinned below by
# test_kl_from_log_probs_k3_overflow_threshold_moves_with_dtype (mc_kl computes its
# terms with the same per_sample_kl); antithetic draws are the i.i.d. draws and their
# reflections 2·mean − x (no dtype-dependent step), and float32 antithetic runs in CI in
# test_variance_reduction.py. --run-slow runs all five.
@pytest.mark.parametrize(
    "kw", slow_except(_OPTIONS.values(), list(_OPTIONS), keep={"iid", "qmc", "control_variate"})
)
def test_mc_kl_is_float64_and_agrees_with_float32(x64, kw):
    q, p = _pairs()
    assert q.dtype == jnp.float64
    est = jaxkl.mc_kl(0, q, p, 4096, **kw)
    assert est.value.dtype == jnp.float64 and est.stderr.dtype == jnp.float64
    assert abs(float(est.value) - 0.5) < 5 * float(est.stderr) + 1e-12
    with jax.enable_x64(False):
        q32, p32 = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
        est32 = jaxkl.mc_kl(0, q32, p32, 4096, **kw)
    assert est32.value.dtype == jnp.float32
    # float64 normals are built from other random bits than float32 ones, so the two runs
    # are independent draws: they agree within their combined standard error.
    combined = np.hypot(float(est32.stderr), float(est.stderr))
    assert abs(float(est32.value) - float(est.value)) < 5 * combined + 1e-6


def test_kl_from_log_probs_k3_overflow_threshold_moves_with_dtype(x64):
    log_q = jnp.zeros(1)
    # 100 nats overflow float32's exp but not float64's.
    out = jaxkl.kl_from_log_probs(log_q, jnp.array([100.0]), estimator="k3")
    assert out.value.dtype == jnp.float64 and np.isfinite(out.value)
    np.testing.assert_allclose(out.value, np.expm1(100.0) - 100.0, rtol=1e-12)


def test_importance_kl_float64(x64):
    q, p = _pairs()
    est = jaxkl.importance_kl(0, q, p, jaxkl.Normal(jnp.float64(0.0), 1.5), 4096)
    assert est.value.dtype == jnp.float64
    assert abs(float(est.value) - 0.5) < 5 * float(est.stderr)


def test_prefix_statistics_float64(x64):
    rng = np.random.default_rng(0)
    t = rng.normal(size=1024) * 1e-3 + 1e3  # a large mean over a tiny spread
    mean, se = prefix_mean_stderr(jnp.asarray(t), (16, 1024))
    assert mean.dtype == jnp.float64
    np.testing.assert_allclose(mean, [t[:16].mean(), t.mean()], rtol=1e-14)
    np.testing.assert_allclose(se, [t[:16].std(ddof=1) / 4, t.std(ddof=1) / 32], rtol=1e-9)
    lw, f = rng.normal(size=64) * 50, rng.normal(size=64)
    v, _, ess = prefix_self_normalized(jnp.asarray(lw), jnp.asarray(f), (64,))
    w = np.exp(lw - lw.max())
    np.testing.assert_allclose(v[0], (w * f).sum() / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(ess[0], w.sum() ** 2 / (w**2).sum(), rtol=1e-12)
