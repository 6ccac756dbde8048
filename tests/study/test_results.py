"""Atomic files, run folders, resume guard, per-cell store, provenance, figures."""

import csv
import json
import math
import re
import subprocess
import sys
import tomllib

import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.study import (
    RunConflictError,
    RunDir,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    cell_id,
    derive_run_name,
    environment_info,
    git_revision,
    new_figure,
    save_figure,
    to_jsonable,
)
from jaxkl.study import results as results_mod

CONFIG = {"seed": 3, "sweep": {"n": [10, 100], "scale": 0.5}, "name": "x"}


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- atomic files


def test_atomic_write_creates_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one ‖\n")
    assert target.read_text(encoding="utf-8") == "one ‖\n"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert _leftovers(target.parent) == []


def test_atomic_write_has_the_mode_of_an_ordinary_file(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic", "x")
    assert (tmp_path / "atomic").stat().st_mode == plain.stat().st_mode


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_json_converts_numpy_and_jax_and_keeps_nonfinite(tmp_path):
    obj = {
        "np_f32": np.float32(0.1),
        "np_i": np.int64(3),
        "np_b": np.bool_(True),
        "arr": np.arange(3),
        "jax": jnp.asarray([0.5, 1.5]),
        "jax0": jnp.asarray(2.0),
        "tuple": (1, 2),
        "inf": math.inf,
        "path": tmp_path,
        "nested": {1: [np.float64(0.3)]},
    }
    atomic_write_json(tmp_path / "o.json", obj)
    back = json.loads((tmp_path / "o.json").read_text())
    assert back == {
        "np_f32": float(np.float32(0.1)),
        "np_i": 3,
        "np_b": True,
        "arr": [0, 1, 2],
        "jax": [0.5, 1.5],
        "jax0": 2.0,
        "tuple": [1, 2],
        "inf": math.inf,
        "path": str(tmp_path),
        "nested": {"1": [0.3]},
    }


def test_to_jsonable_names_the_bad_entry():
    with pytest.raises(TypeError, match=r"value.a\[1\]: cannot store object"):
        to_jsonable({"a": [1, object()]})


def test_csv_columns_first_appearance_and_exact_floats(tmp_path):
    rows = [{"b": 0.1 + 0.2, "a": 1}, {"a": np.float32(0.5), "c": "x,y"}]
    atomic_write_csv(tmp_path / "m.csv", rows)
    with (tmp_path / "m.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["b", "a", "c"]
        got = list(reader)
    assert float(got[0]["b"]) == 0.1 + 0.2
    assert got[0]["c"] == ""
    assert got[1] == {"b": "", "a": "0.5", "c": "x,y"}


def test_csv_explicit_columns(tmp_path):
    atomic_write_csv(tmp_path / "m.csv", [{"a": 1}], columns=["z", "a"])
    assert (tmp_path / "m.csv").read_text() == "z,a\n,1\n"
    with pytest.raises(ValueError, match=r"row 0 has keys not in columns: \['b'\]"):
        atomic_write_csv(tmp_path / "m.csv", [{"a": 1, "b": 2}], columns=["a"])


# --------------------------------------------------------------------------- run folders


def test_run_name_follows_the_resolved_config():
    name = derive_run_name(CONFIG, "exp")
    assert re.fullmatch(r"exp-[0-9a-f]{8}", name)
    # Key order does not change the name; any value does.
    reordered = {"name": "x", "sweep": {"scale": 0.5, "n": [10, 100]}, "seed": 3}
    assert derive_run_name(reordered, "exp") == name
    assert derive_run_name({**CONFIG, "seed": 4}, "exp") != name
    assert derive_run_name(CONFIG, "exp_quick").startswith("exp_quick-")


def test_open_writes_resolved_config(tmp_path):
    run = RunDir.open(tmp_path, "exp", CONFIG)
    assert run.path == tmp_path / "exp" / derive_run_name(CONFIG, "exp")
    assert not run.resumed
    with (run.path / "config.toml").open("rb") as f:
        assert tomllib.load(f) == CONFIG
    assert RunDir.open(tmp_path, "exp", CONFIG, run_name="mine").path.name == "mine"


def test_reopen_same_config_resumes_cells(tmp_path):
    calls = []

    def compute(n):
        calls.append(n)
        return {"n": n, "value": np.float32(n) / 3}

    run = RunDir.open(tmp_path, "exp", CONFIG)
    first = [run.cells.get_or_compute(cell_id(n=n), lambda n=n: compute(n)) for n in (10, 100)]
    again = RunDir.open(tmp_path, "exp", CONFIG)
    assert again.resumed and again.path == run.path
    second = [again.cells.get_or_compute(cell_id(n=n), lambda n=n: compute(n)) for n in (10, 100)]
    assert calls == [10, 100]
    assert first == second
    assert again.cells.ids() == ["n=10", "n=100"]
    assert again.cells.saved_this_run == []


def test_reopen_with_other_config_is_refused(tmp_path):
    RunDir.open(tmp_path, "exp", CONFIG, run_name="r")
    changed = {**CONFIG, "sweep": {"n": [10], "scale": 0.5}}
    with pytest.raises(RunConflictError) as info:
        RunDir.open(tmp_path, "exp", changed, run_name="r")
    msg = str(info.value)
    assert "different config" in msg
    assert "sweep.n: saved [10, 100], now [10]" in msg
    assert "--run-name" in msg and "--out" in msg
    # Nothing was overwritten.
    with (tmp_path / "exp" / "r" / "config.toml").open("rb") as f:
        assert tomllib.load(f) == CONFIG
    # The derived name of the changed config is a different folder, so no conflict.
    assert RunDir.open(tmp_path, "exp", changed).path.name != "r"


def test_unreadable_saved_config_is_refused(tmp_path):
    folder = tmp_path / "exp" / "r"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("seed = = 1")
    with pytest.raises(RunConflictError, match="cannot be read"):
        RunDir.open(tmp_path, "exp", CONFIG, run_name="r")


@pytest.mark.parametrize("name", ["..", "a/b"])
def test_bad_run_name(tmp_path, name):
    with pytest.raises(ValueError, match="invalid run name"):
        RunDir.open(tmp_path, "exp", CONFIG, run_name=name)


def test_cell_store_errors(tmp_path):
    run = RunDir.open(tmp_path, "exp", CONFIG)
    assert not run.cells.has("a")
    with pytest.raises(KeyError, match="no saved cell 'a'"):
        run.cells.load("a")
    for bad in ("", "../x", "a/b", ".hidden", "x" * 121):
        with pytest.raises(ValueError, match="invalid cell id"):
            run.cells.save(bad, {})
    run.cells.save("a", {"x": [1.0, math.inf]})
    assert run.cells.load("a") == {"x": [1.0, math.inf]}
    assert run.cells.saved_this_run == ["a"]


def test_cell_id():
    assert cell_id(n=100, est="k1") == "n=100,est=k1"
    assert cell_id(scale=0.1) == "scale=0.1"
    # Sanitised ids carry a hash of the exact parameters, so they stay distinct.
    a, b = cell_id(name="a/b"), cell_id(name="a-b")
    assert a != b and a.startswith("name=a-b-")
    long = cell_id(x="y" * 300)
    assert len(long) <= 120
    assert long != cell_id(x="y" * 299)
    with pytest.raises(ValueError, match="at least one parameter"):
        cell_id()


# --------------------------------------------------------------------------- provenance


def test_summary_has_provenance(tmp_path):
    run = RunDir.open(tmp_path, "exp", CONFIG)
    run.cells.save("c", {"v": 1})
    path = run.write_summary({"kl": np.float32(0.5)}, note="hi")
    s = json.loads(path.read_text())
    assert s["experiment"] == "exp" and s["run_name"] == run.name
    assert s["seed"] == 3
    assert s["config"] == CONFIG
    assert s["results"] == {"kl": 0.5}
    assert s["note"] == "hi"
    assert s["cells"] == {"total": 1, "computed_this_run": 1}
    assert s["wall_time_s"] >= 0
    v = s["versions"]
    assert v["jaxkl"] == jaxkl.__version__
    assert v["jax"] and v["jaxlib"] and v["numpy"] and v["python"]
    assert s["devices"] and {"id", "platform", "device_kind", "description"} <= set(s["devices"][0])
    assert s["git_sha"] is None or re.fullmatch(r"[0-9a-f]{40}", s["git_sha"])


def test_git_revision_never_fails(tmp_path, monkeypatch):
    assert git_revision(tmp_path) == {"sha": None, "dirty": None}  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_revision() == {"sha": None, "dirty": None}
    assert environment_info()["git_sha"] is None


# --------------------------------------------------------------------------- figures


def test_save_figure_writes_png_atomically(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1], [1, 0], label=r"$a\,\log(a/b)$")
    ax.legend()
    path = save_figure(fig, tmp_path / "f.png", dpi=30)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(tmp_path) == []


def test_save_figure_closes_pyplot_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    assert fig.number in plt.get_fignums()
    save_figure(fig, tmp_path / "p.png", dpi=30)
    assert fig.number not in plt.get_fignums()


def test_importing_study_leaves_pyplot_alone():
    code = (
        "import sys, jaxkl.study; "
        "fig, ax = jaxkl.study.new_figure(); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
