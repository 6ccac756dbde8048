"""sharded_map equals vmap on one device (to float32 rounding), whatever the device count."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.study.sharded import sharded_map

# Runs in a fresh process with 4 forced CPU devices: sharded over 4 vs vmap on device 0.
_FOUR_DEVICES = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, jaxkl
    from jaxkl.study.sharded import sharded_map
    assert len(jax.devices()) == 4
    q = jaxkl.Normal(jnp.linspace(-1.0, 1.0, 10), jnp.linspace(0.5, 2.0, 10))  # 10 rows: padded
    p = jaxkl.Normal(0.3, 1.1)
    keys = jax.random.split(jax.random.key(0), 10)
    fns = {
        "kl": (lambda d: jaxkl.kl(d, p), q),
        "mc_kl": (lambda args: jaxkl.mc_kl(args[0], args[1], p, 256), (keys, q)),
    }
    for name, (fn, batch) in fns.items():
        sharded = sharded_map(fn, batch)
        with jax.default_device(jax.devices()[0]):
            single = jax.vmap(fn)(batch)
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
            # Not bitwise: each device compiles a program for its own row count, and XLA's
            # vectorised transcendentals round some lanes differently (1 ulp per term);
            # means, stderrs and the Pareto fit carry that rounding. Bound: 32 float32
            # ulps of each output's scale (seen: 1 for kl, 16 for mc_kl's k-hat).
            a, b = np.asarray(a), np.asarray(b)
            scale = float(np.max(np.abs(b)))
            np.testing.assert_allclose(a, b, rtol=0, atol=32 * 2**-23 * scale, err_msg=name)
    print("equal")
    """
)


# CI: sharded_map on a 4-device mesh with padded rows, against one device to float32
# rounding, in test_two_processes_form_one_mesh_and_both_get_the_whole_result (2 × 2
# devices); estimates and typed keys in test_one_device_and_estimates_pass_through. One
# process of 4 devices stays in CI in tests/study/test_sweep.py (run_replicates).
@pytest.mark.slow
def test_four_devices_give_vmaps_numbers_to_float32_rounding():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run(
        [sys.executable, "-c", _FOUR_DEVICES], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("equal")


def test_one_device_and_estimates_pass_through():
    q = jaxkl.Normal(jnp.zeros(3), jnp.array([0.5, 1.0, 2.0]))
    keys = jax.random.split(jax.random.key(1), 3)
    est = sharded_map(lambda a: jaxkl.mc_kl(a[0], a[1], jaxkl.Normal(0.0, 1.0), 64), (keys, q))
    assert isinstance(est, jaxkl.Estimate) and est.value.shape == (3,)
    assert est.num_samples == 64
    np.testing.assert_array_equal(
        est.value,
        jax.vmap(lambda k, d: jaxkl.mc_kl(k, d, jaxkl.Normal(0.0, 1.0), 64).value)(keys, q),
    )


def test_ragged_or_empty_batches_are_refused():
    with pytest.raises(ValueError, match="same leading axis"):
        sharded_map(lambda a, b: a + b, (np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="empty"):
        sharded_map(lambda a: a, np.zeros((0, 2)))


# One of two processes (2 CPU devices each) of one jax.distributed run: a 4-device mesh.
_PROCESS = textwrap.dedent(
    """
    import json, sys, jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address="127.0.0.1:" + sys.argv[2], num_processes=2,
        process_id=int(sys.argv[1]), initialization_timeout=60,
    )
    import jax.numpy as jnp, numpy as np, jaxkl
    from jaxkl.study.sharded import sharded_map
    assert len(jax.devices()) == 4 and len(jax.local_devices()) == 2
    q = jaxkl.Normal(jnp.linspace(-1.0, 1.0, 10), jnp.linspace(0.5, 2.0, 10))
    out = sharded_map(lambda d: jaxkl.kl(d, jaxkl.Normal(0.3, 1.1)), q)
    print("result", json.dumps(np.asarray(out, np.float64).tolist()))
    """
)


def test_two_processes_form_one_mesh_and_both_get_the_whole_result():
    import json

    from jaxkl.study.launch import free_port

    port = str(free_port())
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, str(i), port],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("result"))
        results.append(np.array(json.loads(line.removeprefix("result"))))
    q = jaxkl.Normal(jnp.linspace(-1.0, 1.0, 10), jnp.linspace(0.5, 2.0, 10))
    single = np.asarray(jaxkl.kl(q, jaxkl.Normal(0.3, 1.1)))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], single, rtol=0, atol=32 * 2**-23 * single.max())
