"""Several processes joined by jax.distributed: the same numbers as one, one writer, and a
failure that stops everyone in bounded time.

Every process here is a real subprocess started by ``python -m jaxkl.study.launch`` (or,
for the heartbeat tests, by the test itself with the launcher's environment), CPU-only with
forced host devices and gloo collectives. They import the jaxkl of this checkout: the
launcher passes its environment on, and ``_env`` puts the repository first on PYTHONPATH.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxkl
from jaxkl.study import launch
from jaxkl.study.local_rows import LocalRows
from jaxkl.study.sweep import map_rows, run_replicates
from tests.study.small_study import SMALL

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "bias_variance.py"
QUICK = ROOT / "configs" / "bias_variance_quick.toml"


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _launch_cmd(processes: int, devices: int, *command: str) -> list[str]:
    return [
        sys.executable, "-m", "jaxkl.study.launch",
        "--processes", str(processes), "--devices-per-process", str(devices),
        "--", *command,
    ]  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; Linux marks it "Z" in /proc/<pid>/stat.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(") ")[-1].startswith("Z"))


def _pids(output: str) -> dict[str, int]:
    """{"p0": pid, ...} from the ``pid N`` lines each process prints first."""
    out = {}
    for line in output.splitlines():
        prefix, _, rest = line.partition(" ")
        if rest.startswith("pid "):
            out[prefix.strip("[]")] = int(rest.split()[1])
    return out


# ---------------------------------------------------------------- the sharded engine

# One replicate of a k1 study: draws of q, then k1 from them. 30 replicates in chunks of 3
# on 4 devices: 3 rounds of 12 with 6 padding rows, so every process holds rows of every
# round and some of the padding. The second stage returns the draws too, so the gathered
# outputs show both the draws and the values.
_SWEEP = textwrap.dedent(
    """
    import json, os
    from jaxkl.study import distributed
    assert distributed.initialize() == ("JAX_COORDINATOR_ADDRESS" in os.environ)
    import jax, numpy as np, jaxkl
    from jaxkl.study.sweep import map_rows, run_replicates
    print("pid", os.getpid(), flush=True)
    q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.5)

    def draw(key):
        x = q.sample(key, (64,))
        return q.log_prob(x), p.log_prob(x)

    def k1(log_q, log_p):
        return log_q, log_p, jaxkl.kl_from_log_probs(log_q, log_p).value

    held = run_replicates(draw, 0, 30, chunk=3, gather=False)  # the draws stay local
    log_q, log_p, values = map_rows(k1, held.outputs, chunk=3).outputs  # gathered
    if distributed.is_writer():
        result = {"devices": len(jax.devices()), "processes": jax.process_count(),
                  **{k: v.tobytes().hex() for k, v in
                     {"log_q": log_q, "log_p": log_p, "values": values}.items()}}
        print("result", json.dumps(result))
    """
)


def _sweep_result(output: str) -> dict:
    (line,) = [x for x in output.splitlines() if "result " in x]
    out = json.loads(line.split("result ", 1)[1])
    for k in ("log_q", "log_p", "values"):
        out[k] = np.frombuffer(bytes.fromhex(out[k]), np.float32)
    return out


@pytest.fixture(scope="module")
def launched_sweep():
    """The sweep on 2 processes × 2 CPU devices, started by the launcher."""
    proc = subprocess.run(
        _launch_cmd(2, 2, "-c", _SWEEP), env=_env(), cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_draw_and_estimate_as_one_process(launched_sweep):
    """The representative CI test (about 10 s alone, 20 s on a loaded 2-core machine).

    2 processes × 2 devices vs this process's one device: the draws bitwise identical
    (replicate i is fold_in(key, i) in a chunk of fixed size), k1 to float32 rounding (a
    program compiled for another device count may round differently; 2 × 2 vs 1 × 4 is
    bitwise, in the slow test below). Only process 0 reports; the launcher leaves no
    process behind."""
    out = launched_sweep.stdout
    assert [x.split()[0] for x in out.splitlines() if "result " in x] == ["[p0]"]
    multi = _sweep_result(out)
    assert (multi["devices"], multi["processes"]) == (4, 2)
    q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.5)

    def draw(key):
        x = q.sample(key, (64,))
        return q.log_prob(x), p.log_prob(x)

    log_q, log_p = run_replicates(draw, 0, 30, chunk=3, devices=jax.devices()[:1]).outputs
    assert multi["log_q"].tobytes() == log_q.tobytes()
    assert multi["log_p"].tobytes() == log_p.tobytes()
    expected = np.asarray(jax.vmap(lambda a, b: jaxkl.kl_from_log_probs(a, b).value)(log_q, log_p))
    np.testing.assert_allclose(
        multi["values"], expected, rtol=0, atol=32 * 2**-23 * np.abs(expected).max()
    )
    pids = _pids(out)
    assert set(pids) == {"p0", "p1"}
    assert not any(_alive(pid) for pid in pids.values())


@pytest.mark.slow
def test_two_processes_equal_one_process_of_four_devices_bitwise(launched_sweep):
    """Same mesh size, same per-device program on the same rows: draws and values bit for
    bit, whether the 4 devices belong to 1 process or 2."""
    one = subprocess.run(
        [sys.executable, "-c", _SWEEP],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    multi, single = _sweep_result(launched_sweep.stdout), _sweep_result(one.stdout)
    assert (single["devices"], single["processes"]) == (4, 1)
    for k in ("log_q", "log_p", "values"):
        assert multi[k].tobytes() == single[k].tobytes(), k


@pytest.mark.slow
def test_launcher_stops_the_others_when_one_fails_and_says_which():
    """No JAX in the processes (about 4 s): process 1 exits with status 3 while process 0
    would sleep a minute."""
    child = (
        "import os, sys, time\n"
        "print('pid', os.getpid(), flush=True)\n"
        "if os.environ['JAXKL_PROCESS_ID'] == '1':\n"
        "    time.sleep(0.5); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    out = subprocess.run(
        _launch_cmd(2, 1, "-c", child), env=_env(), capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - t0 < 30
    assert out.returncode == 3
    assert "process 1 of 2 exited with status 3; stopped process(es) 0" in out.stderr
    pids = _pids(out.stdout)
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids.values())


def test_process_env_and_free_port():
    env = launch.process_env(
        {"XLA_FLAGS": "--xla_cpu_foo=1 --xla_force_host_platform_device_count=8"},
        process_id=2,
        processes=3,
        port=4321,
        devices_per_process=2,
        heartbeat_seconds=7,
    )
    assert env["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=2"
    assert (env["JAXKL_NUM_PROCESSES"], env["JAXKL_PROCESS_ID"]) == ("3", "2")
    assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:4321"
    assert env["JAXKL_HEARTBEAT_TIMEOUT"] == "7" and env["JAX_PLATFORMS"] == "cpu"
    import socket

    port = launch.free_port()
    with socket.socket() as s:  # free means bindable right now
        s.bind(("127.0.0.1", port))


def test_local_rows_are_checked_and_fed_back_in_place():
    def draw(key):
        return jax.random.normal(key, (3,))

    held = run_replicates(draw, 5, 7, chunk=2, gather=False).outputs
    assert isinstance(held, LocalRows) and held.rows == 7
    np.testing.assert_array_equal(
        map_rows(lambda x: x.sum(), [held], chunk=2).outputs,
        run_replicates(draw, 5, 7, chunk=2).outputs.sum(1),
    )
    with pytest.raises(ValueError, match="not held by this process"):
        map_rows(lambda x: x.sum(), [held], chunk=3)  # other blocks than were made
    with pytest.raises(ValueError, match="disagree on the row count"):
        map_rows(lambda a, b: a, [held, np.zeros(6)], chunk=2)


@pytest.mark.slow
def test_distributed_flag_without_a_cluster_is_one_clear_error(tmp_path):
    """--distributed where JAX detects no cluster: exit 2 naming what to do, nothing written."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *SMALL, "--out", str(tmp_path), "--distributed"],
        env={k: v for k, v in _env().items() if not k.startswith(("SLURM_", "OMPI_", "TPU_"))},
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "cannot join a multi-process run" in out.stderr and "jaxkl.study.launch" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- the whole study (slow)

