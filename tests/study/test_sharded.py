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
