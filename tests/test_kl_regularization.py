"""experiments/kl_regularization.py end to end on its quick config: outputs, claims, resume."""

import csv
import json
from pathlib import Path

import pytest

from tests.experiment_loader import load_experiment

ROOT = Path(__file__).resolve().parents[1]


def _load():
    return load_experiment("kl_regularization")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kl_regularization")
    argv = ["--config", str(ROOT / "configs" / "kl_regularization_quick.toml"), "--out", str(out)]
    module = _load()
    path = module.main(argv)
    again = module.main(argv)  # resumes: every cell is read back, none recomputed
    return path, again


def test_writes_every_output(run):
    path, _ = run
    for f in (
        "config.toml",
        "metrics.csv",
        "training.csv",
        "summary.json",
        "report.md",
        "kl_regularization.png",
        "kl_regularization_variance.png",
    ):
        assert (path / f).is_file(), f
    assert (path / "kl_regularization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["group"] for r in rows} == {"on_policy", "off_policy", "aggregations"}
    report = (path / "report.md").read_text()
    assert "| configuration | unbiased for ∇KL_seq? | measured relative bias ± SE" in report


def test_claims_hold_and_resume_recomputes_nothing(run):
    path, again = run
    assert again == path
    summary = json.loads((path / "summary.json").read_text())
    claims = summary["results"]["claims"]
    assert claims["table_holds"] and claims["verdicts_hold"] and claims["training"], claims
    assert summary["resumed"] and summary["cells"]["computed_this_run"] == 0
    grads = summary["results"]["gradients"]
    assert grads["on_policy"]["loss-k3-prefix"]["unbiased"]
    assert not grads["on_policy"]["loss-k3-none"]["unbiased"]
    assert not grads["off_policy"]["reward-k1-token"]["unbiased"]  # PPO's ratio, b ≠ π_θ


def test_bad_config_is_refused_before_compute(tmp_path):
    with pytest.raises(SystemExit):
        _load().main(
            ["--config", str(ROOT / "configs" / "kl_regularization_quick.toml"),
             "--set", 'gradients.on_policy=["reward-k3plus-none"]', "--out", str(tmp_path)]
        )  # fmt: skip
    assert not (tmp_path / "kl_regularization").exists()
