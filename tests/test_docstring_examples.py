"""Every ``Example:`` in a jaxkl docstring runs and prints what it says it prints."""

import doctest
import importlib
import pkgutil

import pytest

import jaxkl
from jaxkl.analytic import registry
from tests._subset import slow_except

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(jaxkl.__path__, prefix="jaxkl.") if not m.ispkg
)
# The modules whose examples compile the most (3.7 to 7.8 s of CPU each in a full run,
# 33 s together, against under 3 s for every other module): their examples run under
# --run-slow. Their public calls are still run in CI by their modules' own tests, and
# mc_kl's by the README's blocks too (tests/test_readme.py).
HEAVY_EXAMPLES = (
    "jaxkl.estimators.psis",
    "jaxkl.estimators.monte_carlo",
    "jaxkl.fit.diagnostics",
    "jaxkl.fit.objectives",
    "jaxkl.rl.surrogate",
    "jaxkl.rl.toy",
)


def test_examples_are_found():
    # Guards the parametrisation below against silently collecting nothing.
    total = sum(
        len([t for t in doctest.DocTestFinder().find(importlib.import_module(name)) if t.examples])
        for name in MODULES
    )
    assert total >= 50, total


@pytest.fixture(autouse=True)
def _registry_restored():
    # register_kl's example registers a pair; the registry is global, so put it back or
    # later tests on this worker (the oracle-coverage and README-table tests) see it.
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    registry._dispatch.cache_clear()


def test_heavy_examples_name_modules():
    # A renamed module must not drop out of the list (and so into CI) unnoticed.
    assert set(HEAVY_EXAMPLES) <= set(MODULES)


@pytest.mark.parametrize(
    "name", slow_except(MODULES, MODULES, [m for m in MODULES if m not in HEAVY_EXAMPLES])
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
