"""The package's import graph: layers point downwards only, and nothing forms a cycle.

Layers, bottom first: numerics (``jaxkl.special``) → helpers (``jaxkl._*``) →
distributions → convert → analytic and estimators → fit and rl → study. A module may
import its own layer or lower ones. Above the package sit ``benchmarks``, ``experiments``
and ``tests``: they import jaxkl, never the reverse; the benchmark package is layered the
same way inside.
"""

import ast
import pathlib
import subprocess
import sys

import jaxkl

ROOT = pathlib.Path(jaxkl.__file__).parent
REPO = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
LAYER = {
    "special": 0,
    "_checks": 1,
    "_keys": 1,
    "_random": 1,
    "_shapes": 1,
    "distributions": 2,
    "convert": 3,
    "analytic": 4,
    "estimators": 4,
    "fit": 5,
    "rl": 5,
    "study": 6,
}
# The throughput benchmark's layers, by the module or subpackage under benchmarks.throughput.
BENCHMARK_LAYER = {
    "harness": 0,
    "inputs": 0,
    "options": 0,
    "records": 0,
    "peer_libraries": 1,
    "sections": 2,
    "config": 3,
    "report": 3,
    "cli": 4,
    "__main__": 5,
}


def _module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path: pathlib.Path, package: str = "jaxkl") -> set[str]:
    """``package``'s modules imported anywhere in ``path`` (top level or in functions),
    named without the ``package.`` prefix."""
    prefix = f"{package}."
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith(prefix):
                out.add(node.module.removeprefix(prefix))
            elif node.module == package:
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix(prefix) for a in node.names if a.name.startswith(prefix)}
    return out


def _graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    return {
        _module_name(p, root): _imports(p, root.name)
        for p in root.rglob("*.py")
        if _module_name(p, root)  # the package's own __init__ re-exports every layer
    }


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_no_upward_import():
    upward = set()
    for src, targets in _graph().items():
        for dst in targets:
            a, b = LAYER.get(_top(src)), LAYER.get(_top(dst))
            assert a is not None and b is not None, f"unlayered module: {src} or {dst}"
            if b > a:
                upward.add((src, dst))
    assert not upward, sorted(upward)


def test_special_imports_only_itself():
    # The numerics layer depends on jax and numpy alone: anything of jaxkl's it imported
    # would sit below it, and that layer would then be the lowest.
    outside = {
        (src, dst)
        for src, targets in _graph().items()
        if _top(src) == "special"
        for dst in targets
        if _top(dst) != "special"
    }
    assert not outside, sorted(outside)


def test_no_cycle_between_packages():
    edges = {(_top(s), _top(d)) for s, ts in _graph().items() for d in ts if _top(s) != _top(d)}
    pairs = {(a, b) for a, b in edges if (b, a) in edges}
    assert not pairs, sorted(pairs)


def test_importing_jaxkl_loads_no_plotting_or_progress_bars():
    code = "import jaxkl, sys; print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _module_cycles(root: pathlib.Path) -> list[list[str]]:
    """Import cycles between the modules under ``root`` (subpackage re-exports aside)."""
    graph = _graph(root)

    def resolve(name: str) -> str | None:  # "study.results.RunDir" style names: longest match
        while name and name not in graph:
            name = name.rpartition(".")[0]
        return name or None

    edges = {s: {r for d in ts if (r := resolve(d)) and r != s} for s, ts in graph.items()}
    # A package's __init__ re-exports its submodules; only submodule ↔ submodule counts.
    packages = {m for m in graph if (root / m.replace(".", "/") / "__init__.py").exists()}
    edges = {s: ts - packages for s, ts in edges.items() if s not in packages}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_cycle_between_modules():
    cycles = _module_cycles(ROOT)
    assert not cycles, cycles


def test_jaxkl_imports_nothing_above_it():
    above = {"benchmarks", "experiments", "tests"}
    found = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found |= {(_module_name(path), n) for n in names if n.split(".")[0] in above}
    assert not found, sorted(found)


def test_benchmark_layers_point_downwards_without_cycles():
    def layer(module: str) -> int | None:  # "throughput.sections.knn" → sections' layer
        return BENCHMARK_LAYER.get(module.partition(".")[2].split(".")[0])

    graph = _graph(BENCHMARKS)
    assert "throughput.harness" in graph["throughput.sections.analytic"]
    upward = set()
    for src, targets in graph.items():
        if src == "throughput":  # the package's own __init__ re-exports every layer
            continue
        for dst in targets:
            a, b = layer(src), layer(dst)
            assert a is not None and b is not None, f"unlayered module: {src} or {dst}"
            if b > a:
                upward.add((src, dst))
    assert not upward, sorted(upward)
    cycles = _module_cycles(BENCHMARKS)
    assert not cycles, cycles
