"""Result folders for experiments: atomic files, run provenance, resumable per-cell storage.

Layout: ``<root>/<experiment>/<run-name>/`` holding ``config.toml`` (the resolved config),
``metrics.csv``, ``summary.json``, PNG figures, ``report.md`` and ``cells/<cell-id>.json``
(one file per finished unit of a sweep). Every file is written to a temporary file in the
same folder, flushed, fsync'ed and renamed over the target, so a reader or a crash never
sees half a file. The default run name is derived from the resolved config, so re-running
the same config resumes in the same folder and skips the cells already saved.

Example:
  >>> import tempfile
  >>> root = tempfile.mkdtemp()
  >>> run = RunDir.open(root, "demo", {"seed": 0, "n": 3})
  >>> run.name.startswith("demo-")
  True
  >>> rec = run.cells.get_or_compute("n=3", lambda: {"value": 1.5})
  >>> run.cells.has("n=3"), run.cells.load("n=3")
  (True, {'value': 1.5})
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxkl.study.atomic import atomic_write_bytes
from jaxkl.study.config import dumps_toml, flatten

__all__ = [
    "CellStore",
    "RunConflictError",
    "RunDir",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "cell_id",
    "derive_run_name",
    "environment_info",
    "git_revision",
    "to_jsonable",
]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (no newline translation)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any, where: str = "value") -> Any:
    """Convert numpy/JAX scalars and arrays, tuples and paths into plain JSON types.

    Floats stay floats (non-finite ones are written by ``json`` as ``Infinity``/``NaN``,
    which Python reads back exactly); arrays become nested lists.

    Raises:
      TypeError: naming the offending entry for anything else.
    """
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"{where}: cannot store {type(obj).__name__} as JSON")


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` (after ``to_jsonable``) as indented JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def atomic_write_csv(
    path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write a list of dicts as CSV, atomically.

    Args:
      path: target file.
      rows: one mapping per row.
      columns: column order; default: every key in order of first appearance. A row key
        not in ``columns`` raises ``ValueError``; a missing key is an empty cell.

    Returns:
      ``path`` as a ``Path``.
    """
    rows = [dict(r) for r in rows]
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for i, r in enumerate(rows):
        extra = set(r) - set(columns)
        if extra:
            raise ValueError(f"row {i} has keys not in columns: {sorted(extra)}")
        writer.writerow({k: _csv_cell(v) for k, v in r.items()})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return repr(v)  # shortest string that reads back to the same float
    return v


# --------------------------------------------------------------------------- provenance


def git_revision(path: str | Path | None = None) -> dict[str, Any]:
    """``{"sha": ..., "dirty": ...}`` of the git checkout holding ``path`` (default: jaxkl).

    Never raises: without git, outside a checkout or on a timeout both are ``None``.
    ``dirty`` is True when tracked files have uncommitted changes.
    """
    if path is None:
        path = Path(__file__).resolve().parent
    out: dict[str, Any] = {"sha": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(path), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip()

    sha = git("rev-parse", "HEAD")
    if sha:
        out["sha"] = sha
        status = git("status", "--porcelain", "--untracked-files=no")
        out["dirty"] = None if status is None else bool(status)
    return out


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """Versions, platform, git revision and JAX devices, for ``summary.json``.

    Never raises: anything that cannot be determined is ``None`` (or an empty list).
    """
    import jaxkl

    try:
        import jax

        devices = [
            {
                "id": d.id,
                "platform": d.platform,
                "device_kind": d.device_kind,
                "description": str(d),
                "process_index": d.process_index,  # > 0: a device of another process
            }
            for d in jax.devices()
        ]
        jax_version = jax.__version__
    except Exception:  # a broken accelerator setup must not lose the results
        devices, jax_version = [], None
    git = git_revision()
    return {
        "versions": {
            "python": platform.python_version(),
            "jaxkl": jaxkl.__version__,
            "jax": jax_version,
            "jaxlib": _dist_version("jaxlib"),
            "numpy": np.__version__,
            "matplotlib": _dist_version("matplotlib"),
            "chex": _dist_version("chex"),
            "optax": _dist_version("optax"),
        },
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "devices": devices,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "argv": list(sys.argv),
    }


# --------------------------------------------------------------------------- run folders


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    # The TOML round trip is what a resumed run compares against, so hash/compare that.
    return tomllib.loads(dumps_toml(config))


def derive_run_name(config: Mapping[str, Any], stem: str) -> str:
    """``<stem>-<8 hex digits>``: the digits hash the resolved config.

    The same config (however it was assembled: file, quick variant, ``--set``) gives the
    same name, so a re-run resumes; any changed value gives a fresh folder.
    """
    blob = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return f"{stem}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


class RunConflictError(ValueError):
    """The results folder holds a run made with a different config."""


_CELL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]{0,119}$")


