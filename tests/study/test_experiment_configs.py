"""Every experiment script refuses a bad config before computing or writing anything.

Each script's ``main`` (for a script that starts a package's command line, the package's)
runs in-process with one bad input: a value its checks refuse, a non-finite number (the
first float key of its default config), a non-UTF-8 file and a directory given as
``--config``. Each must exit with status 2 and a message naming the key and the refused
value, print no traceback, and leave no results folder. ``RunDir`` (where the experiment
protocol, :mod:`jaxkl.study.experiment`, and any script of its own open it) is replaced by
a sentinel, so a config that slipped through fails the test at once instead of starting
the experiment.
"""

from __future__ import annotations

import importlib

import pytest

from jaxkl.study import experiment
from jaxkl.study.config import flatten, load_toml
from tests.experiment_loader import load_experiment

# script -> (--set that its checks refuse, the key, the refused value as printed)
REFUSED = {
    "batched_fits": ("fit.num_steps=-3", "fit.num_steps", "-3"),
    "bias_variance": ("report.slope_min_n=0", "report.slope_min_n", "0"),
    "density_weighting": ("sweep.num_samples=-1", "sweep.num_samples", "-1"),
    "fit_mixture": ("fit.init_loc_jitter=-1", "fit.init_loc_jitter", "-1.0"),
    "gradient_variance": ("variance.replicates=-2", "variance.replicates", "-2"),
    "kl_penalty": ("train.num_steps=-1", "train.num_steps", "-1"),
    "kl_regularization": ("gradients.sizes=[]", "gradients.sizes", "[]"),
    "knn_calibration": ("k=0", "k", "0"),
    "seed_cases": ("quadrature.points=-1", "quadrature.points", "-1"),
    "throughput": ("sections=[]", "sections", "[]"),
}
SCRIPTS = sorted(REFUSED)
# Scripts that only start a package's command line: the test runs the package's module
# (its RunDir is the one to replace); tests/test_throughput.py runs the script itself.
PACKAGED = {"throughput": "benchmarks.throughput.cli"}


class _Started(AssertionError):
    pass


def _started(*args, **kwargs):
    raise _Started("the config was accepted and the experiment started")


@pytest.fixture(scope="module")
def modules():
    return {
        name: importlib.import_module(PACKAGED[name]) if name in PACKAGED else load_experiment(name)
        for name in SCRIPTS
    }


def _default_config(module):
    if isinstance(getattr(module, "EXPERIMENT", None), experiment.Experiment):
        return module.EXPERIMENT.default_config
    return getattr(module, "DEFAULT", None) or module.DEFAULT_CONFIG


def _refused(module, argv, tmp_path, monkeypatch, capsys) -> str:
    monkeypatch.setattr(experiment, "RunDir", _started)
    monkeypatch.setattr(module, "RunDir", _started, raising=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        module.main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("name", SCRIPTS)
def test_refused_value_names_key_and_value(name, modules, tmp_path, monkeypatch, capsys):
    override, key, value = REFUSED[name]
    err = _refused(modules[name], ["--set", override], tmp_path, monkeypatch, capsys)
    line = next((ln for ln in err.splitlines() if ln.strip().startswith(f"{key}:")), None)
    assert line is not None and f"got {value}" in line, err


@pytest.mark.parametrize("name", SCRIPTS)
def test_non_finite_number_is_refused(name, modules, tmp_path, monkeypatch, capsys):
    # The first float, or list of floats, in the script's default config.
    schema = flatten(load_toml(_default_config(modules[name])))
    key, text = next(
        (k, "nan" if isinstance(v, float) else "[nan]")
        for k, v in schema.items()
        if isinstance(v, float) or (isinstance(v, list) and v and isinstance(v[0], float))
    )
    err = _refused(modules[name], ["--set", f"{key}={text}"], tmp_path, monkeypatch, capsys)
    assert f"  {key}: must be finite; got {text}" in err, err


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("kind", ["not-utf8", "directory"])
def test_unreadable_config_is_refused(name, kind, modules, tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"seed = 0\n\xff\xfe")
    err = _refused(modules[name], ["--config", str(path)], tmp_path, monkeypatch, capsys)
    problem = "is a directory" if kind == "directory" else "not UTF-8"
    assert f"{path}: {problem}" in err, err