# Runs the experiment script as __main__ and reports every file write with the writing
# process's id, so a test can check that process 1 writes nothing.
_SPY = textwrap.dedent(
    """
    import os, runpy, sys
    print("pid", os.getpid(), flush=True)
    import jaxkl.study.plotting as plotting, jaxkl.study.results as results

    def spy(write):
        def wrapped(path, data):
            print("write", os.environ.get("JAXKL_PROCESS_ID", "0"), path, flush=True)
            return write(path, data)
        return wrapped

    results.atomic_write_bytes = spy(results.atomic_write_bytes)
    plotting.atomic_write_bytes = spy(plotting.atomic_write_bytes)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)


def _run_dir(out: Path) -> Path:
    (run,) = (out / "bias_variance").iterdir()
    return run


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _cells(run: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((run / "cells").glob("*.json"))}


def _numbers(cell: dict) -> dict:
    """A cell's statistics (timings and device counts left out)."""
    return {k: cell[k] for k in ("rows", "slopes", "truth", "replicates")}


def _launch_study(out: Path, **kw) -> subprocess.CompletedProcess:
    cmd = _launch_cmd(2, 2, "-c", _SPY, str(SCRIPT), *SMALL, "--out", str(out))
    return subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def launched_study(tmp_path_factory):
    """The tiny study on 2 processes × 2 CPU devices, uninterrupted; (run folder, seconds,
    launcher output)."""
    out = tmp_path_factory.mktemp("mp22")
    t0 = time.monotonic()
    proc = _launch_study(out, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return _run_dir(out), time.monotonic() - t0, proc


@pytest.mark.slow
def test_quick_study_on_two_processes_equals_one_process(launched_study, tmp_path):
    """2 × 2 devices equals 1 × 4 bit for bit (metrics.csv and every cell's statistics);
    1 × 1 to float32 rounding, as in test_bias_variance's 1-vs-4 test: one device compiles
    another program, and XLA may contract multiply-adds differently in it."""
    run, _, proc = launched_study
    writes = [line.split() for line in proc.stdout.splitlines() if " write " in line]
    assert writes and all(w[0] == "[p0]" and w[2] == "0" for w in writes), writes[:5]
    summary = json.loads((run / "summary.json").read_text())
    assert sorted(d["process_index"] for d in summary["devices"]) == [0, 0, 1, 1]
    single = {}
    for devices in (4, 1):
        out = tmp_path / f"d{devices}"
        flags = f"--xla_force_host_platform_device_count={devices}"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *SMALL, "--out", str(out)],
            env=_env(XLA_FLAGS=flags), cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        single[devices] = _run_dir(out)
    assert (run / "metrics.csv").read_bytes() == (single[4] / "metrics.csv").read_bytes()
    multi_cells, four_cells = _cells(run), _cells(single[4])
    assert multi_cells.keys() == four_cells.keys()
    for name, cell in multi_cells.items():
        assert _numbers(cell) == _numbers(four_cells[name]), name
    one = _metrics(single[1])
    multi = _metrics(run)
    assert len(one) == len(multi)
    for a, b in zip(multi, one, strict=True):
        for k, v in a.items():
            try:
                x, y = float(v), float(b[k])
            except ValueError:
                assert v == b[k], k
                continue
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-7, err_msg=k)


