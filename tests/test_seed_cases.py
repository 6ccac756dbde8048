"""experiments/seed_cases.py end to end: outputs exist and parse, the numbers are right."""

import csv
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from jaxkl.study.misuse import clipping_discrete_kl, normalising_discrete_kl
from tests.experiment_loader import load_experiment

REPO = Path(__file__).resolve().parents[1]
F32_EPS = float(np.finfo(np.float32).eps)

# Small but complete: every section runs, in a few seconds.
QUICK = [
    "--set",
    "misuse.sample_sizes=[50, 2000]",
    "--set",
    "nvae.num_random=500",
    "--set",
    "nvae.num_gaps=25",
    "--set",
    "quadrature.points=4001",
    "--set",
    "plot.dpi=30",
]


def _load():
    return load_experiment("seed_cases", "seed_cases")


@pytest.fixture(scope="module")
def seed_cases():
    return _load()


@pytest.fixture(scope="module")
def run(seed_cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    path = seed_cases.main(["--out", str(out), *QUICK])
    return out, path


def _summary(path):
    return json.loads((path / "summary.json").read_text())


def _cell(path, name):
    return json.loads((path / "cells" / f"{name}.json").read_text())


def test_outputs_exist_and_parse(run):
    out, path = run
    assert path.parent == out / "seed_cases"
    assert path.name.startswith("seed_cases-")
    for name in ("densities.png", "nvae_precision.png"):
        assert (path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (path / "config.toml").open("rb") as f:
        cfg = tomllib.load(f)
    assert cfg["misuse"]["sample_sizes"] == [50, 2000]
    assert cfg["nvae"]["num_random"] == 500
    s = _summary(path)
    assert s["seed"] == 0 and s["config"] == cfg
    assert s["versions"]["jax"] and s["devices"]
    with (path / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"section", "case", "quantity", "n", "value", "reference"}
    assert {r["section"] for r in rows} >= {"analytic", "misuse", "nvae_random", "nvae_sweep"}
    report = (path / "report.md").read_text(encoding="utf-8")
    assert "![densities and KL integrands](densities.png)" in report
    assert "![float32 relative error](nvae_precision.png)" in report


def test_textbook_numbers(run):
    _, path = run
    kl = _summary(path)["results"]["kl"]
    got = [kl["symmetric"]["ab"], kl["symmetric"]["ba"], kl["asymmetric"]["ab"]]
    assert [round(v, 4) for v in got] == [0.5, 0.5, 0.3181]
    assert round(kl["asymmetric"]["ba"], 4) == 0.8069
    # Closed forms: log(σ_b/σ_a) + (σ_a² + Δμ²)/(2σ_b²) − ½.
    exact_ab = math.log(2.0) + 1.0 / 8.0 - 0.5
    exact_ba = math.log(0.5) + 4.0 / 2.0 - 0.5
    for name, ab, ba in (("symmetric", 0.5, 0.5), ("asymmetric", exact_ab, exact_ba)):
        cell = _cell(path, f"analytic_{name}")
        # float32 result of an O(1) quantity: a few ulps.
        assert cell["kl_ab"] == pytest.approx(ab, rel=4 * F32_EPS)
        assert cell["kl_ba"] == pytest.approx(ba, rel=4 * F32_EPS)
        assert cell["kl_ab_f64"] == pytest.approx(ab, rel=1e-14)
        assert cell["kl_ba_f64"] == pytest.approx(ba, rel=1e-14)
        # Trapezoid over ±12 scales on 4001 points: Gaussian integrands, error far below 1e-8.
        assert cell["quad_ab"] == pytest.approx(ab, abs=1e-8)
        assert cell["quad_ba"] == pytest.approx(ba, abs=1e-8)
    report = (path / "report.md").read_text(encoding="utf-8")
    for number in ("0.5000", "0.3181", "0.8069"):
        assert number in report


def test_misuse_numbers(run):
    _, path = run
    sym = _cell(path, "misuse_symmetric")
    # Normal samples contain negatives, so a normalising discrete KL is +inf.
    assert all(math.isinf(r["entropy_samples_ab"]) for r in sym["rows"])
    # Densities at x ~ a, normalised, converge to ∫a²log(a/b)/∫a² + log(∫ab/∫a²); for
    # N(0,1) vs N(1,1): a² ∝ N(0, ½), log(a/b) = ½ − x → ½; ∫ab/∫a² = e^{−1/4} → −¼.
    assert sym["limits"]["entropy_pdf_ab"] == pytest.approx(0.25, abs=1e-9)
    assert sym["limits"]["entropy_pdf_ba"] == pytest.approx(0.25, abs=1e-9)
    # The clipped sum is n × a per-sample constant: its value scales with n.
    small, large = sym["rows"]
    ratio = large["clipped_samples_ab"] / small["clipped_samples_ab"]
    assert 10 < ratio < 100  # n grew 40×


def test_discrete_kl_helpers_match_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 200), rng.normal(1, 1, 200)
    pa, pb = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1, 1)
    assert normalising_discrete_kl(pa, pb) == pytest.approx(stats.entropy(pa, pb), rel=1e-12)
    assert normalising_discrete_kl(x, y) == stats.entropy(x, y) == math.inf
    assert normalising_discrete_kl([1, 0], [1, 1]) == pytest.approx(math.log(2))
    # Clipping: [2, 0.5] → [1, 0.5], [−1, 0.25] → [1e-7, 0.25].
    want = 1.0 * math.log(1.0 / 1e-7) + 0.5 * math.log(0.5 / 0.25)
    assert clipping_discrete_kl([2, 0.5], [-1, 0.25], 1e-7) == pytest.approx(want)


