"""experiments/density_weighting.py end to end: outputs exist and parse, the numbers are right.

Oracles are independent of jaxkl: closed forms written out here and scipy quadrature of
scipy.stats densities. Statistical checks use the standard errors the run reports, at 5·SE.
"""

import contextlib
import csv
import io
import json
import math
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import jaxkl
from jaxkl.study.density_weighting import mu_grid, sweep_estimates
from jaxkl.study.misuse import discrete_misuse_limit, misuse_with_stderr, squared_density_kl
from tests.experiment_loader import load_experiment

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "density_weighting_quick.toml"
EXPERIMENT = "density_weighting"


def _load():
    return load_experiment("density_weighting", EXPERIMENT)


@pytest.fixture(scope="module")
def dw():
    return _load()


@pytest.fixture(scope="module")
def run(dw, tmp_path_factory):
    """The quick config run once through the script's entry point, as the command line
    calls it (in this process: a subprocess would pay for importing jax and compiling
    again; tests/test_seed_cases.py starts a script from the repository root)."""
    out = tmp_path_factory.mktemp("results")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        path = dw.main(["--config", str(QUICK), "--out", str(out), "--run-name", "quick"])
    assert path == out / EXPERIMENT / "quick"
    return out, path, printed.getvalue()


def _cell(path, name):
    return json.loads((path / "cells" / f"{name}.json").read_text())


def _z(value, stderr, reference):
    """(value − reference)/stderr, with an exact 0 ± 0 counted as z = 0."""
    value, stderr, reference = (np.asarray(v, np.float64) for v in (value, stderr, reference))
    diff = value - reference
    exact = (diff == 0) & (stderr == 0)
    assert np.all(exact | (stderr > 0))
    return np.where(exact, 0.0, diff / np.where(exact, 1.0, stderr))


# --------------------------------------------------------------------------- outputs


