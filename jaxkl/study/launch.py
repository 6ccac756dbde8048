"""Start a multi-process JAX run on this machine: one command, N processes, one exit code.

Usage::

    python -m jaxkl.study.launch --processes 2 [--devices-per-process 2] -- \\
        experiments/bias_variance.py --config configs/bias_variance_quick.toml

Each process runs ``python <command …>`` with the environment that
:func:`jaxkl.study.distributed.initialize` reads: ``JAX_COORDINATOR_ADDRESS`` (127.0.0.1 and
a free port), ``JAXKL_NUM_PROCESSES`` and ``JAXKL_PROCESS_ID``; JAX on CPU
(``JAX_PLATFORMS=cpu``) with ``--devices-per-process`` forced host devices each
(``XLA_FLAGS=--xla_force_host_platform_device_count=K``) and gloo collectives. Their
output is forwarded line by line, prefixed ``[p<id>]``. If one process fails or dies, the
others are stopped at once and the launcher exits with that process's status and a line
saying which one failed. This is for testing and small runs on one machine; clusters
start their processes themselves (SLURM's ``srun``, a TPU pod slice's ``--worker=all``),
see the README.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from jaxkl.study.distributed import (
    COORDINATOR_ENV,
    HEARTBEAT_ENV,
    NUM_PROCESSES_ENV,
    PROCESS_ID_ENV,
)

__all__ = ["free_port", "launch", "main", "process_env"]

# After the first failure, the others get SIGTERM and this long to end before SIGKILL.
GRACE_SECONDS = 5.0
_DEVICE_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S*")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it).

    Another program could take it before the coordinator binds it; the coordinator then
    fails to start and the run stops with JAX's error, so a retry picks a new port.

    Example:
      >>> 1024 <= free_port() < 65536
      True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_env(
    base: dict[str, str],
    *,
    process_id: int,
    processes: int,
    port: int,
    devices_per_process: int,
    heartbeat_seconds: int | None = None,
) -> dict[str, str]:
    """The environment of process ``process_id`` of a local run.

    Args:
      base: the environment to start from (``os.environ``); its own device-count flag in
        ``XLA_FLAGS`` is replaced, other flags are kept.
      process_id, processes: this process and the total.
      port: the coordinator's port on 127.0.0.1.
      devices_per_process: forced CPU devices per process.
      heartbeat_seconds: how long JAX waits for a silent process before stopping all.

    Returns:
      A new dict.

    Example:
      >>> env = process_env({}, process_id=1, processes=2, port=1234, devices_per_process=2)
      >>> env["JAX_COORDINATOR_ADDRESS"], env["JAXKL_PROCESS_ID"], env["XLA_FLAGS"]
      ('127.0.0.1:1234', '1', '--xla_force_host_platform_device_count=2')
    """
    env = dict(base)
    flags = _DEVICE_FLAG.sub("", env.get("XLA_FLAGS", "")).split()
    flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
    env.update(
        {
            COORDINATOR_ENV: f"127.0.0.1:{port}",
            NUM_PROCESSES_ENV: str(processes),
            PROCESS_ID_ENV: str(process_id),
            "XLA_FLAGS": " ".join(flags),
            # Local processes share this machine's CPU; GPUs would be claimed by each.
            "JAX_PLATFORMS": "cpu",
            "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
            "PYTHONUNBUFFERED": "1",  # lines reach the prefixer as they are printed
        }
    )
    if heartbeat_seconds is not None:
        env[HEARTBEAT_ENV] = str(heartbeat_seconds)
    return env


_SINK_LOCK = threading.Lock()  # whole lines: one process's line never splits another's


def _forward(stream: IO[bytes], sink: IO[str], prefix: str) -> None:
    """Copy ``stream`` to ``sink`` line by line with ``prefix`` (a ``\\r`` also ends a
    line, so progress bars show progress)."""
    pending = b""
    while chunk := stream.read1(65536):
        pending += chunk
        *lines, pending = re.split(rb"(?<=[\r\n])", pending)
        text = "".join(prefix + x.decode(errors="replace").rstrip("\r\n") + "\n" for x in lines)
        with _SINK_LOCK:
            sink.write(text)
            sink.flush()
    if pending:
        with _SINK_LOCK:
            sink.write(prefix + pending.decode(errors="replace") + "\n")
            sink.flush()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def launch(
    command: Sequence[str],
    processes: int,
    *,
    devices_per_process: int = 1,
    heartbeat_seconds: int | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run ``python <command>`` as ``processes`` processes of one ``jax.distributed`` run.

    Args:
      command: what follows ``python``: a script and its arguments, or ``-m module …``.
      processes: N ≥ 1.
      devices_per_process: forced CPU devices per process, K ≥ 1.
      heartbeat_seconds: JAX's heartbeat timeout (default: jaxkl's, 60 s).
      stdout, stderr: where the prefixed output goes (default: this process's).

    Returns:
      0 if every process succeeded; otherwise the exit status of the first that failed
      (128 + signal number if it was killed), after the others have been stopped.

    Example:
      >>> launch(["-c", "print('hi')"], 2)  # doctest: +SKIP
      0
    """
    if processes < 1 or devices_per_process < 1:
        raise ValueError(
            f"need processes >= 1 and devices >= 1; got {processes}, {devices_per_process}"
        )
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    port = free_port()
    procs: list[subprocess.Popen] = []
    threads: list[threading.Thread] = []
    failed: tuple[int, int] | None = None
    try:
        for i in range(processes):
            env = process_env(
                dict(os.environ),
                process_id=i,
                processes=processes,
                port=port,
                devices_per_process=devices_per_process,
                heartbeat_seconds=heartbeat_seconds,
            )
            proc = subprocess.Popen(
                [sys.executable, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            procs.append(proc)
            for stream, sink in ((proc.stdout, stdout), (proc.stderr, stderr)):
                t = threading.Thread(target=_forward, args=(stream, sink, f"[p{i}] "), daemon=True)
                t.start()
                threads.append(t)
        while True:
            codes = [p.poll() for p in procs]  # every one, each time (no short-circuit)
            failed = next(((i, c) for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None or None not in codes:
                break
            time.sleep(0.05)
    finally:
        stopped = _stop(procs)  # every exit path: a failure, Ctrl-C, an error here
        for t in threads:
            t.join(timeout=5)
        for proc in procs:
            proc.stdout.close()
            proc.stderr.close()
    if failed is None:
        return 0
    i, code = failed
    others = f"; stopped process(es) {', '.join(map(str, stopped))}" if stopped else ""
    print(
        f"jaxkl.study.launch: process {i} of {processes} {_describe(code)}{others}. "
        "Its output above says why; a study re-run with the same command resumes from its "
        "last finished cell.",
        file=stderr,
        flush=True,
    )
    return code if code > 0 else 128 - code


def _stop(procs: list[subprocess.Popen]) -> list[int]:
    """SIGTERM every process still running, SIGKILL after the grace period; their ids."""
    running = [i for i, p in enumerate(procs) if p.poll() is None]
    for i in running:
        procs[i].terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for i in running:
        try:
            procs[i].wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            procs[i].kill()
            procs[i].wait()
    return running


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxkl.study.launch",
        description="Run `python COMMAND ...` as N local processes of one jax.distributed run.",
    )
    parser.add_argument("--processes", type=int, required=True, help="number of processes N")
    parser.add_argument(
        "--devices-per-process",
        type=int,
        default=1,
        help="forced CPU devices per process (default: %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=None,
        help="seconds before JAX stops every process when one goes silent (default: 60)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- script.py [args ...]")
    args = parser.parse_args(argv)
    # A SIGTERM to the launcher (a scheduler, `kill`) unwinds through launch()'s cleanup
    # instead of leaving its processes behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --, e.g. -- experiments/bias_variance.py")
    if args.processes < 1 or args.devices_per_process < 1:
        parser.error("--processes and --devices-per-process must be >= 1")
    try:
        return launch(
            command,
            args.processes,
            devices_per_process=args.devices_per_process,
            heartbeat_seconds=args.heartbeat_timeout,
        )
    except KeyboardInterrupt:  # launch() has stopped every process on its way out
        print("jaxkl.study.launch: interrupted; every process stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
