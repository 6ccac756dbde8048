"""The throughput benchmark (``benchmarks.throughput``) end to end on its quick config, plus
its small pure helpers and the two ways to start it.

No wall-clock assertion anywhere: on a shared CI machine only the structure of the
results (files, finiteness, trace counts, unbiasedness) is testable, not the speed.
"""

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from benchmarks.throughput import (
    COLUMNS,
    PAIRS,
    PUBLISHED,
    SECTIONS,
    Z_MAX,
    Timing,
    compile_bound,
    main,
    parse_option,
    time_interleaved,
)
from benchmarks.throughput.harness import best_of, fraction_of

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "throughput_quick.toml"


# CI runs the benchmark end to end on four sections: the harness, the cells, resume, the
# report, the figure and the README section are shared by every section, so these four
# carry them. The five left out compile the most (about 30 of the run's 40 s here): the
# peers' programs and scipy (knn_tree, versus, peers) and mc_kl's (monte_carlo, variance;
# mc_kl itself is compiled in CI by tests/estimators). --run-slow runs all nine and the
# tests of the five.
CI_SECTIONS = ("knn", "analytic", "anatomy", "retrace")


@pytest.fixture(scope="module")
def args(request):
    """The command line of the module's run (and of its resume and publish)."""
    base = ["--config", str(QUICK)]
    if request.config.getoption("--run-slow"):
        return base
    return [*base, "--set", "sections=" + json.dumps(list(CI_SECTIONS))]


@pytest.fixture(scope="module")
def run(tmp_path_factory, args):
    out = tmp_path_factory.mktemp("results")
    path = main([*args, "--out", str(out)])
    return out, path


@pytest.fixture(scope="module")
def summary(run):
    return json.loads((run[1] / "summary.json").read_text())


def _section_rows(summary, name):
    return summary["results"]["sections"][name]["rows"]


def _sections_run(path):
    return json.loads((path / "summary.json").read_text())["config"]["sections"]


# --------------------------------------------------------------------------- end to end


