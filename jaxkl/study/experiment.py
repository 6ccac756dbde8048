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
  ``report.md`` and ``summary.json`` (with provenance: versions, git sha, devices, times);
* a progress bar over cells on a terminal.

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
      )

      main = EXPERIMENT.main  # main(argv) runs it; tests call it too

      if __name__ == "__main__":
          main()
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
      compute: ``(cfg, run) -> results``; each resumable unit goes through ``run.cell``.
      report: ``(results, cfg, run) -> Outputs``; ``run.wall_seconds`` is the compute time.
      example: a ``KEY=VALUE`` override the experiment accepts, shown by ``--help``.
      validate: the experiment's own config checks, raising ``ConfigError``.
      add_arguments: adds options beyond the standard ones to the parser.
      before_config: called with the parsed arguments before the config is read.
      after: called with the run once every file is written (e.g. to publish copies).
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

    def main(self, argv: Sequence[str] | None = None) -> Path:
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
        if self.add_arguments is not None:
            self.add_arguments(parser)
        return parser


class Run:
    """What an experiment's compute and report steps see of one run.

    Attributes:
      cfg: the resolved config.
      args: the parsed command line (for an experiment's own options).
      folder: the :class:`RunDir` (``folder.path``, ``folder.name``, ``folder.cells``).
      wall_seconds: seconds from the start of the run to the end of compute (set before
        the report step runs; None until then).
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        args: argparse.Namespace,
        folder: RunDir,
        *,
        bar: Any = None,
        started: float | None = None,
    ):
        self.cfg = cfg
        self.args = args
        self.folder = folder
        self.wall_seconds: float | None = None
        self._bar = bar
        self._t0 = time.perf_counter() if started is None else started

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def path(self) -> Path:
        return self.folder.path

    def cell(self, cid: str, compute: Callable[[], Any]) -> Any:
        """The saved record of cell ``cid``, computed and saved first if it is missing.

        The record is always the one read back from disk, so a fresh and a resumed run see
        identical values (see :meth:`jaxkl.study.CellStore.get_or_compute`).
        """
        record = self.folder.cells.get_or_compute(cid, compute)
        if self._bar is not None:
            self._bar.update(1)
        return record

    def elapsed(self) -> float:
        """Seconds since the run started (after the config was checked)."""
        return time.perf_counter() - self._t0


def run(experiment: Experiment, argv: Sequence[str] | None = None) -> Path:
    """Run ``experiment`` from the command line ``argv`` (default ``sys.argv[1:]``).

    Returns:
      The run folder.

    Raises:
      SystemExit: status 2 for a refused config or a run folder holding another config;
        nothing is written then.
    """
    parser = experiment.parser()
    args, cfg = parse_experiment_args(
        parser, argv, validate=experiment.validate, before_config=experiment.before_config
    )
    t0 = time.perf_counter()
    try:
        folder = RunDir.open(
            args.out, experiment.name, cfg, run_name=args.run_name, stem=args.config.stem
        )
    except RunConflictError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    saved = len(folder.cells.ids())
    if saved:
        print(f"resuming {folder.path}: {saved} cells already saved")
    with _progress(experiment.name) as bar:
        current = Run(cfg, args, folder, bar=bar, started=t0)
        results = experiment.compute(cfg, current)
    current.wall_seconds = current.elapsed()
    out = experiment.report(results, cfg, current)
    _write(folder, out, current.wall_seconds)
    for line in out.printed:
        print(line)
    print(f"report: {folder.file('report.md')}")
    if experiment.after is not None:
        experiment.after(current)
    return folder.path


def _write(folder: RunDir, out: Outputs, wall_seconds: float) -> None:
    folder.write_metrics(out.metrics, out.metrics_columns)
    for name, rows in out.tables.items():
        folder.write_csv(name, rows)
    for name, fig in out.figures.items():
        folder.write_figure(name, fig, dpi=out.dpi)
    folder.write_report(out.markdown)
    folder.write_summary(out.summary, seed=out.seed, study_wall_seconds=wall_seconds)


def _progress(name: str):
    """A tqdm bar over cells on stderr, shown only on a terminal (silent in logs and tests)."""
    from tqdm import tqdm  # the lab extra; `import jaxkl` must not need it

    return tqdm(desc=name, unit="cell", file=sys.stderr, disable=None)
