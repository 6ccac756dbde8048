"""Small matplotlib helpers shared by the experiments: headless figures, atomic PNGs.

Figures are built with the object-oriented API on an explicit Agg canvas, never through
``pyplot``: nothing here touches matplotlib's global backend or pyplot's figure registry,
so importing this module is harmless inside a notebook, rendering works on a machine
without a display, and figures cannot leak.

Example:
  >>> fig, ax = new_figure()
  >>> _ = ax.plot([0, 1], [0, 1])
  >>> png = figure_png(fig)
  >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
  True
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxkl.study.atomic import atomic_write_bytes

__all__ = ["figure_png", "new_figure", "save_figure"]


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] | None = None,
    **subplots_kw: Any,
) -> tuple[Figure, Any]:
    """A ``Figure`` on an Agg canvas with a grid of axes and constrained layout.

    Args:
      nrows, ncols: the axes grid.
      figsize: inches; default 4.5 × 3.5 per axes.
      **subplots_kw: passed to ``Figure.subplots`` (``sharex``, ``squeeze``, ...).

    Returns:
      ``(fig, axes)`` as from ``Figure.subplots`` (one ``Axes`` when 1 × 1).
    """
    if figsize is None:
        figsize = (4.5 * ncols, 3.5 * nrows)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **subplots_kw)
    return fig, axes


def figure_png(fig: Figure, *, dpi: int = 120) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Render ``fig`` to PNG and write it to ``path`` atomically.

    A figure that pyplot manages (made with ``plt.figure``/``plt.subplots``) is closed
    afterwards so that sweeps do not accumulate open figures; others need no closing.

    Returns:
      ``path`` as a ``Path``.
    """
    out = atomic_write_bytes(path, figure_png(fig, dpi=dpi))
    if getattr(fig.canvas, "manager", None) is not None:
        # Only pyplot attaches a manager, so pyplot is already imported here.
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out