def cell_id(**params: Any) -> str:
    """A file-safe cell id from parameters, e.g. ``cell_id(n=100, est="k1")`` → ``n=100,est=k1``.

    Floats use ``repr``; characters outside ``[A-Za-z0-9._=+-]`` become ``-``; if that
    changed anything, or the id is long, a short hash of the exact parameters is appended
    so distinct parameters never share a cell.
    """
    if not params:
        raise ValueError("cell_id needs at least one parameter")
    exact = ",".join(
        f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    safe = re.sub(r"[^A-Za-z0-9._=+,-]", "-", exact)
    if safe == exact and len(safe) <= 100 and safe[0].isalnum():
        return safe
    digest = hashlib.sha256(exact.encode()).hexdigest()[:10]
    prefix = safe[:80].lstrip("._=+,-")
    return f"{prefix}-{digest}" if prefix else digest


class CellStore:
    """Finished units of a sweep, one JSON file each under ``cells/``.

    A cell is written atomically when it completes, so an interrupted sweep resumes from
    the last finished cell.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.saved_this_run: list[str] = []

    def _path(self, cid: str) -> Path:
        if not isinstance(cid, str) or not _CELL_ID.match(cid):
            raise ValueError(
                f"invalid cell id {cid!r}: use 1-120 characters of [A-Za-z0-9._=+,-] "
                "starting with a letter or digit (jaxkl.study.cell_id builds one)"
            )
        return self.folder / f"{cid}.json"

    def has(self, cid: str) -> bool:
        """True if cell ``cid`` was saved (by this or an earlier run)."""
        return self._path(cid).is_file()

    def load(self, cid: str) -> Any:
        """The record saved for ``cid``; ``KeyError`` if there is none."""
        path = self._path(cid)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyError(f"no saved cell {cid!r} in {self.folder}") from None

    def save(self, cid: str, record: Any) -> None:
        """Save ``record`` (JSON-able after ``to_jsonable``) for ``cid``, atomically."""
        atomic_write_json(self._path(cid), record)
        self.saved_this_run.append(cid)

    def get_or_compute(self, cid: str, compute: Callable[[], Any]) -> Any:
        """Load cell ``cid`` if saved; else run ``compute()``, save and return its record.

        The returned record is always the one read back from disk, so a fresh run and a
        resumed run see identical (JSON round-tripped) values.
        """
        if not self.has(cid):
            self.save(cid, compute())
        return self.load(cid)

    def ids(self) -> list[str]:
        """Sorted ids of every saved cell."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if _CELL_ID.match(p.stem))


class RunDir:
    """One run's results folder ``<root>/<experiment>/<run-name>/``; create with ``open``.

    Attributes:
      path: the folder.
      name: the run name.
      experiment: the experiment name.
      config: the resolved config (as written to ``config.toml``).
      resumed: True if the folder already held this config (a re-run).
      cells: the ``CellStore`` under ``cells/``.
    """

    def __init__(self, path: Path, experiment: str, config: dict[str, Any], resumed: bool):
        self.path = path
        self.name = path.name
        self.experiment = experiment
        self.config = config
        self.resumed = resumed
        self.cells = CellStore(path / "cells")
        self._t0 = time.perf_counter()
        self._started = _dt.datetime.now(_dt.UTC)

    @classmethod
    def open(
        cls,
        root: str | Path,
        experiment: str,
        config: Mapping[str, Any],
        *,
        run_name: str | None = None,
        stem: str | None = None,
    ) -> RunDir:
        """Create or resume ``<root>/<experiment>/<run-name>/`` and write ``config.toml``.

        Args:
          root: results root (``--out``).
          experiment: experiment name.
          config: the resolved config.
          run_name: folder name; default ``derive_run_name(config, stem)``.
          stem: prefix of the derived name; default ``experiment`` (pass the config
            file's stem so quick variants are told apart at a glance).

        Raises:
          RunConflictError: the folder holds a ``config.toml`` that differs from
            ``config``; nothing is written.
        """
        config = _canonical(config)
        name = run_name or derive_run_name(config, stem or experiment)
        if name in (".", "..") or "/" in name or os.sep in name:
            raise ValueError(f"invalid run name {name!r}")
        path = Path(root) / experiment / name
        saved_path = path / "config.toml"
        resumed = saved_path.is_file()
        if resumed:
            _check_same_config(saved_path, config)
        else:
            atomic_write_text(saved_path, dumps_toml(config))
        return cls(path, experiment, config, resumed)

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the run folder."""
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.file(name), text)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def write_csv(
        self, name: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> Path:
        return atomic_write_csv(self.file(name), rows, columns)

    def write_metrics(
        self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> Path:
        """``metrics.csv`` from a list of dicts."""
        return self.write_csv("metrics.csv", rows, columns)

    def write_report(self, markdown: str) -> Path:
        """``report.md``."""
        return self.write_text("report.md", markdown)

    def write_figure(self, name: str, fig: Any, *, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG atomically (see ``jaxkl.study.plotting``)."""
        from jaxkl.study.plotting import save_figure

        return save_figure(fig, self.file(name), dpi=dpi)

    def write_summary(
        self, results: Mapping[str, Any] | None = None, *, seed: Any = None, **extra: Any
    ) -> Path:
        """``summary.json``: config, seed, results, versions, git sha, devices, wall time.

        Args:
          results: the headline numbers of the run.
          seed: default ``config["seed"]`` if present.
          **extra: more top-level entries.
        """
        now = _dt.datetime.now(_dt.UTC)
        summary: dict[str, Any] = {
            "experiment": self.experiment,
            "run_name": self.name,
            "seed": self.config.get("seed") if seed is None else seed,
            "config": self.config,
            "results": dict(results or {}),
            "resumed": self.resumed,
            "cells": {
                "total": len(self.cells.ids()),
                "computed_this_run": len(set(self.cells.saved_this_run)),
            },
            "started_at": self._started.isoformat(timespec="seconds"),
            "finished_at": now.isoformat(timespec="seconds"),
            "wall_time_s": time.perf_counter() - self._t0,
            **environment_info(),
            **extra,
        }
        return self.write_json("summary.json", summary)


def _check_same_config(saved_path: Path, config: dict[str, Any]) -> None:
    try:
        saved = tomllib.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise RunConflictError(
            f"{saved_path} cannot be read ({err}); choose another --run-name or --out"
        ) from None
    a, b = flatten(saved), flatten(config)
    diffs = [
        f"  {k}: saved {_show(a.get(k, '<absent>'))}, now {_show(b.get(k, '<absent>'))}"
        for k in sorted(set(a) | set(b))
        if not _same(a.get(k, "<absent>"), b.get(k, "<absent>"))
    ]
    if not diffs:
        return
    more = f"\n  ... and {len(diffs) - 10} more" if len(diffs) > 10 else ""
    raise RunConflictError(
        f"{saved_path.parent} holds a run with a different config; refusing to mix results.\n"
        + "\n".join(diffs[:10])
        + more
        + "\nUse another --run-name (or omit it: the default name follows the config), "
        "another --out, or delete that folder."
    )


def _same(x: Any, y: Any) -> bool:
    # NaN in a config is legitimate (e.g. an unset threshold); NaN == NaN for this purpose.
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return type(x) is type(y) and x == y


def _show(v: Any) -> str:
    return v if v == "<absent>" else repr(v)
