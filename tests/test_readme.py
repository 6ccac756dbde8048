"""The README's promises: two commands first, CI runs the test command, code that runs."""

import re
from pathlib import Path

from jaxkl.analytic.table import update_readme

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_opens_with_exactly_two_commands():
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```(\w*)\n(.*?)```", text, re.S)
    assert first_block.start() < text.index("\n## ")  # before any section
    commands = [line.split("#")[0].strip() for line in first_block.group(2).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == "exec make test"
    assert all(line.startswith(("set ", "cd ")) for line in lines[:-1])


def test_make_targets_install_what_they_need():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.M), target
    assert "-m venv" in makefile and "pip install" in makefile


def test_python_blocks_run_in_order():
    namespace: dict = {}
    for block in _blocks("python"):
        exec(compile(block, str(README), "exec"), namespace)


def test_registered_pairs_table_is_current():
    assert update_readme(README, write=False), (
        "README's KL-pair table is stale: run python -m jaxkl.analytic.table --write README.md"
    )


def test_bias_variance_section_is_the_committed_runs():
    """README's bias–variance blocks and docs/ figures are generated from the committed
    default run, word for word (python -m jaxkl.study.readme_section --write)."""
    from jaxkl.study.readme_section import default_run, update

    run = default_run()
    assert (run / "summary.json").is_file(), f"no committed default run at {run}"
    stale = update(README, run, write=False)
    assert not stale, f"stale: {stale}; run: python -m jaxkl.study.readme_section --write"
