"""Every ``Example:`` in a jaxkl docstring runs and prints what it says it prints."""

import doctest
import importlib
import pkgutil

import pytest

import jaxkl
from jaxkl.analytic import registry

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(jaxkl.__path__, prefix="jaxkl.") if not m.ispkg
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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