@pytest.mark.slow
def test_sigkill_of_one_process_stops_the_run_and_a_rerun_resumes_to_the_same_numbers(
    launched_study, tmp_path
):
    reference, _, _ = launched_study
    out = tmp_path / "killed"
    log = tmp_path / "launcher.out"
    cmd = _launch_cmd(2, 2, "-c", _SPY, str(SCRIPT), *SMALL, "--out", str(out))
    with open(log, "w") as fh:
        launcher = subprocess.Popen(
            cmd, env=_env(), cwd=ROOT, stdout=fh, stderr=subprocess.PIPE, text=True
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and launcher.poll() is None:
        if len(list(out.glob("bias_variance/*/cells/*.json"))) >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the run finished (or timed out) before it could be interrupted")
    pids = _pids(log.read_text())
    os.kill(pids["p1"], signal.SIGKILL)  # the non-writer: the writer must notice
    killed_at = time.monotonic()
    _, err = launcher.communicate(timeout=120)
    stopped_after = time.monotonic() - killed_at
    assert stopped_after < 30, stopped_after  # the launcher stops process 0 at once
    assert launcher.returncode == 128 + signal.SIGKILL
    assert "process 1 of 2 was killed by SIGKILL; stopped process(es) 0" in err
    assert not _alive(pids["p0"])
    run = _run_dir(out)
    assert not (run / "report.md").exists()
    kept = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "cells").glob("*.json")}
    assert all(json.loads(data) for _, data in kept.values())  # whole files only

    rerun = _launch_study(out, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert f"{len(kept)} of 7 cells already finished" in rerun.stdout
    for name, (mtime, data) in kept.items():
        p = run / "cells" / name
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data, name
    assert (run / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()


# A process of a run started without the launcher (as srun would), running rounds until
# killed; JAX's heartbeat must stop the survivor.
_LOOP = textwrap.dedent(
    """
    import os, sys, time
    from jaxkl.study import distributed
    with distributed.fail_fast():
        distributed.initialize()
        import jax, numpy as np
        from jaxkl.study.sweep import run_replicates
        print("ready", flush=True)
        for i in range(600):
            run_replicates(lambda k: jax.random.normal(k, (4,)), i, 8, chunk=2)
            if i == 3 and os.environ["JAXKL_PROCESS_ID"] == os.environ["FAIL"]:
                raise RuntimeError("a bug in process " + os.environ["FAIL"])
            time.sleep(0.1)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("victim, how", [(1, "sigkill"), (0, "sigkill"), (1, "raise")])
def test_without_the_launcher_the_others_stop_within_the_heartbeat_timeout(victim, how):
    heartbeat = 5
    port = launch.free_port()
    procs = []
    for i in range(2):
        env = launch.process_env(
            _env(FAIL=str(victim) if how == "raise" else "none"),
            process_id=i,
            processes=2,
            port=port,
            devices_per_process=2,
            heartbeat_seconds=heartbeat,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _LOOP],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
        if how == "sigkill":
            procs[victim].send_signal(signal.SIGKILL)
        failed_at = time.monotonic()
        survivor = procs[1 - victim]
        _, err = survivor.communicate(timeout=120)
        stopped_after = time.monotonic() - failed_at
        # Bound: the heartbeat timeout, plus the service's polling and process teardown.
        assert stopped_after < heartbeat + 20, stopped_after
        assert survivor.returncode != 0
        # Two clear endings, whichever comes first: the survivor's collective fails
        # (gloo: connection closed) and fail_fast ends it with a line naming it, or JAX's
        # coordination service misses the heartbeats and aborts it with its own message.
        survivor_failed = f"process {1 - victim} of 2 failed (JaxRuntimeError)"
        assert "JAX distributed service detected fatal errors" in err or (
            "Connection closed by peer" in err and survivor_failed in err
        ), err[-2000:]
        if how == "raise":
            _, victim_err = procs[victim].communicate(timeout=30)
            assert procs[victim].returncode == 1
            assert "RuntimeError: a bug in process 1" in victim_err
            assert "process 1 of 2 failed (RuntimeError)" in victim_err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reaps it and closes its pipes
