"""The experiment protocol: one ``run(experiment, argv)`` behind the scripts in experiments/.

An experiment is a value, :class:`Experiment`: its name, default config, docstring, config
checks, the computation (in resumable cells) and the report built from what it computed.
:func:`run` owns everything else, the same for every experiment:

* the command line: ``--config``, ``--set KEY=VALUE``, ``--out``, ``--run-name``, and a
  ``--help`` that lists every config key with its default and a working example override;
* the config: resolved and checked before anything is computed or written; a refused
  value exits with status 2 and one line naming the key and the value;
* the run folder ``<out>/<name>/<run-name>/``: a re-run of the same config resumes, reading
  finished cells back instead of recomputing them; a different config in the same folder
  is refused (status 2);
* atomic writes of ``config.toml``, ``cells/``, ``metrics.csv``, extra CSV tables, figures,
  ``report.md`` and ``summary.json`` (with provenance: versions, git sha, devices, times,
  load average);
* a progress bar over cells on a terminal;
* with ``distributed=True``, a run over several processes (``jax.distributed``): every
  process computes, process 0 alone opens the run folder and writes, and the others'
  ``run()`` returns None.

Cells come one at a time (``run.cell(id, fn)``) or, when one computation yields several
cells, as a plan: ``run.plan(ids)`` says which are finished, ``run.save``/``run.load``
store and read back the rest.

Example:
  A script in experiments/ (the compute and report functions are its own)::

      EXPERIMENT = Experiment(
          name="demo",
          default_config=ROOT / "configs" / "demo.toml",
          doc=__doc__,
          example="sweep.replicates=500",
          validate=validate,    # cfg -> None, raising ConfigError (require_config, ...)
          compute=compute,      # (cfg, run) -> results, using run.cell(id, fn) per unit
          report=report,        # (results, cfg, run) -> Outputs
          distributed=False,    # True: --distributed, one writer among the processes
      )

      main = EXPERIMENT.main  # main(argv) runs it (and returns the run folder)

      if __name__ == "__main__":
          main()
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxkl.study import distributed
from jaxkl.study.config import experiment_parser, parse_experiment_args
from jaxkl.study.results import RunConflictError, RunDir

__all__ = ["Experiment", "Outputs", "Run", "run"]


@dataclass(frozen=True)
class Outputs:
    """What an experiment's report step hands back to be written.

    Attributes:
      markdown: ``report.md``.
      metrics: rows of ``metrics.csv`` (one mapping per row).
      metrics_columns: column order of ``metrics.csv`` (default: order of first appearance).
      summary: the ``results`` entry of ``summary.json`` (its headline numbers).
      figures: ``{file name: matplotlib figure}``, written as PNG at ``dpi``.
      dpi: resolution of the figures.
      tables: more CSV files, ``{file name: rows}``.
      seed: the ``seed`` of ``summary.json`` (default: the config's ``seed``).
      printed: lines shown on the terminal before the report's path.
    """

    markdown: str
    metrics: Sequence[Mapping[str, Any]] = ()
    metrics_columns: Sequence[str] | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
    dpi: int = 120
    tables: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    seed: Any = None
    printed: Sequence[str] = ()


@dataclass(frozen=True)
class Experiment:
    """One experiment: what is specific to it, and nothing of the shared pipeline.

    Attributes:
      name: the results folder's name and the script's (``experiments/<name>.py``).
      default_config: its TOML file, whose keys and types are the config's schema.
      doc: the script's docstring, shown by ``--help``.
      compute: ``(cfg, run) -> results``; each resumable unit goes through ``run.cell``
        (or ``run.plan``, ``run.save`` and ``run.load``).
      report: ``(results, cfg, run) -> Outputs``; ``run.wall_seconds`` is the compute time.
        It runs on the writer only.
      example: a ``KEY=VALUE`` override the experiment accepts, shown by ``--help``.
      validate: the experiment's own config checks, raising ``ConfigError``.
      add_arguments: adds options beyond the standard ones to the parser.
      before_config: called with the parsed arguments before the config is read.
      after: called with the run once every file is written (e.g. to publish copies).
      distributed: the run may span several processes (see :mod:`jaxkl.study.distributed`):
        the command line gets ``--distributed``, the process joins the others before the
        config is read, every process computes, process 0 alone opens the run folder,
        saves cells and writes the outputs (``run()`` returns None on the others), and an
        error on one process ends every process within the heartbeat timeout.
    """

    name: str
    default_config: Path
    doc: str
    compute: Callable[[dict[str, Any], Run], Any]
    report: Callable[[Any, dict[str, Any], Run], Outputs]
    example: str | None = None
    validate: Callable[[dict[str, Any]], None] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    before_config: Callable[[argparse.Namespace], Any] | None = None
    after: Callable[[Run], None] | None = None
    distributed: bool = False

    def main(self, argv: Sequence[str] | None = None) -> Path | None:
        """``run(self, argv)``: a script's entry point, e.g. ``main = EXPERIMENT.main``."""
        return run(self, argv)

    def parser(self) -> argparse.ArgumentParser:
        """The experiment's command line (see :func:`jaxkl.study.experiment_parser`)."""
        parser = experiment_parser(
            self.name,
            default_config=self.default_config,
            description=self.doc,
            example=self.example,
        )
        if self.distributed:
            distributed.add_argument(parser)
        if self.add_arguments is not None:
            self.add_arguments(parser)
        return parser


class Run:
    """What an experiment's compute and report steps see of one run.

    :func:`run` builds it: ``label`` names the progress bar, and ``follow_writer`` (a
    multi-process run) makes every process follow the writer's view of which cells are
    finished. The resume line and the progress bar start with the first cell: the line
    says how many cells an earlier run left, and the bar counts the cells of this one (up
    to a total when :meth:`plan` named them).

    Attributes:
      cfg: the resolved config.
      args: the parsed command line (for an experiment's own options).
      folder: the :class:`RunDir` (``folder.path``, ``folder.name``, ``folder.cells``);
        None on a process other than the writer of a multi-process run.
      wall_seconds: seconds from the start of the run to the end of compute (set before
        the report step runs; None until then).
      load_average: the 1-, 5- and 15-minute load averages at the end of compute, to read
        timings by (set with ``wall_seconds``; None where the system reports none).

    Example:
      By hand, over a fresh folder:

      >>> import argparse, tempfile
      >>> folder = RunDir.open(tempfile.mkdtemp(), "demo", {"seed": 0})
      >>> demo = Run({"seed": 0}, argparse.Namespace(), folder)
      >>> demo.cell("n=3", lambda: {"value": 1.5})
      {'value': 1.5}
      >>> demo.is_writer  # alone, always; see Experiment.distributed
      True
      >>> demo.close()
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        args: argparse.Namespace,
        folder: RunDir | None,
        *,
        started: float | None = None,
        label: str = "cells",
        follow_writer: bool = False,
    ):
        self.cfg = cfg
        self.args = args
        self.folder = folder
        self.wall_seconds: float | None = None
        self.load_average: list[float] | None = None
        self._t0 = time.perf_counter() if started is None else started
        self._label = label
        self._follow_writer = follow_writer
        self._bar: Any = None
        self._planned = False

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def is_writer(self) -> bool:
        """True on the process that reads and writes the run folder (always, alone)."""
        return self.folder is not None

    def cell(self, cid: str, compute: Callable[[], Any]) -> Any:
        """The saved record of cell ``cid``, computed and saved first if it is missing.

        The record is always the one read back from disk, so a fresh and a resumed run see
        identical values (see :meth:`jaxkl.study.CellStore.get_or_compute`). In a
        multi-process run every process computes a missing cell and the writer alone saves
        it; the others get None.
        """
        self._start()
        if not self._finished([cid])[cid]:
            self.save(cid, compute())
        elif not self._planned:  # a planned bar started at the finished cells' count
            self._bar.update(1)
        return self.load(cid)

    def plan(self, cids: Sequence[str]) -> dict[str, bool]:
        """Which of the run's cells are finished: called once, before the first cell.

        For computations that yield several cells at once: compute what is missing, store
        each record with :meth:`save`, read them back with :meth:`load`. The progress bar
        counts from the K finished cells to all T, and a resumed run says ``resuming
        <path>: K of T cells already finished``. In a multi-process run the writer
        decides and every process gets its answer, so all run the same computations (a
        collective: every process calls it with the same ids).

        Args:
          cids: the T cell ids (str, e.g. from :func:`jaxkl.study.cell_id`).

        Returns:
          ``{cid: finished}`` (bool), in the order of ``cids``.

        Example:
          >>> import argparse, tempfile
          >>> folder = RunDir.open(tempfile.mkdtemp(), "demo", {"seed": 0})
          >>> folder.cells.save("a", {"value": 1.0})  # left by an earlier, killed run
          >>> demo = Run({"seed": 0}, argparse.Namespace(), folder)
          >>> finished = demo.plan(["a", "b"])  # doctest: +ELLIPSIS
          resuming ...: 1 of 2 cells already finished
          >>> finished
          {'a': True, 'b': False}
          >>> demo.save("b", {"value": 2.0})
          >>> [demo.load(cid)["value"] for cid in finished]
          [1.0, 2.0]
          >>> demo.close()
        """
        finished = self._finished(cids)
        self._start(total=len(cids), done=sum(finished.values()))
        return finished

    def save(self, cid: str, record: Any) -> None:
        """Store cell ``cid``'s record and advance the progress bar by one cell.

        Args:
          cid: the cell id (str).
          record: JSON-able after :func:`jaxkl.study.to_jsonable` (dicts, lists, numbers,
            numpy arrays). The writer saves it atomically; other processes drop it.

        Example:
          >>> import argparse, tempfile
          >>> folder = RunDir.open(tempfile.mkdtemp(), "demo", {"seed": 0})
          >>> demo = Run({"seed": 0}, argparse.Namespace(), folder)
          >>> demo.save("n=3", {"value": np.float32(1.5)})
          >>> folder.cells.ids()
          ['n=3']
          >>> demo.close()
        """
        self._start()  # before the write: the resume line counts the earlier runs' cells
        if self.is_writer:
            self.folder.cells.save(cid, record)
        self._bar.update(1)

    def load(self, cid: str) -> Any:
        """The record saved for cell ``cid``, read back from disk (JSON types: dicts,
        lists, floats), so a fresh and a resumed run see identical values; None on a
        process other than the writer.

        Raises:
          KeyError: on the writer, no record of ``cid`` was saved.

        Example:
          >>> import argparse, tempfile
          >>> folder = RunDir.open(tempfile.mkdtemp(), "demo", {"seed": 0})
          >>> demo = Run({"seed": 0}, argparse.Namespace(), folder)
          >>> demo.save("n=3", {"value": np.arange(2.0)})
          >>> demo.load("n=3")
          {'value': [0.0, 1.0]}
          >>> demo.close()
        """
        return self.folder.cells.load(cid) if self.is_writer else None

    def elapsed(self) -> float:
        """Seconds since the run started (after the config was checked)."""
        return time.perf_counter() - self._t0

    def close(self) -> None:
        """End the progress bar (:func:`run` does, once compute returns or fails)."""
        if self._bar is not None:
            self._bar.close()

    def _finished(self, cids: Sequence[str]) -> dict[str, bool]:
        saved = np.array([self.is_writer and self.folder.cells.has(c) for c in cids], np.int32)
        if self._follow_writer:
            # Only the writer may see the folder; every process follows its answer, so all
            # run the same computations, and collectives, in the same order.
            saved = distributed.from_writer(saved)
        return dict(zip(cids, saved.astype(bool).tolist(), strict=True))

    def _start(self, total: int | None = None, done: int = 0) -> None:
        if self._bar is not None:
            return
        if self.is_writer and total is not None and done:
            print(f"resuming {self.path}: {done} of {total} cells already finished")
        elif self.is_writer and total is None and (saved := len(self.folder.cells.ids())):
            print(f"resuming {self.path}: {saved} cells already saved")
        self._planned = total is not None
        self._bar = _progress(self._label, total, done, shown=self.is_writer)


def run(experiment: Experiment, argv: Sequence[str] | None = None) -> Path | None:
    """Run ``experiment`` from the command line ``argv`` (default ``sys.argv[1:]``).

    Returns:
      The run folder; None on a process other than the writer of a multi-process run.

    Raises:
      SystemExit: status 2 for a refused config or a run folder holding another config;
        nothing is written then.
    """
    if not experiment.distributed:
        return _run(experiment, argv)
    # An error must end this process at once, so that the others stop too instead of
    # waiting for it in a collective (see jaxkl.study.distributed); alone, it raises.
    with distributed.fail_fast():
        return _run(experiment, argv)


def _run(experiment: Experiment, argv: Sequence[str] | None) -> Path | None:
    parser = experiment.parser()
    args, cfg = parse_experiment_args(
        parser,
        argv,
        validate=experiment.validate,
        before_config=lambda a: _before_config(experiment, parser, a),
    )
    t0 = time.perf_counter()
    # Process 0 alone touches the run folder: the others may not even share its disk.
    writer = not experiment.distributed or distributed.is_writer()
    folder = _open_folder(experiment, parser, args, cfg) if writer else None
    current = Run(
        cfg, args, folder, started=t0, label=experiment.name, follow_writer=experiment.distributed
    )
    try:
        results = experiment.compute(cfg, current)
    finally:
        current.close()
    current.wall_seconds = current.elapsed()
    current.load_average = _load_average()
    if folder is None:
        return None
    out = experiment.report(results, cfg, current)
    _write(folder, out, current)
    for line in out.printed:
        print(line)
    print(f"report: {folder.file('report.md')}")
    if experiment.after is not None:
        experiment.after(current)
    return folder.path


def _before_config(
    experiment: Experiment, parser: argparse.ArgumentParser, args: argparse.Namespace
) -> None:
    if experiment.distributed:
        # Joining must precede any JAX computation, and checking a config may build
        # distributions; a failure to join is one clear error (status 2).
        try:
            distributed.initialize(args.distributed)
        except distributed.DistributedSetupError as err:
            parser.error(str(err))
    if experiment.before_config is not None:
        experiment.before_config(args)


def _open_folder(
    experiment: Experiment,
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    cfg: dict[str, Any],
) -> RunDir:
    try:
        return RunDir.open(
            args.out, experiment.name, cfg, run_name=args.run_name, stem=args.config.stem
        )
    except RunConflictError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


def _write(folder: RunDir, out: Outputs, current: Run) -> None:
    folder.write_metrics(out.metrics, out.metrics_columns)
    for name, rows in out.tables.items():
        folder.write_csv(name, rows)
    for name, fig in out.figures.items():
        folder.write_figure(name, fig, dpi=out.dpi)
    folder.write_report(out.markdown)
    folder.write_summary(
        out.summary,
        seed=out.seed,
        study_wall_seconds=current.wall_seconds,
        load_average=current.load_average,
    )


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):  # not reported on every system (Windows has none)
        return None


def _progress(name: str, total: int | None, done: int, *, shown: bool):
    """A tqdm bar over cells on stderr, on a terminal and on the writer only (silent in
    logs, in tests and on the other processes of a multi-process run)."""
    from tqdm import tqdm  # the lab extra; `import jaxkl` must not need it

    return tqdm(
        total=total,
        initial=done,
        desc=name,
        unit="cell",
        file=sys.stderr,
        disable=None if shown else True,
    )
