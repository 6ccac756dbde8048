"""The experiment protocol (``jaxkl.study.experiment``) and the shared report helpers.

A toy experiment with three cells exercises the pipeline without JAX: the command line,
the files written, a run killed between cells and resumed, a conflicting re-run. A second
toy computes its cells in groups (``run.plan``, ``run.save``, ``run.load``), and runs as
one process of several: the writer's view and a non-writer's are simulated by replacing
``distributed.is_writer`` and ``distributed.from_writer``. Every script in experiments/
built on the protocol is checked for a ``--help`` that lists its config keys and an
example override the experiment accepts.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from jaxkl.study import ConfigError, distributed, experiment, resolve_config
from jaxkl.study.config import flatten, load_toml
from jaxkl.study.experiment import Experiment, Outputs, run
from jaxkl.study.report import Claim, Table, pm, z_score
from tests.experiment_loader import EXPERIMENTS, load_experiment

PROTOCOL_SCRIPTS = sorted(
    p.stem for p in EXPERIMENTS.glob("*.py") if "jaxkl.study.experiment" in p.read_text()
)


# --------------------------------------------------------------------------- a toy experiment


class Interrupted(Exception):
    """Stands in for a kill between two cells."""


def _toy(tmp_path, computed: list, fail_at: int | None = None) -> Experiment:
    config = tmp_path / "toy.toml"
    config.write_text("seed = 0\n\n[sweep]\nsizes = [1, 2, 3]\nscale = 1.5\n")

    def validate(cfg):
        if cfg["sweep"]["scale"] <= 0:
            raise ConfigError([("sweep.scale", "must be > 0")])

    def compute(cfg, run):
        rows = []
        for i, n in enumerate(cfg["sweep"]["sizes"]):

            def cell(n=n, i=i):
                if i == fail_at:
                    raise Interrupted
                computed.append(n)
                return {"n": n, "value": cfg["sweep"]["scale"] * n, "se": 0.1 * n}

            rows.append(run.cell(f"n={n}", cell))
        return rows

    def report(rows, cfg, run):
        assert run.wall_seconds is not None and run.wall_seconds >= 0
        table = Table("n", "value")
        for r in rows:
            table.row(r["n"], pm(r["value"], r["se"]))
        return Outputs(
            "\n".join(["# toy", "", *table.lines(), ""]),
            metrics=rows,
            tables={"extra.csv": [{"total": sum(r["value"] for r in rows)}]},
            summary={"total": sum(r["value"] for r in rows)},
            printed=[f"total {sum(r['value'] for r in rows):g}"],
        )

    return Experiment(
        "toy", config, "A toy.\n\nIt adds numbers.", compute, report, "sweep.scale=2.5", validate
    )


def test_writes_every_output(tmp_path, capsys):
    computed = []
    path = run(_toy(tmp_path, computed), ["--out", str(tmp_path / "out"), "--run-name", "a"])
    assert path == tmp_path / "out" / "toy" / "a"
    assert computed == [1, 2, 3]
    assert (path / "report.md").read_text() == (
        "# toy\n\n| n | value |\n|---|---|\n"
        "| 1 | 1.500 ± 0.100 |\n| 2 | 3.000 ± 0.200 |\n| 3 | 4.500 ± 0.300 |\n"
    )
    with (path / "metrics.csv").open() as f:
        assert [r["value"] for r in csv.DictReader(f)] == ["1.5", "3.0", "4.5"]
    assert (path / "extra.csv").read_text() == "total\n9.0\n"
    summary = json.loads((path / "summary.json").read_text())
    assert summary["results"] == {"total": 9.0} and summary["seed"] == 0
    assert summary["cells"] == {"total": 3, "computed_this_run": 3}
    assert summary["study_wall_seconds"] >= 0 and "git_sha" in summary
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["total 9", f"report: {path / 'report.md'}"]


def test_killed_run_resumes_without_recomputing(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "out"), "--set", "sweep.scale=2.0"]
    first = []
    with pytest.raises(Interrupted):
        run(_toy(tmp_path, first, fail_at=2), argv)
    assert first == [1, 2]  # the third cell never finished
    assert not any((tmp_path / "out" / "toy").glob("*/report.md"))
    again = []
    path = run(_toy(tmp_path, again), argv)
    assert again == [3]  # only the missing cell runs
    assert "resuming" in capsys.readouterr().out
    summary = json.loads((path / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["cells"] == {"total": 3, "computed_this_run": 1}
    assert summary["results"] == {"total": 12.0}
    # The resumed run's report is the one an uninterrupted run writes.
    fresh = run(_toy(tmp_path, []), [*argv, "--out", str(tmp_path / "fresh")])
    assert (path / "report.md").read_text() == (fresh / "report.md").read_text()


def test_conflicting_rerun_is_refused(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out"), "--run-name", "same"]
    run(_toy(tmp_path, []), out)
    with pytest.raises(SystemExit) as info:
        run(_toy(tmp_path, []), [*out, "--set", "sweep.scale=3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "sweep.scale: saved 1.5, now 3.0" in err and "Traceback" not in err


def test_refused_config_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run(_toy(tmp_path, []), ["--out", str(tmp_path / "out"), "--set", "sweep.scale=-1"])
    assert info.value.code == 2
    assert "sweep.scale: must be > 0; got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_lists_keys_and_example(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run(_toy(tmp_path, []), ["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "A toy.\n\nIt adds numbers." in text  # the docstring as written
    for line in ("  seed = 0", "  sweep.sizes = [1, 2, 3]", "  sweep.scale = 1.5"):
        assert line in text.splitlines()
    assert "python experiments/toy.py --set sweep.scale=2.5" in text


# --------------------------------------------------------------- grouped cells, several processes


def _grouped(tmp_path, computed: list, *, saves: int | None = None, **kw) -> Experiment:
    """Two groups of two cells; one computation per group yields its missing cells.

    ``saves``: stop (raise ``Interrupted``) after that many cells were saved, which can
    land between the two cells of a group. ``computed`` gets ``(group, missing)`` per
    computation; the report step appends ``"report"``.
    """
    config = tmp_path / "grouped.toml"
    config.write_text('seed = 0\n\n[sweep]\ngroups = ["a", "b"]\nestimators = ["x", "y"]\n')

    def compute(cfg, run):
        groups, estimators = cfg["sweep"]["groups"], cfg["sweep"]["estimators"]
        ids = {(g, e): f"{g}-{e}" for g in groups for e in estimators}
        finished = run.plan(list(ids.values()))
        records = []
        for i, g in enumerate(groups):
            missing = tuple(e for e in estimators if not finished[ids[g, e]])
            if missing:
                computed.append((g, missing))
                for e in missing:
                    if saves is not None and len(run.folder.cells.saved_this_run) == saves:
                        raise Interrupted
                    run.save(ids[g, e], {"value": 10.0 * i + estimators.index(e)})
            records += [run.load(ids[g, e]) for e in estimators]
        return records

    def report(records, cfg, run):
        computed.append("report")
        assert run.load_average is None or len(run.load_average) == 3
        values = [r["value"] for r in records]
        return Outputs(f"# grouped\n\n{values}\n", metrics=records, summary={"values": values})

    return Experiment("grouped", config, "Grouped cells.", compute, report, **kw)


def test_grouped_cells_resume_where_the_kill_landed(tmp_path, capsys, monkeypatch):
    bars = []

    def bar(name, total, done, *, shown):
        from tqdm import tqdm

        bars.append(tqdm(total=total, initial=done, file=io.StringIO(), disable=not shown))
        return bars[-1]

    monkeypatch.setattr(experiment, "_progress", bar)
    argv = ["--out", str(tmp_path / "out")]
    first = []
    with pytest.raises(Interrupted):
        run(_grouped(tmp_path, first, saves=3), argv)  # killed inside group b
    assert first == [("a", ("x", "y")), ("b", ("x", "y"))]
    again = []
    path = run(_grouped(tmp_path, again), argv)
    assert again == [("b", ("y",)), "report"]  # only the missing cell of group b
    assert f"resuming {path}: 3 of 4 cells already finished" in capsys.readouterr().out
    assert (bars[-1].total, bars[-1].initial, bars[-1].n) == (4, 3, 4)
    summary = json.loads((path / "summary.json").read_text())
    assert summary["results"] == {"values": [0.0, 1.0, 10.0, 11.0]}
    assert summary["cells"] == {"total": 4, "computed_this_run": 1}
    assert "load_average" in summary and summary["study_wall_seconds"] >= 0
    fresh = run(_grouped(tmp_path, []), ["--out", str(tmp_path / "fresh")])
    assert (path / "report.md").read_text() == (fresh / "report.md").read_text()


def _as_process(monkeypatch, *, writer: bool, writer_says=None) -> list:
    """Make this process the writer or another process of a multi-process run.

    ``writer_says``: the writer's answers to successive ``from_writer`` calls (default:
    this process's own value). Returns the values this process offered.
    """
    offered, answers = [], iter(writer_says or ())
    monkeypatch.setattr(distributed, "is_writer", lambda: writer)

    def from_writer(value):
        offered.append(np.asarray(value).tolist())
        return np.asarray(next(answers, value))

    monkeypatch.setattr(distributed, "from_writer", from_writer)
    return offered


def test_non_writer_computes_what_the_writer_lacks_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    offered = _as_process(monkeypatch, writer=False, writer_says=[[1, 0, 0, 1]])
    computed = []
    out = tmp_path / "out"
    assert run(_grouped(tmp_path, computed, distributed=True), ["--out", str(out)]) is None
    assert offered == [[0, 0, 0, 0]]  # it sees no folder; the writer's answer decides
    assert computed == [("a", ("y",)), ("b", ("x",))]  # no report on this process
    assert not out.exists()
    assert capsys.readouterr().out == ""


def test_non_writer_cells_are_computed_when_missing_and_read_as_none(tmp_path, monkeypatch):
    _as_process(monkeypatch, writer=False, writer_says=[[1], [0], [0]])
    computed, seen = [], []

    def compute(cfg, run):
        seen.extend(run.cell(f"n={n}", lambda n=n: computed.append(n)) for n in (1, 2, 3))

    toy = _toy(tmp_path, [])
    exp = Experiment("toy", toy.default_config, toy.doc, compute, toy.report, distributed=True)
    assert run(exp, ["--out", str(tmp_path / "out")]) is None
    assert computed == [2, 3] and seen == [None, None, None]
    assert not (tmp_path / "out").exists()


def test_writer_of_several_processes_writes_and_shares_its_view(tmp_path, monkeypatch):
    offered = _as_process(monkeypatch, writer=True)
    exp = _grouped(tmp_path, [], distributed=True)
    assert "--distributed" in exp.parser().format_help()
    path = run(exp, ["--out", str(tmp_path / "out")])
    assert offered == [[0, 0, 0, 0]]  # the plan went through from_writer
    assert json.loads((path / "summary.json").read_text())["cells"]["total"] == 4


def test_a_failed_join_is_one_clear_error_before_anything_is_written(tmp_path, capsys, monkeypatch):
    asked = []

    def initialize(requested):
        asked.append(requested)
        raise distributed.DistributedSetupError("cannot join a multi-process run: no cluster")

    monkeypatch.setattr(distributed, "initialize", initialize)
    computed = []
    exp = _grouped(tmp_path, computed, distributed=True)
    with pytest.raises(SystemExit) as info:
        run(exp, ["--out", str(tmp_path / "out"), "--distributed"])
    assert info.value.code == 2 and asked == [True] and computed == []
    assert "cannot join a multi-process run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the real scripts


@pytest.mark.parametrize("name", PROTOCOL_SCRIPTS)
def test_script_help_lists_keys_and_a_working_example(name):
    exp = load_experiment(name).EXPERIMENT
    assert exp.name == name
    text = exp.parser().format_help()
    defaults = flatten(load_toml(exp.default_config))
    for key in defaults:
        assert f"\n  {key} = " in text, key
    assert exp.example and f"--set {exp.example}" in text
    # The example is accepted by the experiment's own checks and changes its key.
    cfg = resolve_config(exp.default_config, [exp.example])
    exp.validate(cfg)
    key = exp.example.split("=", 1)[0]
    assert flatten(cfg)[key] != defaults[key]


def test_every_script_but_throughput_uses_the_protocol():
    scripts = {p.stem for p in EXPERIMENTS.glob("*.py")}
    # throughput.py only forwards to the benchmarks package, which has a harness of its own.
    assert scripts - set(PROTOCOL_SCRIPTS) == {"throughput"}


# --------------------------------------------------------------------------- report helpers


def test_pm_formats():
    assert pm(0.51234, 0.0213) == "0.512 ± 0.021"
    assert pm(0.51234, 0.0213, ".4f") == "0.5123 ± 0.0213"
    assert pm(1.23456e-4, 2.1e-6, ".3e", ".1e") == "1.235e-04 ± 2.1e-06"
    assert pm(100 * 0.01234, 100 * 0.0051, ".2g", unit=" %") == "1.2 ± 0.51 %"
    assert pm(-0.0, 0.0) == "0.000 ± 0.000"  # an exact zero carries no sign
    assert pm(-1e-9, 0.0) == "-0.000 ± 0.000"  # a negative number keeps its sign


def test_table_markdown():
    t = Table("", "fits", "fits / s")
    t.row("vmap", 1000, f"{600.02:.1f}")
    t.row("loop", 20, "")
    assert t.lines() == [
        "| | fits | fits / s |",
        "|---|---|---|",
        "| vmap | 1000 | 600.0 |",
        "| loop | 20 | |",
    ]
    with pytest.raises(ValueError, match="expected 3 cells"):
        t.row("short", 1)
    with pytest.raises(ValueError):
        Table()


def test_z_score():
    assert z_score(0.53, 0.01, 0.5) == pytest.approx(3.0)
    z = z_score([0.0, 1.0, 1.0, -2.0], [0.0, 0.5, 0.0, 1.0], 0.0)
    assert z.tolist() == [0.0, 2.0, math.inf, -2.0]  # exact 0 ± 0 agrees; 1 ± 0 does not
    assert isinstance(z_score(1.0, 1.0, 0.0), float)
    assert z_score(np.ones((2, 3)), 1.0, 0.0).shape == (2, 3)


def test_claim():
    c = Claim("k2 is honest", {"u_rev": 0.8, "u_perp": -1.9})
    assert c.holds and c.max_abs_z == 1.9
    assert c.markdown() == "- k2 is honest: **True** (largest |z| = 1.90)."
    assert c.as_dict() == {
        "statement": "k2 is honest",
        "holds": True,
        "z": {"u_rev": 0.8, "u_perp": -1.9},
        "z_max": 5.0,
    }
    assert not Claim("k1 is honest", {"u_rev": -12.0, "u_perp": 0.1}).holds
    assert Claim("at the edge", 5.0).holds and not Claim("over it", -5.01).holds
    assert not Claim("no evidence", math.nan).holds  # NaN never supports a claim
    assert Claim("strict", 2.5, z_max=2.0).max_abs_z == 2.5
