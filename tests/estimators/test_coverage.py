"""Every interval jaxkl prints must cover: ci(0.95) coverage over 2000 replicates.

Each test draws R = 2000 independent estimates with fixed keys and counts how often
``est.ci(0.95)`` contains the truth. With R = 2000 the coverage has SE ≈ 0.005, so the
accepted band 0.93–0.97 is ±4 SE around 0.95. Also here: the reliability verdicts on the
far pair, and the control variate never doing much worse than plain k1.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from tests._subset import slow_except

R = 2000
N = 1024
KEYS = jax.random.split(jax.random.key(2024), R)

CLOSE = (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0))  # KL 0.5, r lognormal(σ = 1)
# p narrower than q: r = p/q is bounded, so every ratio-based estimator has light tails.
LIGHT = (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 0.8))
UNEQUAL = (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.3))  # k1 not linear in x
FAR = (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(float(np.sqrt(20.0)), 1.0))  # KL 10


def _kl(pair):
    return float(jaxkl.kl(*pair))


def _replicate(fn, keys=KEYS):
    def one(key):
        est = fn(key)
        low, high = est.ci(0.95)
        return {"value": est.value, "low": low, "high": high, "reliable": est.reliable}

    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(keys))


def _coverage(out, truth):
    return float(np.mean((out["low"] <= truth) & (truth <= out["high"])))


def _assert_covers(out, truth, where):
    cov = _coverage(out, truth)
    assert 0.93 <= cov <= 0.97, f"{where}: coverage {cov:.4f} of ci(0.95) over {R} replicates"


# k2's own mean for a Gaussian mean shift Δ: log r = Δx − Δ²/2 ~ N(−Δ²/2, Δ²), so
# E k2 = ½(Δ² + Δ⁴/4).
K2_MEAN_CLOSE = 0.5 * (1.0 + 0.25)

CASES = {
    "k1": (lambda k: jaxkl.mc_kl(k, *CLOSE, N), _kl(CLOSE)),
    "k2-own-mean": (lambda k: jaxkl.mc_kl(k, *CLOSE, N, estimator="k2"), K2_MEAN_CLOSE),
    "k3-light": (lambda k: jaxkl.mc_kl(k, *LIGHT, N, estimator="k3"), _kl(LIGHT)),
    "antithetic": (lambda k: jaxkl.mc_kl(k, *UNEQUAL, N, antithetic=True), _kl(UNEQUAL)),
    "qmc": (lambda k: jaxkl.mc_kl(k, *UNEQUAL, N, qmc=True), _kl(UNEQUAL)),
    "control-variate-light": (
        lambda k: jaxkl.mc_kl(k, *LIGHT, N, control_variate=True),
        _kl(LIGHT),
    ),
    "control-variate-close": (
        lambda k: jaxkl.mc_kl(k, *CLOSE, N, control_variate=True),
        _kl(CLOSE),
    ),
    "importance": (
        lambda k: jaxkl.importance_kl(k, *CLOSE, jaxkl.Normal(0.0, 1.5), N),
        _kl(CLOSE),
    ),
    "snis": (
        lambda k: jaxkl.importance_kl(k, *CLOSE, jaxkl.Normal(0.0, 1.5), N, self_normalized=True),
        _kl(CLOSE),
    ),
}


# The control variate's interval is one code path: CI checks it on the close pair (r
# lognormal, the harder case for its gates); the light pair runs under --run-slow. k2 and
# k3 change the per-draw terms, not the interval: it is the mean ± t·sd/√n of i.i.d. terms
# that CI checks on k1, so their cases run under --run-slow too.
_SLOW_CI = {"control-variate-light", "k2-own-mean", "k3-light"}


@pytest.mark.parametrize("name", slow_except(CASES, list(CASES), keep=set(CASES) - _SLOW_CI))
def test_ci_covers(name):
    fn, truth = CASES[name]
    _assert_covers(_replicate(fn), truth, name)


# CI: RQMC's dof m − 1 in test_samplers.py::test_every_spelling_…[rqmc-mvn_tril-k1] and
# [rqmc8-batched-k3]; ci's t quantile at the dof in test_estimate.py::test_ci_is_student_t_….
@pytest.mark.slow
def test_qmc_t_interval_uses_its_dof():
    """16 randomisation means need t₁₅ (2.13), not 1.96: dof is m − 1 and ci uses it."""
    est = jaxkl.mc_kl(0, *UNEQUAL, 256, qmc=True, qmc_randomizations=16)
    assert est.dof == 15
    low, high = est.ci(0.95)
    np.testing.assert_allclose((high - low) / (2 * est.stderr), 2.131449545559323, rtol=1e-5)


def test_far_pair_reliability():
    """q = N(0,1), p = N(√20, 1): the float32 sampler never reaches p's mass (≈ 5.2σ), so
    every ratio-based estimator is biased and must say so; k1 is fine."""
    keys = KEYS[:1000]
    k1 = _replicate(lambda k: jaxkl.mc_kl(k, *FAR, N), keys)
    k3 = _replicate(lambda k: jaxkl.mc_kl(k, *FAR, N, estimator="k3"), keys)
    cv = _replicate(lambda k: jaxkl.mc_kl(k, *FAR, N, control_variate=True), keys)
    assert np.mean(k1["reliable"]) >= 0.95
    assert np.mean(k3["reliable"]) <= 0.05
    assert np.mean(cv["reliable"]) <= 0.05
    # k3 is biased low by far more than its noise: the verdict is not a false alarm.
    assert abs(np.mean(k3["value"]) - 10.0) > 5 * np.std(k3["value"]) / np.sqrt(1000)


def _gamma_pair():
    return jaxkl.Gamma(2.0, 1.0), jaxkl.Gamma(3.0, 2.0)


def _mixture_pair():
    mix = jaxkl.Mixture(
        jnp.log(jnp.array([0.3, 0.7])),
        jaxkl.Normal(jnp.array([-2.0, 1.5]), jnp.array([0.6, 1.0])),
    )
    return mix, jaxkl.Normal(0.0, 2.0)


CV_PAIRS = {
    "close": lambda: CLOSE,
    "far": lambda: FAR,
    "gamma": _gamma_pair,
    "mixture": _mixture_pair,  # ∫p²/q diverges: r has infinite variance
}


@functools.cache
def _k1_and_cv(pair):
    """Plain k1 and control-variate values of one pair on the same 1000 keys (paired), N =
    1024: computed once per pair for the two tests below (read-only arrays)."""
    q, p = CV_PAIRS[pair]()

    def one(key):
        return (
            jaxkl.mc_kl(key, q, p, N).value,
            jaxkl.mc_kl(key, q, p, N, control_variate=True).value,
        )

    return tuple(map(np.asarray, jax.jit(jax.vmap(one))(KEYS[:1000])))


# gamma's light tails are the close pair's case again (its gate stays open): --run-slow.
# The mixture's log E_q[r²] is +inf in closed form (this very pair in tests/analytic/
# test_ratio_moments.py::test_mixture_finiteness_and_unknown_pairs), which shuts the same
# closed-form gate as the far pair's e²⁰ (β = 0: the control variate is k1). CI runs the
# far pair; the mixture (and its 10⁷-draw reference) runs under --run-slow.
@pytest.mark.parametrize(
    "pair", slow_except(CV_PAIRS, list(CV_PAIRS), keep=set(CV_PAIRS) - {"gamma", "mixture"})
)
def test_control_variate_never_much_worse_than_k1(pair):
    """MSE(control variate) ≤ 1.1 × MSE(k1) on the same draws (paired), R = 1000, N = 1024.

    The paired difference d = (cv − KL)² − 1.1·(k1 − KL)² must not be significantly
    positive (z < 2); without the gates the control variate's MSE was 8×–10⁵× k1's on
    the far and mixture pairs.
    """
    q, p = CV_PAIRS[pair]()
    truth = float(jaxkl.kl(q, p)) if pair != "mixture" else None
    k1, cv = _k1_and_cv(pair)
    if truth is None:  # no closed form: a 10⁷-draw k1 estimate is the reference
        truth = float(jaxkl.mc_kl(99, q, p, 10_000_000).value)
    d = (cv - truth) ** 2 - 1.1 * (k1 - truth) ** 2
    z = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert z < 2.0, (pair, z, np.mean((cv - truth) ** 2) / np.mean((k1 - truth) ** 2))


def test_control_variate_helps_where_r_is_light():
    """Where r is well behaved the gates let the control variate work (≥ 1.5× less MSE)."""
    k1, cv = _k1_and_cv("close")  # CLOSE, the draws of test_control_variate_…[close]
    assert np.mean((k1 - 0.5) ** 2) > 1.5 * np.mean((cv - 0.5) ** 2)


def _knn_smooth(n):
    """knn_kl on CLOSE's pair in 1-D (x ~ N(0, 1), y ~ N(1, 1), KL 0.5), n = m.

    x and y are drawn inside the same jitted, vmapped function as the estimate: there the
    stderr used to be NaN (XLA recomputed the sample in several fusions with different
    rounding, so xᵢ was not at distance 0 from itself).
    """

    def fn(key):
        kx, ky = jax.random.split(key)
        return jaxkl.knn_kl(jax.random.normal(kx, (n,)), 1.0 + jax.random.normal(ky, (n,)))

    return fn


def test_knn_ci_covers():
    """k-NN's stderr is the sd of G = 10 subsample estimates, so ci uses t₉ (2.262).

    n = m = 500 keeps this fast; measured here 0.938 (sd of the replicates 1.07× the RMS
    stderr, bias −0.009 ± 0.003). The n = 10⁴ version is marked slow.
    """
    out = _replicate(_knn_smooth(500))
    assert np.all(np.isfinite(out["low"]) & np.isfinite(out["high"]))
    _assert_covers(out, _kl(CLOSE), "knn n=500")
    est = jax.jit(_knn_smooth(500))(KEYS[0])
    assert est.dof == 9
    np.testing.assert_allclose(
        (est.ci(0.95)[1] - est.value) / est.stderr, 2.2621571627409915, rtol=1e-5
    )


@pytest.mark.slow
def test_knn_ci_covers_at_10k():
    _assert_covers(_replicate(_knn_smooth(10_000)), _kl(CLOSE), "knn n=10⁴")
