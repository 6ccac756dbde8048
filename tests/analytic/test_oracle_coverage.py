"""Every registered KL pair is checked against an independent oracle somewhere."""

import importlib
import pkgutil

import jaxkl
import tests.analytic as analytic_tests


def covered_pairs():
    covered = set()
    for mod in pkgutil.iter_modules(analytic_tests.__path__):
        if mod.name.startswith("test_"):
            module = importlib.import_module(f"tests.analytic.{mod.name}")
            covered |= set(getattr(module, "ORACLE_PAIRS", ()))
    return covered


def test_every_registered_pair_has_an_oracle_test():
    registered = {(a, b) for a, b, _ in jaxkl.registered_pairs()}
    missing = registered - covered_pairs()
    names = sorted(f"{a.__name__}‖{b.__name__}" for a, b in missing)
    assert not missing, f"registered pairs with no oracle test: {names}"


def test_oracle_lists_name_only_registered_pairs():
    registered = {(a, b) for a, b, _ in jaxkl.registered_pairs()}
    stale = covered_pairs() - registered
    assert not stale, sorted(f"{a.__name__}‖{b.__name__}" for a, b in stale)