def test_outputs_exist_and_parse(run):
    _, path = run
    for name in (
        "config.toml",
        "summary.json",
        "metrics.csv",
        "report.md",
        "README_SECTION.md",
        "throughput.png",
    ):
        assert (path / name).is_file(), name
    assert (path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (path / "metrics.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert {r["section"] for r in rows} == set(_sections_run(path))
    report = (path / "report.md").read_text()
    if not any(d.platform == "gpu" for d in jax.devices()):
        assert "No GPU was available for this run" in report
    assert "## Performance" in (path / "README_SECTION.md").read_text()


def test_summary_records_every_section(summary, args):
    assert summary["experiment"] == "throughput"
    chosen = set(CI_SECTIONS) if "--set" in args else set(SECTIONS)  # the quick config: all
    assert set(summary["config"]["sections"]) == chosen
    assert set(summary["results"]["sections"]) == chosen
    for rec in summary["results"]["sections"].values():
        assert rec["rows"], "a section produced no rows"
        assert rec["wall_s"] > 0


def test_ratios_and_ceilings_are_finite(summary):
    timed = [
        r
        for sec in ("analytic", "versus", "monte_carlo", "peers", "anatomy")
        if sec in summary["results"]["sections"]
        for r in _section_rows(summary, sec)
    ]
    assert timed
    for r in timed:
        assert r.get("note") is None, r["note"]
        for key in ("seconds", "throughput", "ceiling", "fraction"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["impl"], key, r[key])
    for t in summary["results"]["targets"]:
        assert t["measured"] is not None and math.isfinite(t["measured"]), t


def test_every_analytic_family_is_measured(summary):
    analytic = {r["workload"] for r in _section_rows(summary, "analytic")}
    assert analytic == {"normal", "mvn_diag", "mvn_tril", "categorical"}
    targets = {t["target"] for t in summary["results"]["targets"]}
    assert {"analytic Normal", "analytic Categorical"} <= targets


@pytest.mark.slow  # the monte_carlo and variance sections: see CI_SECTIONS
def test_every_estimator_is_measured(summary):
    mc = {r["workload"] for r in _section_rows(summary, "monte_carlo")}
    assert mc == {"mc_kl_k1", "mc_kl_k3", "importance_kl"}
    targets = {t["target"] for t in summary["results"]["targets"]}
    assert {"mc_kl k1", "precision per second, close pair"} <= targets


def test_no_retrace_on_repeated_calls(summary):
    compiled = [
        r
        for rec in summary["results"]["sections"].values()
        for r in rec["rows"]
        if r.get("traces") is not None
    ]
    # Every jaxkl kernel of the run: analytic, Monte Carlo, kNN and each variance option.
    measured = {"analytic", "monte_carlo", "knn", "variance"}
    assert {r["section"] for r in compiled} >= measured & set(summary["results"]["sections"])
    for r in compiled:
        assert r["traces"] == 1 and r["retraces"] == 0, (r["section"], r["impl"], r["workload"])
    eager = _section_rows(summary, "retrace")
    assert eager
    for r in eager:
        assert r["eager_second_call_traces"] == 0, r
        assert r["eager_second_call_compiles"] == 0, r


def test_knn_memory_and_value_recorded(summary):
    rows = _section_rows(summary, "knn")
    assert [r["batch"] for r in rows] == sorted(r["batch"] for r in rows)
    for r in rows:
        assert r["xla_peak_bytes"] > 0
        assert r["rss_peak_growth_bytes"] >= 0
        assert math.isfinite(r["value"]) and math.isfinite(r["stderr"])


@pytest.mark.slow  # a section left out of CI: see CI_SECTIONS
def test_knn_tree_against_scipy_recorded(summary):
    # Every d × n cell: scipy, the tree, the brute force and the search auto takes; the
    # tree's value and stderr equal the brute force's bit for bit and agree with scipy's
    # direct computation.
    from jaxkl.estimators.knn import auto_takes_tree

    rows = _section_rows(summary, "knn_tree")
    cfg = summary["config"]["knn_tree"]
    cells = {(d, n) for d in cfg["dims"] for n in cfg["sizes"]}
    impls = {"scipy cKDTree", "jaxkl tree", "jaxkl brute", "jaxkl auto"}
    by = {(r["event"], r["batch"], r["impl"]): r for r in rows}
    assert set(by) == {(d, n, i) for d, n in cells for i in impls}
    for d, n in cells:
        tree, brute = by[d, n, "jaxkl tree"], by[d, n, "jaxkl brute"]
        assert tree["identical"] is True and brute["identical"] is True
        assert tree["value"] == brute["value"] and tree["stderr"] == brute["stderr"]
        assert tree["value"] == pytest.approx(by[d, n, "scipy cKDTree"]["value"], rel=1e-4)
        auto = by[d, n, "jaxkl auto"]
        assert auto["search"] == ("tree" if auto_takes_tree(n, d) else "brute")
        assert (auto["vs_fastest_peer"] is None) == (n < cfg["target_min_n"])
    targets = {t["target"]: t for t in summary["results"]["targets"]}
    assert targets["knn ÷ fastest peer, every shape"]["measured"] > 0


@pytest.mark.slow  # a section left out of CI: see CI_SECTIONS
def test_variance_options_unbiased_with_finite_gains(summary):
    rows = _section_rows(summary, "variance")
    cfg = summary["config"]["variance"]
    assert {(r["workload"], r["impl"]) for r in rows} == {
        (pair, opt) for pair in PAIRS for opt in cfg["options"]
    }
    for r in rows:
        assert r.get("note") is None, r["note"]
        # z = (mean − exact KL) / (sd / √replicates) over independent replicates.
        assert abs(r["z"]) <= Z_MAX, (r["workload"], r["impl"], r["z"])
        assert math.isfinite(r["gain"]) and r["gain"] > 0
        if r["impl"] == "k1":
            assert r["gain"] == 1.0


def test_rerun_resumes_from_cells_and_publishes(run, args):
    out, path = run
    again = main([*args, "--out", str(out), "--publish"])
    assert again == path
    summary = json.loads((path / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["cells"]["computed_this_run"] == 0
    # --publish copies the run's summary files to <out>/throughput/, the committed copy.
    for name in PUBLISHED:
        assert (out / "throughput" / name).read_bytes() == (path / name).read_bytes(), name


# --------------------------------------------------------------------------- helpers


def test_parse_option():
    assert parse_option("k1") == ("k1", {})
    assert parse_option("k1+qmc+cv") == ("k1", {"qmc": True, "control_variate": True})
    assert parse_option("k3+antithetic") == ("k3", {"antithetic": True})
    with pytest.raises(ValueError, match="must start with one of"):
        parse_option("k2+qmc")
    with pytest.raises(ValueError, match="a flag is repeated"):
        parse_option("k1+qmc+qmc")
    with pytest.raises(ValueError, match="unknown flag 'fast'"):
        parse_option("k1+fast")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('sections=["analytic", "gpu"]', "unknown"),
        ('variance.options=["k3", "k1+qmc"]', "must include plain 'k1'"),
        ("analytic.categorical_elements=1000", "multiple of every categorical K"),
        ("knn.k=1000", r"must be in \[1, min\(knn.sizes\)\)"),
        ('retrace.eager=["nothing"]', "unknown"),
    ],
)
def test_invalid_config_is_rejected_before_compute(tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as err:
        main(["--config", str(QUICK), "--out", str(tmp_path), "--set", override])
    assert err.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "throughput").exists()


@pytest.mark.parametrize(
    "command",
    [["-m", "benchmarks.throughput"], ["experiments/throughput.py"]],
    ids=["module", "script"],
)
def test_both_entry_points_run_the_benchmark_command_line(command, tmp_path):
    # A refused config exercises the whole path to main() in a fresh process, in seconds:
    # the package importable from the repository root, the script's path set-up, the checks.
    out = subprocess.run(
        [sys.executable, *command, "--set", "sections=[]", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert re.search(r"^\s*sections: .*got \[\]", out.stderr, re.M), out.stderr
    assert not (tmp_path / "throughput").exists()


def test_compile_bound_counts_traces_and_shares_the_jit_cache():
    c = compile_bound(lambda x: jnp.sin(x) * 2.0, jnp.ones(8))
    assert c.traces == 1
    assert c.retraces() == 0
    assert c.traces == 1
    assert c.compile_s >= 0 and c.trace_s >= 0


def test_time_interleaved_gives_one_time_per_repeat():
    calls = {"a": lambda: jnp.ones(4) + 1.0, "b": lambda: [1.0]}
    out = time_interleaved(calls, Timing(repeats=3, warmup=1, min_time=0.0))
    assert set(out) == {"a", "b"}
    assert all(len(v) == 3 and all(t > 0 for t in v) for v in out.values())
    # Per repeat: the kernel's throughput over the ceiling's = ceiling time / kernel time.
    assert fraction_of([2.0, 4.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    assert best_of([1.0, 3.0], [2.0, 2.0]) == [1.0, 2.0]


@pytest.mark.slow  # a section left out of CI: see CI_SECTIONS
def test_versus_rows_compare_jaxkl_with_every_importable_peer(summary):
    rows = _section_rows(summary, "versus")
    status = summary["results"]["sections"]["versus"]["status"]
    assert status["optax"] != "not installed"  # optax is a dependency of jaxkl
    mine = [r for r in rows if r["impl"] == "jaxkl"]
    # The quick config leaves out the small-batch mc_kl rows (mc_cases = []): compiling
    # jaxkl's and four peers' Monte Carlo programs would add ~5 s to this test.
    assert {r["workload"] for r in mine} == {"mvn_diag", "categorical", "mvn_tril"}
    for r in mine:
        peers = [
            p
            for p in rows
            if p["workload"] == r["workload"]
            and (p["batch"], p["event"]) == (r["batch"], r["event"])
            and p["impl"] != "jaxkl"
        ]
        assert peers, r
        fastest = max(peers, key=lambda p: p["fraction"])
        assert r["fastest_peer"] == fastest["impl"]
        assert r["vs_fastest_peer"] == pytest.approx(r["fraction"] / fastest["fraction"])
        assert r["repeats"] >= 3
    cats = {p["impl"] for p in rows if p["workload"] == "categorical"}
    assert any(i.startswith("optax") for i in cats)


def test_publish_writes_the_readme_section(run, args, tmp_path):
    out, path = run
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- perf:begin -->\nold\n<!-- perf:end -->\nrest\n")
    main([*args, "--out", str(out), "--publish", "--readme", str(readme)])
    text = readme.read_text()
    section = (path / "README_SECTION.md").read_text().rstrip()
    assert text == f"intro\n<!-- perf:begin -->\n{section}\n<!-- perf:end -->\nrest\n"


def test_committed_readme_section_is_the_committed_run():
    # README's performance section must be the committed run's, word for word.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- perf:begin -->\n", 1)[1].split("\n<!-- perf:end -->", 1)[0]
    committed = (REPO / "results" / "throughput" / "README_SECTION.md").read_text(encoding="utf-8")
    assert section == committed.rstrip()
    # Every markdown file the two name lies in this repository: the project stands alone.
    cited = set(re.findall(r"[\w./-]*\w\.md\b", readme + committed))
    in_repo = {p.name for p in REPO.rglob("*.md") if ".venv" not in p.parts}
    assert {Path(c).name for c in cited} <= in_repo, sorted(cited)
