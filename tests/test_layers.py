"""The package's import graph: layers point downwards only, and nothing forms a cycle.

Layers, bottom first: numerics (``jaxkl.special``) → helpers (``jaxkl._*``) →
distributions → convert → analytic and estimators → fit and rl → study. A module may
import its own layer or lower ones.
"""

import ast
import pathlib
import subprocess
import sys

import jaxkl

ROOT = pathlib.Path(jaxkl.__file__).parent
LAYER = {
    "special": 0,
    "_checks": 1,
    "_keys": 1,
    "_shapes": 1,
    "distributions": 2,
    "convert": 3,
    "analytic": 4,
    "estimators": 4,
    "fit": 5,
    "rl": 5,
    "study": 6,
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path: pathlib.Path) -> set[str]:
    """jaxkl-internal modules imported anywhere in ``path`` (top level or in functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("jaxkl."):
                out.add(node.module.removeprefix("jaxkl."))
            elif node.module == "jaxkl":
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {
                a.name.removeprefix("jaxkl.") for a in node.names if a.name.startswith("jaxkl.")
            }
    return out


def _graph() -> dict[str, set[str]]:
    return {
        _module_name(p): _imports(p)
        for p in ROOT.rglob("*.py")
        if _module_name(p)  # the package's own __init__ re-exports every layer
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


def test_no_cycle_between_modules():
    graph = _graph()

    def resolve(name: str) -> str | None:  # "study.results.RunDir" style names: longest match
        while name and name not in graph:
            name = name.rpartition(".")[0]
        return name or None

    edges = {s: {r for d in ts if (r := resolve(d)) and r != s} for s, ts in graph.items()}
    # A package's __init__ re-exports its submodules; only submodule ↔ submodule counts.
    packages = {m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").exists()}
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
    assert not cycles, cycles
