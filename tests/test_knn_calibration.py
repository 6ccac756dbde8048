"""experiments/knn_calibration.py end to end on its quick config, and its summary helper."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jaxkl.study.calibration import calibration_summary, kl_diag_gaussians
from tests.experiment_loader import load_experiment

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "knn_calibration_quick.toml"


def _load():
    return load_experiment("knn_calibration", "knn_calibration")


@pytest.fixture(scope="module")
def kc():
    return _load()


@pytest.mark.slow  # ~10 s of compiles on 2 cores; the helpers below are tested fast
def test_quick_run_writes_every_cell(kc, tmp_path):
    path = kc.main(["--config", str(QUICK), "--out", str(tmp_path)])
    summary = json.loads((path / "summary.json").read_text())
    cells = summary["results"]["cells"]
    runs = {"smooth", "smooth_jax32", "far", "mvn5", "mvn5_reverse", "iso10"}
    assert {c["run"] for c in cells} == runs
    for c in cells:
        assert c["nonfinite"] == 0 and c["groups"] == 10
        assert 0.0 <= c["coverage_t"] <= 1.0 and math.isfinite(c["bias_se"])
        assert c["coverage_t"] >= c["coverage_normal"]  # t₉ intervals are wider
    assert "| smooth | float64 | 1 | 300 |" in (path / "report.md").read_text()
    assert (path / "metrics.csv").is_file()


def test_calibration_summary_on_known_draws():
    # value = truth ± 1 alternately, stderr 1: the t interval (2.262) covers every draw,
    # the normal one (1.96) too; a bias of 0 and an sd of ~1.
    value = np.where(np.arange(100) % 2 == 0, 1.5, -0.5)
    draws = np.stack([value, np.ones(100)], axis=1)
    s = calibration_summary(draws, 0.5, 10)
    assert s["bias"] == pytest.approx(0.0, abs=1e-12)
    assert s["coverage_t"] == 1.0 and s["coverage_normal"] == 1.0
    assert s["t_quantile"] == pytest.approx(2.2621571628, rel=1e-9)
    draws[:, 1] = 0.5  # half-width 1.131 vs 0.98: only the t interval covers
    s = calibration_summary(draws, 0.5, 10)
    assert s["coverage_t"] == 1.0 and s["coverage_normal"] == 0.0


def test_kl_of_the_far_case():
    assert kl_diag_gaussians(
        {"p_loc": [0.0], "p_scale": [1.0], "q_loc": [20**0.5], "q_scale": [1.0]}
    ) == pytest.approx(10.0)
