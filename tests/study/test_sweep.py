"""run_replicates and map_rows: per-replicate keys, padding, and device-count invariance."""

import os
import subprocess
import sys

import jax
import numpy as np

from jaxkl.study import sweep
from jaxkl.study.sweep import map_rows, run_replicates

SCRIPT = """
import hashlib, jax, numpy as np
from jaxkl.study.sweep import run_replicates
out = run_replicates(lambda k: (jax.random.normal(k, (33,)), jax.random.uniform(k, (3,))),
                     7, 21, chunk=4)
blob = b"".join(np.asarray(a).tobytes() for a in out.outputs)
print(len(jax.devices()), hashlib.sha256(blob).hexdigest())
"""


def test_replicate_i_uses_fold_in_key_i():
    run = run_replicates(lambda k: jax.random.normal(k, (5,)), 3, 10, chunk=4)
    assert run.outputs.shape == (10, 5)
    for i in (0, 9):  # padding to 12 rows is dropped; row i is fold_in(key, i)
        expected = jax.random.normal(jax.random.fold_in(jax.random.key(3), i), (5,))
        np.testing.assert_array_equal(run.outputs[i], expected)


def test_draws_are_bitwise_identical_on_1_and_4_devices():
    digests = {}
    for n in (1, 4):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        assert out[0] == str(n)
        digests[n] = out[1]
    assert digests[1] == digests[4]


def test_map_rows_applies_fn_per_row_and_reuses_its_compile():
    def fn(a, b):
        return {"s": a.sum() + b}

    first = map_rows(fn, [np.arange(30.0).reshape(10, 3), np.ones(10)], chunk=4)
    np.testing.assert_allclose(first.outputs["s"], np.arange(30.0).reshape(10, 3).sum(1) + 1)
    cached = len(sweep._COMPILED)
    second = map_rows(fn, [np.zeros((10, 3)), np.ones(10)], chunk=4)
    assert len(sweep._COMPILED) == cached  # same fn and shapes: the executable is reused
    np.testing.assert_allclose(second.outputs["s"], 1.0)
    # more rows run as more rounds of the same shape (cached); a new row shape compiles
    map_rows(fn, [np.zeros((12, 3)), np.ones(12)], chunk=4)
    assert len(sweep._COMPILED) == cached
    map_rows(fn, [np.zeros((10, 5)), np.ones(10)], chunk=4)
    assert len(sweep._COMPILED) == cached + 1
