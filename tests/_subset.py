"""Run a representative subset of a parameter table in CI, the rest under ``--run-slow``.

The suite is compile-bound: every parametrisation compiles programs of its own. Sweeps
keep, in CI, a subset that covers each code path (each family or pair kind, each dtype,
each option); ``slow_except`` marks the other cases ``slow`` (see ``tests/conftest.py``),
so ``--run-slow`` still runs the whole table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest


def slow_except(
    values: Iterable, ids: Sequence[str], keep: Iterable[str], *, unpack: bool = False
) -> list:
    """``pytest.param`` for each value with its id, marked slow unless its id is in ``keep``.

    ``unpack``: each value is a tuple of the arguments of a multi-name parametrize.

    Every id in ``keep`` must name a case, so that a renamed case cannot silently drop
    out of CI.
    """
    values, ids, keep = list(values), list(ids), set(keep)
    if len(values) != len(ids):
        raise ValueError(f"{len(values)} values but {len(ids)} ids")
    missing = keep - set(ids)
    if missing:
        raise ValueError(f"ids to keep in CI name no case: {sorted(missing)}")
    return [
        pytest.param(*(v if unpack else (v,)), id=i, marks=() if i in keep else pytest.mark.slow)
        for v, i in zip(values, ids, strict=True)
    ]


def slow_except_grid(*axes: Iterable[str], keep: Iterable[tuple[str, ...]]) -> list:
    """:func:`slow_except` over the product of named axes (a multi-name parametrize):
    each case is a tuple of names with id ``"-".join(case)``; ``keep`` lists the tuples
    CI runs."""
    cases = list(itertools.product(*axes))
    ids = ["-".join(case) for case in cases]
    return slow_except(cases, ids, ["-".join(case) for case in keep], unpack=True)
