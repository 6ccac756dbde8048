"""The benchmark's rows: what each section returns and ``metrics.csv`` holds.

A section's record is ``{"rows": [...], ...}``; a row is a flat dict that names its
section, workload and implementation, and carries whatever that section measured. The
CSV keeps ``COLUMNS``; ``summary.json`` keeps every field.
"""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "section",
    "workload",
    "impl",
    "batch",
    "event",
    "samples",
    "bytes_in",
    "count",
    "seconds",
    "throughput",
    "unit",
    "ceiling",
    "fraction",
    "trace_s",
    "compile_s",
    "traces",
    "retraces",
    "xla_fusions",
    "xla_temp_bytes",
    "note",
)


def new_row(section: str, workload: str, impl: str, **fields) -> dict[str, Any]:
    """A row of ``section``: its workload, implementation and measured fields."""
    row = {"section": section, "workload": workload, "impl": impl}
    row.update(fields)
    return row


def section_rows(records: dict[str, Any], section: str, workload: str | None = None) -> list[dict]:
    """The rows of ``section`` in ``records``, of one ``workload`` if given."""
    rows = records.get(section, {}).get("rows", [])
    return [r for r in rows if workload is None or r["workload"] == workload]


def largest(rows: list[dict], key: str = "bytes_in") -> dict | None:
    """The timed row with the largest ``key`` (ties: largest event), if any."""
    rows = [r for r in rows if r.get(key) is not None and r.get("fraction") is not None]
    return max(rows, key=lambda r: (r[key], r.get("event") or 0)) if rows else None
