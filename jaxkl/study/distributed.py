"""Multi-process studies: join ``jax.distributed`` when asked, one writer, fail fast.

JAX runs one program per process (its multi-controller model). Every process of a study
walks the same cells in the same order, computes the replicates of its own devices and
receives the gathered metrics (:mod:`jaxkl.study.sweep`); process 0 alone reads and
writes the results folder and tells the others which cells are left (:func:`from_writer`).

A process learns that it is one of many from its command line (``--distributed``, for a
cluster that ``jax.distributed.initialize()`` detects by itself: SLURM, Open MPI, Cloud
TPU pod slices) or from its environment (``JAX_COORDINATOR_ADDRESS``, which JAX reads,
plus :data:`NUM_PROCESSES_ENV` and :data:`PROCESS_ID_ENV`, as set by
``python -m jaxkl.study.launch``). Without either, nothing changes: one process, no
coordinator.

Failure: JAX's coordination service stops every process when one stops sending
heartbeats (after ``heartbeat_timeout_seconds``, :data:`HEARTBEAT_ENV`, default
:data:`DEFAULT_HEARTBEAT_SECONDS`). A Python error must not wait at JAX's shutdown barrier
for peers that are blocked in a collective (300 s by default): :func:`fail_fast` ends the
failing process at once, so its peers stop within the heartbeat timeout. Files are
written atomically, so a stopped run leaves whole cells only and the next run resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

__all__ = [
    "COORDINATOR_ENV",
    "DEFAULT_HEARTBEAT_SECONDS",
    "HEARTBEAT_ENV",
    "NUM_PROCESSES_ENV",
    "PROCESS_ID_ENV",
    "DistributedSetupError",
    "add_argument",
    "fail_fast",
    "from_writer",
    "initialize",
    "is_writer",
]

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
NUM_PROCESSES_ENV = "JAXKL_NUM_PROCESSES"
PROCESS_ID_ENV = "JAXKL_PROCESS_ID"
HEARTBEAT_ENV = "JAXKL_HEARTBEAT_TIMEOUT"
# JAX's own default is 100 s; a study's processes heartbeat from a background thread, so
# a shorter bound costs nothing and a dead peer stops the run sooner.
DEFAULT_HEARTBEAT_SECONDS = 60


class DistributedSetupError(RuntimeError):
    """``--distributed`` (or the launcher's environment) could not form a run."""


def add_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--distributed`` to an experiment's command line (see :func:`initialize`)."""
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run with jax.distributed.initialize(), which detects "
        "SLURM, Open MPI and Cloud TPU pod slices by itself (python -m jaxkl.study.launch "
        "sets its environment instead, and needs no flag)",
    )


def initialize(requested: bool = False) -> bool:
    """Call ``jax.distributed.initialize()`` if the command line or environment asks.

    Must run before anything touches a JAX backend (``jax.devices()``, any computation).

    Args:
      requested: ``--distributed`` was given: rely on JAX's cluster detection for what
        the environment variables below do not say.

    Returns:
      True if this process is now part of a ``jax.distributed`` run (possibly of one
      process), False if it runs alone as before.

    Raises:
      DistributedSetupError: asked for, but JAX could not set it up (no cluster detected,
        bad variables, coordinator unreachable); the message says what to do.

    Example:
      >>> initialize()  # no flag, no launcher: a plain single-process run
      False
    """
    if not (requested or os.environ.get(COORDINATOR_ENV)):
        return False
    if jax.distributed.is_initialized():
        return True
    try:
        kwargs: dict[str, Any] = {
            "heartbeat_timeout_seconds": int(
                os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_SECONDS)
            ),
        }
        for name, env in (("num_processes", NUM_PROCESSES_ENV), ("process_id", PROCESS_ID_ENV)):
            if os.environ.get(env):
                kwargs[name] = int(os.environ[env])
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError, TypeError) as err:
        raise DistributedSetupError(
            f"cannot join a multi-process run: {err}\n"
            "jax.distributed.initialize() detects SLURM (srun), Open MPI and Cloud TPU pod "
            f"slices; elsewhere set {COORDINATOR_ENV}=host:port, {NUM_PROCESSES_ENV} and "
            f"{PROCESS_ID_ENV} on every process, or start local processes with "
            "python -m jaxkl.study.launch --processes N -- <script> ..."
        ) from err
    return True


def is_writer() -> bool:
    """True on the one process that reads and writes results (process 0)."""
    return jax.process_index() == 0


def from_writer(value: np.ndarray) -> np.ndarray:
    """Process 0's ``value``, on every process (a broadcast; the identity when alone).

    Decisions that depend on the results folder (which cells are finished) are made by
    the writer, which may be the only process that sees that folder; every process then
    follows them, so all run the same collectives in the same order.

    Args:
      value: an array of the same shape and dtype on every process (the others' content
        is ignored).

    Returns:
      Process 0's array, as numpy.

    Example:
      >>> from_writer(np.array([1, 0, 1])).tolist()
      [1, 0, 1]
    """
    if jax.process_count() == 1:
        return np.asarray(value)
    return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(value)))


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """In a multi-process run, end this process at once on any error.

    Exiting normally would wait at JAX's shutdown barrier for peers that are blocked in a
    collective until ``shutdown_timeout_seconds``; ending now (``os._exit``) stops this
    process's heartbeats, and JAX's coordination service then stops the peers within the
    heartbeat timeout. The traceback and a line naming the process are printed first. A
    single-process run, or an error before ``jax.distributed`` is up, raises as usual.

    Example:
      >>> with fail_fast():
      ...     pass
    """
    try:
        yield
    except BaseException as err:
        if not jax.distributed.is_initialized() or jax.process_count() == 1:
            raise
        code = _exit_code(err)
        if code == 0:  # sys.exit(0): a normal end, through JAX's shutdown barrier
            raise
        if not isinstance(err, SystemExit):  # SystemExit has said why (argparse, …)
            traceback.print_exc()
        print(
            f"process {jax.process_index()} of {jax.process_count()} failed "
            f"({type(err).__name__}); exiting now, so the other processes stop within "
            "the heartbeat timeout. Re-run the same command to resume.",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_code(err: BaseException) -> int:
    if isinstance(err, SystemExit):
        if err.code is None:
            return 0
        return err.code if isinstance(err.code, int) else 1
    if isinstance(err, KeyboardInterrupt):
        return 130
    return 1
