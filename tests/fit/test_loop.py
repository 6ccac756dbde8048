"""The fit loop: convergence, one trace per compiled fit, batching = looping, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxkl
from jaxkl.fit import FitResult, fit, make_fit, make_step, reverse_kl

P = jaxkl.Normal(2.0, 0.5)
STEPS = 300


def counted_loss():
    """A reverse-KL loss on q = N(m, softplus(s)) that counts how often it is traced."""
    traces = {"n": 0}

    def loss(params, key):
        traces["n"] += 1
        q = jaxkl.Normal(params["m"], jax.nn.softplus(params["s"]))
        return reverse_kl(key, q, P, 16, gradient="stl")

    return loss, traces


INIT = {"m": jnp.asarray(0.0), "s": jnp.asarray(0.5)}
OPT = optax.adam(optax.cosine_decay_schedule(0.1, STEPS, alpha=0.01))


def test_fit_reaches_optimum_and_records_history():
    loss, _ = counted_loss()

    def exact(params):
        return jaxkl.kl(jaxkl.Normal(params["m"], jax.nn.softplus(params["s"])), P)

    res = make_fit(loss, OPT, STEPS, trace_params=True, metrics_fn=exact)(INIT, 0)
    assert isinstance(res, FitResult)
    assert res.losses.value.shape == (STEPS,) and res.losses.stderr.shape == (STEPS,)
    assert res.params_trace["m"].shape == (STEPS,)
    assert res.metrics.shape == (STEPS,)
    # Entry t is taken before update t: the first one is at the initial parameters.
    assert float(res.params_trace["m"][0]) == 0.0
    assert float(res.metrics[0]) == pytest.approx(float(exact(INIT)), rel=1e-6)
    # STL's gradient noise vanishes at q = p, so the optimiser, not Monte Carlo noise, sets
    # the residual: after the decayed schedule the exact KL is ~1e-6 or below.
    assert float(exact(res.params)) < 1e-5
    assert float(res.params["m"]) == pytest.approx(2.0, abs=1e-2)


def test_no_retrace_across_steps_and_calls():
    loss, traces = counted_loss()
    run = make_fit(loss, OPT, STEPS)
    run(INIT, jax.random.key(0))
    assert traces["n"] == 1  # the scan body (all STEPS steps) is traced once
    run({"m": jnp.asarray(1.0), "s": jnp.asarray(0.0)}, jax.random.key(5))
    run(INIT, jax.random.key(7))
    assert traces["n"] == 1


def test_make_step_traces_once_in_a_python_loop():
    loss, traces = counted_loss()
    step = make_step(loss, OPT)
    # Python-float (weakly typed) initial values: the step makes them strong, so its own
    # outputs reuse the first trace.
    params = {"m": 0.0, "s": 0.5}
    state = OPT.init(jax.tree_util.tree_map(jnp.asarray, params))
    for t in range(5):
        params, state, est = step(params, state, jax.random.key(t))
    assert traces["n"] == 1
    assert int(est.num_samples) == 16


def test_step_keys_follow_fold_in_so_batched_equals_looped():
    loss, _ = counted_loss()
    keys = jax.random.split(jax.random.key(3), 3)
    inits = {"m": jnp.array([0.0, -1.0, 4.0]), "s": jnp.array([0.5, 0.0, 1.0])}
    batched = make_fit(loss, OPT, 50, batched=True)(inits, keys)
    single = make_fit(loss, OPT, 50)
    for i in range(3):
        one = single(jax.tree_util.tree_map(lambda a, i=i: a[i], inits), keys[i])
        np.testing.assert_allclose(batched.params["m"][i], one.params["m"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.losses.value[i], one.losses.value, rtol=1e-5, atol=1e-6)


def test_unjitted_fit_equals_compiled_and_accepts_seeds_and_legacy_keys():
    loss, _ = counted_loss()
    eager = fit(loss, OPT, INIT, 4, num_steps=20)
    compiled = make_fit(loss, OPT, 20)(INIT, 4)
    legacy = make_fit(loss, OPT, 20)(INIT, jax.random.PRNGKey(4))
    np.testing.assert_allclose(eager.params["m"], compiled.params["m"], rtol=1e-5)
    np.testing.assert_allclose(legacy.params["m"], compiled.params["m"], rtol=1e-5)
    assert eager.losses.num_samples == 16  # a static int stays a Python int


def test_extra_arguments_reach_the_loss():
    def loss(m, key, target):
        return reverse_kl(key, jaxkl.Normal(m, 1.0), jaxkl.Normal(target, 1.0), 8, gradient="stl")

    res = make_fit(loss, OPT, STEPS)(jnp.asarray(0.0), 0, jnp.asarray(-3.0))
    assert float(res.params) == pytest.approx(-3.0, abs=1e-2)


def test_bad_arguments():
    loss, _ = counted_loss()
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        fit(loss, OPT, INIT, 0, num_steps=0)
    with pytest.raises(TypeError, match="num_steps must be a Python int"):
        fit(loss, OPT, INIT, 0, num_steps=2.0)
    with pytest.raises(TypeError, match="must return a scalar"):
        fit(lambda prm, key: (jnp.sum(prm["m"]), 1.0), OPT, INIT, 0, num_steps=2)

    def batch_loss(m, key):
        return reverse_kl(key, jaxkl.Normal(m, 1.0), P, 4)

    with pytest.raises(ValueError, match="value must be a scalar"):
        fit(batch_loss, OPT, jnp.zeros(3), 0, num_steps=2)


def test_plain_scalar_loss():
    """A scalar loss (here the exact KL) is accepted: its history is a [num_steps] array."""
    p = jaxkl.Normal(2.0, 1.0)
    res = fit(
        lambda m, key: jaxkl.kl(jaxkl.Normal(m, 1.0), p), optax.adam(0.1), 0.0, 0, num_steps=300
    )
    assert res.losses.shape == (300,)
    assert float(res.params) == pytest.approx(2.0, abs=1e-2)


def test_estimate_static_fields_survive_the_scan():
    res = fit(lambda m, key: reverse_kl(key, jaxkl.Normal(m, 1.0), P, 16), OPT, 0.0, 0, num_steps=3)
    assert res.losses.value.shape == (3,)
    assert (res.losses.num_samples, res.losses.dof) == (16, 15)
    assert type(res.losses.num_samples) is int