def test_nvae_residual_equals_generic(run):
    _, path = run
    r = _cell(path, "nvae_random")
    assert r["n"] == 500
    # Same quantity; in float64 the only differences are rounding of μ_p+Δμ and σ_p·Δσ.
    assert r["float64"]["max_rel_diff"] < 1e-10
    # In float32 that input rounding is ~1e-7 relative, amplified where Δμ or log Δσ is
    # small; the residual form itself stays within a few dozen ulps of the exact value.
    assert r["float32"]["max_rel_diff"] < 1e-3
    assert r["float32"]["residual_max_rel_err"] < 32 * F32_EPS


def test_nvae_float32_precision_sweep(run):
    _, path = run
    sweep = _cell(path, "nvae_sweep")
    gap = np.asarray(sweep["gap"])
    assert gap.min() < 2e-7 and gap.max() == pytest.approx(0.1, rel=1e-6)
    residual = np.asarray(sweep["residual_rel_err"])
    textbook = np.asarray(sweep["textbook_rel_err"])
    assert residual.max() < 4 * F32_EPS
    # The textbook form loses everything at small gaps (this is what the figure shows).
    assert textbook[gap < 1e-5].min() > 0.1
    # Exact reference spot check: Δσ = 1 + g, Δμ = σ_p·g gives ≈ 1.5 g².
    i = int(np.argmin(np.abs(gap - 1e-3)))
    assert sweep["reference"][i] == pytest.approx(1.5 * gap[i] ** 2, rel=3 * gap[i])


def test_rerun_resumes_without_recomputing(seed_cases, run, capsys):
    out, path = run
    again = seed_cases.main(["--out", str(out), *QUICK])
    assert again == path
    s = _summary(path)
    assert s["resumed"] is True
    assert s["cells"] == {"total": 6, "computed_this_run": 0}
    assert f"report: {path / 'report.md'}" in capsys.readouterr().out


def test_conflicting_rerun_is_refused(seed_cases, run, capsys):
    out, path = run
    with pytest.raises(SystemExit) as info:
        seed_cases.main(["--out", str(out), "--run-name", path.name, *QUICK, "--set", "seed=1"])
    assert info.value.code == 2
    assert "seed: saved 0, now 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cases.symmetric.scale_a=-1", "cases.symmetric.scale_a: must be finite and > 0"),
        ("nvae.num_gaps=1", "nvae.num_gaps: must be >= 2"),
        ("misuse.sample_sizes=[]", "misuse.sample_sizes: must not be empty"),
        ("misuse.nope=3", "misuse.nope: unknown key"),
        ("nvae.num_random=1.5", "nvae.num_random: expected int"),
    ],
)
def test_bad_config_rejected_before_compute(seed_cases, tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as info:
        seed_cases.main(["--out", str(tmp_path), "--set", override])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


# A fresh interpreter (4.4 s of CPU): CI still runs this script's main in-process (the
# fixture above) and an experiment script as a command from the repo root
# (tests/study/test_bias_variance.py::test_resume_after_kill_recomputes_nothing).
@pytest.mark.slow
def test_command_line_from_repo_root(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "experiments/seed_cases.py",
            "--config",
            "configs/seed_cases.toml",
            "--out",
            str(tmp_path),
            "--run-name",
            "cli",
            *QUICK,
            "--set",
            "nvae.num_gaps=5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "KL(a‖b) = 0.3181, KL(b‖a) = 0.8069" in res.stdout
    assert f"report: {tmp_path / 'seed_cases' / 'cli' / 'report.md'}" in res.stdout
