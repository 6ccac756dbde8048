"""What every experiment's report is made of: value ± SE, markdown tables, z-score claims.

Each experiment writes its own prose; the pieces that recur — a number with its standard
error, a markdown table, "the estimate is within z_max standard errors of what theory
predicts" — are written once here, so every report formats them the same way.

Example:
  >>> pm(0.51234, 0.0213)
  '0.512 ± 0.021'
  >>> table = Table("n", "estimate")
  >>> table.row(100, pm(0.51234, 0.0213))
  >>> print("\\n".join(table.lines()))
  | n | estimate |
  |---|---|
  | 100 | 0.512 ± 0.021 |
  >>> Claim("k1 is unbiased", z=z_score(0.51, 0.02, 0.5)).holds
  True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Claim", "Table", "pm", "z_score"]


def pm(value: float, se: float, spec: str = ".3f", se_spec: str | None = None, *, unit="") -> str:
    """``value ± se`` with Python format specs; the SE takes ``spec`` unless ``se_spec`` is given.

    An exact −0.0 prints as 0 (a difference that is exactly zero has no sign worth showing).

    Args:
      value: the estimate.
      se: its standard error.
      spec: format spec of the value, e.g. ``".4f"``, ``".3g"``, ``".3e"``.
      se_spec: format spec of the SE (default ``spec``).
      unit: appended after the SE, e.g. ``" %"``.

    Example:
      >>> pm(1.23456e-4, 2.1e-6, ".3e", ".1e")
      '1.235e-04 ± 2.1e-06'
      >>> pm(100 * 0.01234, 100 * 0.0051, ".2g", unit=" %")
      '1.2 ± 0.51 %'
    """
    se_spec = spec if se_spec is None else se_spec
    return f"{value + 0.0:{spec}} ± {se:{se_spec}}{unit}"


class Table:
    """A markdown table built row by row; every cell is written with ``str``.

    Example:
      >>> t = Table("case", "KL")
      >>> t.row("close", "0.500")
      >>> t.lines()
      ['| case | KL |', '|---|---|', '| close | 0.500 |']
    """

    def __init__(self, *columns: str):
        if not columns:
            raise ValueError("a table needs at least one column")
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []

    def row(self, *cells: Any) -> None:
        """Append one row; it must have one cell per column."""
        if len(cells) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} cells, got {len(cells)}: {cells!r}")
        self.rows.append(tuple(str(c) for c in cells))

    def lines(self) -> list[str]:
        """The header, the separator and one line per row."""
        out = [_line(self.columns), "|" + "---|" * len(self.columns)]
        return out + [_line(r) for r in self.rows]


def _line(cells) -> str:
    # An empty cell is "| |", not "|  |": the form hand-written tables have.
    return "|" + "".join(f" {c} |" if c else " |" for c in cells)


def z_score(value, se, reference):
    """(value − reference)/se, elementwise; 0 where the error and the SE are both exactly 0.

    An estimate that is exact with a zero SE (every per-sample term identical, e.g. two
    equal distributions) agrees with its reference; that is not 0/0. A nonzero error with a
    zero SE gives ±inf.

    Args:
      value, se, reference: floats or arrays that broadcast.

    Returns:
      A float for scalar inputs, else a float64 array of the broadcast shape.

    Example:
      >>> z_score(0.53, 0.01, 0.5)
      3.0000000000000027
      >>> z_score([0.0, 1.0], [0.0, 0.5], 0.0).tolist()
      [0.0, 2.0]
    """
    diff = np.asarray(value, np.float64) - np.asarray(reference, np.float64)
    se = np.asarray(se, np.float64)
    exact = (diff == 0) & (se == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(exact, 0.0, diff / np.where(exact, 1.0, se))
    return float(z) if z.ndim == 0 else z


@dataclass(frozen=True)
class Claim:
    """A statement checked by z-scores: it holds when every |z| ≤ ``z_max``.

    Attributes:
      statement: what is claimed, in words.
      z: one z-score, or a mapping of named z-scores (e.g. per direction or per estimator).
      z_max: the largest |z| still counted as agreement (5 by default: at that level a
        false alarm among hundreds of claims is unlikely, a real bias rarely missed).

    Example:
      >>> c = Claim("k2's mean gradient is ∇KL(q‖p)", {"u_rev": 0.8, "u_perp": -1.9})
      >>> c.holds, c.max_abs_z
      (True, 1.9)
      >>> c.markdown()
      "- k2's mean gradient is ∇KL(q‖p): **True** (largest |z| = 1.90)."
    """

    statement: str
    z: float | Mapping[str, float]
    z_max: float = 5.0

    @property
    def max_abs_z(self) -> float:
        """The largest |z| (NaN counts as infinitely large: it cannot support a claim)."""
        values = self.z.values() if isinstance(self.z, Mapping) else [self.z]
        return max(math.inf if math.isnan(v) else abs(float(v)) for v in values)

    @property
    def holds(self) -> bool:
        return self.max_abs_z <= self.z_max

    def markdown(self) -> str:
        """One bullet: the statement, the verdict in bold and the largest |z|."""
        return f"- {self.statement}: **{self.holds}** (largest |z| = {self.max_abs_z:.2f})."

    def as_dict(self) -> dict[str, Any]:
        """For ``summary.json``: statement, verdict, z-scores and the threshold."""
        z = dict(self.z) if isinstance(self.z, Mapping) else self.z
        return {"statement": self.statement, "holds": self.holds, "z": z, "z_max": self.z_max}
