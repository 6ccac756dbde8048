"""The rows of a sharded sweep that this process's devices computed, kept where they are.

A study's first stage draws samples, its second turns them into estimates (see
:mod:`jaxkl.study.bias_variance`). Both stages split rows over devices the same way, so
the draws a device produced are exactly the rows it needs next: a process keeps its own
blocks on the host and feeds them back without any exchange between processes. Only the
second stage's (small) outputs are gathered.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["LocalRows"]


@dataclasses.dataclass(frozen=True, eq=False)
class LocalRows:
    """Rows of a ``[rows, ...]`` array, of which this process holds its devices' blocks.

    Not a pytree node (a leaf to ``jax.tree``), so a pytree of outputs maps to a pytree of
    ``LocalRows``.

    Attributes:
      rows: R, the number of real rows (padding rows past R may be held too).
      blocks: ``{first row: [chunk, ...] array}``, one entry per (round, local device).

    Example:
      >>> held = LocalRows(4, {0: np.zeros((2, 3)), 2: np.ones((2, 3))})
      >>> held.take(2, 4).tolist()
      [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    rows: int
    blocks: dict[int, np.ndarray]

    def take(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start … stop − 1``, which must be exactly one held block.

        Raises:
          ValueError: that block is not held here (another process computed it, or the
            rows were asked for with another chunk or device list than they were made with).
        """
        block = self.blocks.get(start)
        if block is None or block.shape[0] != stop - start:
            raise ValueError(
                f"rows {start}..{stop - 1} are not held by this process: pass map_rows the "
                "chunk and devices of the run_replicates(..., gather=False) that made them"
            )
        return block