def test_outputs_exist_and_parse(run):
    _, path, stdout = run
    assert f"report: {path / 'report.md'}" in stdout
    assert (path / "density_weighting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (path / "config.toml").open("rb") as f:
        cfg = tomllib.load(f)
    assert cfg["knn"]["sample_sizes"] == [100, 10000]
    assert cfg["sweep"]["num_samples"] == 100
    summary = json.loads((path / "summary.json").read_text())
    assert summary["seed"] == 0 and summary["config"] == cfg
    assert summary["versions"]["jax"] and summary["devices"]
    assert summary["results"]["knn"]["largest_n"] == 10000
    with (path / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"section", "mu", "n", "quantity", "value", "stderr", "reference", "kl"}
    # 40 values of μ × 3 estimators, 2 sample sizes × (k-NN, misuse).
    assert len(rows) == 40 * 3 + 2 * 2
    assert all(math.isfinite(float(r["value"])) for r in rows)
    report = (path / "report.md").read_text(encoding="utf-8")
    assert "![estimates against μ and against n](density_weighting.png)" in report
    # The explanation asked for: two sentences.
    why = report.split("**Why the first is wrong.** ", 1)[1].split("\n", 1)[0]
    assert why.count(". ") == 1 and why.endswith(".")
    assert "∫q²·log(q/p)" in why
    assert "**Why the misuse converges to 0.25, not 0.5.**" in report


# --------------------------------------------------------------------------- (a) μ sweep


def test_mu_grid():
    mu = mu_grid({"mu_min": -5.0, "mu_max": 5.0, "mu_step": 0.25})
    assert mu.size == 40 and mu[0] == -5.0 and mu[-1] == 4.75 and 0.0 in mu
    # 0.3/0.1 = 2.9999999999999996 and 1/0.1 = 10.0: neither end point sneaks in or out.
    assert mu_grid({"mu_min": 0.0, "mu_max": 0.3, "mu_step": 0.1}).size == 3
    assert mu_grid({"mu_min": 0.0, "mu_max": 1.0, "mu_step": 0.1}).size == 10


def test_k1_and_k3_agree_with_closed_form(run):
    _, path, _ = run
    s = _cell(path, "mu_sweep")
    mu = np.asarray(s["mu"])
    kl = mu**2 / 2  # KL(N(μ, 1) ‖ N(0, 1))
    np.testing.assert_allclose(s["kl"], kl, rtol=1e-6)  # jaxkl.kl, float32
    z1 = _z(s["k1_value"], s["k1_stderr"], kl)
    assert np.abs(z1).max() < 5
    # k1 = mean of μx − μ²/2 with x Gaussian: each z is Student-t with 99 dof (sd 1.01), so
    # their mean over the 40 independent μ has SE 1.01/√40.
    assert abs(z1.mean()) < 5 * 1.01 / math.sqrt(mu.size)
    # k3's r = p/q has Var r = e^{μ²} − 1; for KL ≤ 2 (|μ| ≤ 2, Var r ≤ 54) 100 draws give a
    # usable SE. Farther out the draws that hold E r = 1 are rarely caught and its z-scores
    # are not ~N(0, 1) (the report shows this), so the 5·SE check stops there.
    near = kl <= 2.0
    z3 = _z(s["k3_value"], s["k3_stderr"], kl)[near]
    assert near.sum() == 17
    assert np.abs(z3).max() < 5
    assert abs(z3.mean()) < 5 / math.sqrt(near.sum())


def test_k1_and_k3_share_draws(run):
    _, path, _ = run
    s = _cell(path, "mu_sweep")
    # Same draws: k3 − k1 = mean(r) − 1 with r > 0, so ≥ −1 up to float32 rounding of two
    # means of terms ≤ ~13. Independent draws would break this at large |μ|.
    diff = np.asarray(s["k3_value"]) - np.asarray(s["k1_value"])
    assert diff.min() >= -1.0 - 1e-4
    # At μ = 0 every per-sample term is exactly 0.
    i = s["mu"].index(0.0)
    for name in ("k1", "k3", "wrong"):
        assert s[f"{name}_value"][i] == 0.0 and s[f"{name}_stderr"][i] == 0.0


def _quad_squared_kl(loc_a, scale_a, loc_b, scale_b):
    """∫a²·log(a/b) by scipy quadrature of scipy.stats densities."""
    a, b = stats.norm(loc_a, scale_a), stats.norm(loc_b, scale_b)
    f = lambda x: a.pdf(x) ** 2 * (a.logpdf(x) - b.logpdf(x))  # noqa: E731
    lo, hi = loc_a - 20 * scale_a, loc_a + 20 * scale_a
    return integrate.quad(f, lo, hi, points=[loc_a], epsabs=1e-13, epsrel=1e-11, limit=200)[0]


def test_wrong_estimator_converges_to_its_own_limit_not_kl(run):
    _, path, _ = run
    s = _cell(path, "mu_sweep")
    mu = np.asarray(s["mu"])
    kl = mu**2 / 2
    # ∫q²·log(q/p) = μ²/(4√π): q² = N(μ, ½)/(2√π) and log(q/p) = μx − μ²/2. Quadrature
    # confirms it at every fifth μ.
    limit = mu**2 / (4 * math.sqrt(math.pi))
    np.testing.assert_allclose(s["wrong_limit"], limit, rtol=1e-12, atol=1e-15)
    quad = [_quad_squared_kl(m, 1.0, 0.0, 1.0) for m in mu[::5]]
    np.testing.assert_allclose(quad, limit[::5], rtol=1e-8, atol=1e-12)
    wrong, se = np.asarray(s["wrong_value"]), np.asarray(s["wrong_stderr"])
    z = _z(wrong, se, limit)
    assert np.abs(z).max() < 5
    # Bounded terms (q ≤ 1/√(2π)): each z is close to N(0, 1); their mean has SE 1/√40.
    assert abs(z.mean()) < 5 / math.sqrt(mu.size)
    far = np.abs(mu) >= 1
    assert np.all(np.abs(wrong[far] - kl[far]) > 5 * se[far])
    # The limit is KL/(2√π) ≈ 0.28·KL; the estimates stay well below KL.
    assert np.all(wrong[far] < 0.5 * kl[far])


def test_sweep_does_not_depend_on_batching(run):
    _, path, _ = run
    s = _cell(path, "mu_sweep")
    key = jax.random.fold_in(jax.random.key(0), 0)  # as main() does with seed 0
    mus = jnp.asarray(s["mu"][:3], jnp.float32)
    est = sweep_estimates(key, mus, 1.0, jaxkl.Normal(0.0, 1.0), 100)
    for name in ("k1", "k3", "wrong"):
        np.testing.assert_allclose(est[name].value, s[f"{name}_value"][:3], rtol=1e-5)
        np.testing.assert_allclose(est[name].stderr, s[f"{name}_stderr"][:3], rtol=1e-5)


# --------------------------------------------------------------------------- (b) k-NN, misuse


def test_knn_converges_to_kl_and_misuse_to_a_quarter(run):
    _, path, _ = run
    largest = _cell(path, "n=10000")
    assert largest["n"] == 10000
    assert abs(largest["knn_value"] - 0.5) < 5 * largest["knn_stderr"]
    value, se = largest["misuse_value"], largest["misuse_stderr"]
    assert abs(value - 0.25) < 5 * se
    assert 5 * se < 0.06 * 0.25  # so the line above pins it within 6% of 0.25
    assert abs(value - 0.5) > 50 * se


def test_misuse_limit_closed_form():
    assert discrete_misuse_limit(0.0, 1.0, 1.0, 1.0) == pytest.approx(0.25, abs=1e-14)
    rng = np.random.default_rng(3)
    for _ in range(2):
        la, lb = rng.normal(0, 1, 2)
        sa, sb = np.exp(rng.normal(0, 0.4, 2))
        for args in ((la, sa, lb, sb), (lb, sb, la, sa)):  # both directions
            a, b = stats.norm(args[0], args[1]), stats.norm(args[2], args[3])
            lo, hi = args[0] - 20 * args[1], args[0] + 20 * args[1]
            aa = integrate.quad(lambda x: a.pdf(x) ** 2, lo, hi, points=[args[0]])[0]  # noqa: B023
            ab = integrate.quad(lambda x: a.pdf(x) * b.pdf(x), lo, hi, points=[args[0]])[0]  # noqa: B023
            want = _quad_squared_kl(*args) / aa + math.log(ab / aa)
            assert discrete_misuse_limit(*map(float, args)) == pytest.approx(want, rel=1e-8)
            assert squared_density_kl(*args) == pytest.approx(_quad_squared_kl(*args), rel=1e-8)
    # Equal scales: exactly half the true KL, Δ²/(4s²).
    assert discrete_misuse_limit(0.3, 2.0, -1.1, 2.0) == pytest.approx(1.4**2 / 16, rel=1e-12)


def test_misuse_value_is_scipy_entropy_and_its_stderr_is_honest():
    rng = np.random.default_rng(5)
    n, reps = 500, 400
    values, ses = [], []
    for r in range(reps):
        x = rng.normal(0.0, 1.0, n)
        la, lb = stats.norm.logpdf(x, 0, 1), stats.norm.logpdf(x, 1, 1)
        v, se = misuse_with_stderr(la, lb)
        if r == 0:
            assert v == pytest.approx(stats.entropy(np.exp(la), np.exp(lb)), rel=1e-12)
        values.append(v)
        ses.append(se)
    # The delta-method SE against the spread of 400 independent replicates; the relative
    # sampling error of a standard deviation from R replicates is ≈ 1/√(2R).
    ratio = np.std(values, ddof=1) / np.mean(ses)
    assert abs(ratio - 1) < 5 / math.sqrt(2 * reps)


# --------------------------------------------------------------------------- running


def test_rerun_resumes_without_recomputing(dw, run, capsys):
    out, path, _ = run
    again = dw.main(["--config", str(QUICK), "--out", str(out), "--run-name", "quick"])
    assert again == path
    summary = json.loads((path / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["cells"] == {"total": 3, "computed_this_run": 0}
    assert f"report: {path / 'report.md'}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sweep.mu_step=0", "sweep.mu_step: must be finite and > 0"),
        ("sweep.mu_min=6", "sweep.mu_min: must be < sweep.mu_max"),
        ("sweep.mu_step=20", "sweep.mu_step: must leave at least 2 values of μ"),
        ("sweep.num_samples=1", "sweep.num_samples: must be >= 2"),
        ("knn.sample_sizes=[1]", "knn.sample_sizes: every size must be >= knn.k + 1"),
        ("knn.sample_sizes=[100, 100]", "knn.sample_sizes: must not repeat a size"),
        ("knn.a_scale=0", "knn.a_scale: must be finite and > 0"),
        ("knn.nope=3", "knn.nope: unknown key"),
    ],
)
def test_bad_config_rejected_before_compute(dw, tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as info:
        dw.main(["--out", str(tmp_path), "--set", override])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
