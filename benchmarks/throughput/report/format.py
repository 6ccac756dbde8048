"""How the report writes a value and a table (markdown)."""

from __future__ import annotations

import math
from typing import Any


def format_value(x, digits: int = 3) -> str:
    """``x`` as the report prints it: ``—`` for None, yes/no, 1,234, ``digits`` digits."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table, each cell through ``format_value``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def megabytes(x) -> float | None:
    """Bytes in MB (10⁶), ``None`` kept."""
    return None if x is None else x / 1e6
