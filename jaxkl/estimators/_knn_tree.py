"""Host side of ``knn_kl``'s tree search: scipy's k-d tree, answering the brute force's rule.

For each query point (a row of x) and a reference set (x itself or y) the search returns
the two numbers the estimator needs, defined as in the brute force:

* z, the number of reference points at squared distance zero (the query itself excluded
  by index in the x–x search). "Zero" is what the device's float arithmetic gives: every
  squared coordinate difference, formed in the input dtype, below the dtype's smallest
  normal (XLA flushes subnormals to zero on CPU, so those count as copies there too);
* j, the index of the max(k − z, 1)-th nearest point at positive distance.

The tree returns the nearest points by float64 distance. A query whose nearest k (+ the
point itself) include no copy is answered by them directly: exactly what a plain
``cKDTree.query`` computes. Queries with copies — only where data have exact duplicates —
ask again for twice as many points until the copies and k positive distances are
covered; past ``_MAX_SINGLE`` points, a tree over the distinct points, each carrying its
multiplicity, answers them, so the work grows with the number of distinct points needed,
not with the copies.

Between points at exactly equal distance the tree may return any (the brute force takes
the lowest index), and where two distances agree to within float rounding the two may
rank them differently (the brute force ranks by its float sums of squares, the tree by
float64 distances): the distances returned, hence the estimate, agree to that rounding.

Everything here is numpy on the host; ``knn.py`` calls :func:`neighbours` through
``jax.pure_callback``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["neighbours"]

# Rows × candidates × d per gathered block: bounds the host's temporary memory.
_BLOCK_ELEMENTS = 1 << 22
# Queries of at least this many points run on all cores (scipy's workers=-1); below it
# starting the worker threads costs more than it saves.
_PARALLEL_ROWS = 1 << 13
# Candidates per query from the plain tree before a query among many copies of a point
# moves to the tree of distinct points (whose build sorts all points: worth it only then).
_MAX_SINGLE = 64
# Points per leaf: from d = 8 on, larger leaves (fewer node visits per query, more distances
# computed in scipy's inner loop) answer the same queries faster. Both searches of
# knn_kl's value (x–x for 2 points, x–y for 1), x ~ N(0, I), y ~ N(0.5, I), float32,
# median of 3, 2-core CPU, leaves of 16 → 64: d = 10, n = 10⁵ 9.3 → 7.6–7.9 s; d = 16,
# n = 10⁴ 1.27 → 0.83 s; 16 → 48: d = 8, n = 3·10⁴ 539 → 486 ms; d = 12, n = 3·10⁴
# 3.45 → 2.58 s. Below d = 8 the size made no difference beyond the ±10 % noise (n = 10⁵:
# at d = 1 leaves of 8, 16, 24, 32 and 48 took 90–119 ms; at d = 5 16, 20, 40 and 64
# took 359–402 ms).
_LARGE_LEAF_DIM = 8
_LEAF_SIZE_LOW_DIM = 16  # scipy's default
_LEAF_SIZE_HIGH_DIM = 64


def neighbours(x, y, k: int):
    """``(jx, zx, jy, zy)``: the selected neighbour and zero count of every row of x.

    x is ``[..., n, d]``, y ``[..., m, d]`` with the same leading (batch) shape; each
    output is ``[..., n]`` int32. jx, zx search x without the point itself, jy, zy search
    y. Problems with a non-finite coordinate get zeros (the caller turns them into NaN).
    """
    # A copy the host owns: the callback's arguments are device buffers.
    x, y = np.array(x), np.array(y)
    batch, n = x.shape[:-2], x.shape[-2]
    xs = x.reshape(-1, *x.shape[-2:])
    ys = y.reshape(-1, *y.shape[-2:])
    # Two searches per problem: x against itself (the point excluded), x against y. They
    # run one after the other; large queries use all cores inside scipy (Python threads
    # over the searches measured slower: small numpy steps contend for the GIL).
    results = [_search(a, a, k, True) for a in xs]
    results += [_search(a, b, k, False) for a, b in zip(xs, ys, strict=True)]
    out = np.asarray(results).reshape(2, len(xs), 2, n)  # [search, problem, (j, z), n]
    return tuple(out[s, :, f].reshape(*batch, n) for s in (0, 1) for f in (0, 1))


def _tree(points):
    from scipy.spatial import cKDTree  # lazily: only the tree path needs scipy

    # Sliding-midpoint splits (balanced_tree=False): scipy 1.17's median splits recursed
    # without end inside the XLA callback on inputs with many copies and ties (a stack
    # overflow: tests/estimators/test_knn.py's lattice and undefined-subsample tests).
    leafsize = _LEAF_SIZE_LOW_DIM if points.shape[1] < _LARGE_LEAF_DIM else _LEAF_SIZE_HIGH_DIM
    return cKDTree(points, leafsize=leafsize, balanced_tree=False)


def _search(q, ref, k: int, exclude_self: bool):
    """``(j, z)`` int32 ``[n]`` for queries q against ref (q itself when exclude_self)."""
    n = q.shape[0]
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(ref))):
        return np.zeros(n, np.int32), np.zeros(n, np.int32)
    single = _Points.singletons(ref, _tree(ref), exclude_self)
    first = k + int(exclude_self)
    j, z, copies = _answer(q, single, k, np.arange(n), first, first)
    if copies.size:
        # A few copies (e.g. float32 rounding of continuous data): more of the same tree.
        j[copies], z[copies], copies = _answer(q, single, k, copies, 2 * first, _MAX_SINGLE)
    if copies.size:
        # Many copies of a point: a tree over the distinct points, with multiplicities.
        distinct = _Points.distinct(ref, exclude_self)
        j[copies], z[copies], _ = _answer(q, distinct, k, copies, k + 2, None)
    return j.astype(np.int32), z.astype(np.int32)


class _Points:
    """A reference set as a tree sees it: points, each with a multiplicity.

    ``ids`` lists the original indices grouped by point (ascending within a group),
    ``starts[u]`` is where point u's group begins and ``counts[u]`` its size (None: all
    1); ``own[i]`` is the point holding query i in an x–x search (its count excludes i).
    """

    def __init__(self, points, tree, counts, starts, ids, own):
        self.points, self.tree, self.counts = points, tree, counts
        self.starts, self.ids, self.own = starts, ids, own
        self.size = points.shape[0]

    @classmethod
    def singletons(cls, ref, tree, exclude_self):
        ids = np.arange(ref.shape[0])
        return cls(ref, tree, None, ids, ids, ids if exclude_self else None)

    @classmethod
    def distinct(cls, ref, exclude_self):
        points, inverse, counts = np.unique(ref, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        ids = np.argsort(inverse, kind="stable")
        starts = np.cumsum(counts) - counts
        return cls(points, _tree(points), counts, starts, ids, inverse if exclude_self else None)


def _answer(q, pts: _Points, k: int, rows, count: int, limit: int | None):
    """``(j, z, unanswered)`` for the queries ``rows``: ask the tree for ``count`` points,
    then twice as many for the rows not yet answered, up to ``limit`` (None: all)."""
    j = np.zeros(rows.size, np.int64)
    z = np.zeros(rows.size, np.int64)
    todo = np.arange(rows.size)
    limit = pts.size if limit is None else min(limit, pts.size)
    count = min(count, limit)
    while todo.size:
        chunk = max(1, _BLOCK_ELEMENTS // (count * q.shape[1]))
        left = []
        for lo in range(0, todo.size, chunk):
            part = todo[lo : lo + chunk]
            jp, zp, done = _answer_block(q, pts, k, rows[part], count)
            j[part[done]], z[part[done]] = jp[done], zp[done]
            left.append(part[~done])
        todo = np.concatenate(left)
        if count >= limit:
            break
        count = min(2 * count, limit)
    return j, z, rows[todo]


def _answer_block(q, pts: _Points, k: int, rows, count: int):
    """One tree query of the ``count`` nearest points for ``rows``: ``(j, z, answered)``.

    The tree returns points by increasing distance, so copies (distance 0) come first: a
    query is answered once the points returned reach past its copies to its neighbour
    order. Points at exactly equal distance come in the tree's order.
    """
    qr = q[rows]
    workers = -1 if rows.size >= _PARALLEL_ROWS else 1
    _, cand = pts.tree.query(qr, count, workers=workers)
    cand = cand.reshape(rows.size, count)
    # A copy on the device: every squared difference below the smallest normal, i.e.
    # every |difference| (formed in the input dtype) below its square root, 2^(minexp/2).
    info = np.finfo(q.dtype)
    zero = np.all(np.abs(qr[:, None, :] - pts.points[cand]) < np.ldexp(1.0, info.minexp // 2), -1)
    mult = np.ones(cand.shape, np.int64) if pts.counts is None else pts.counts[cand]
    if pts.own is not None:
        mult = mult - (cand == pts.own[rows][:, None])
    zeros = np.sum(np.where(zero, mult, 0), axis=1)
    rank = np.maximum(k - zeros, 1)  # the neighbour order max(k, z + 1), among positives
    mult = np.where(zero, 0, mult)
    total = np.cumsum(mult, axis=1)
    reached = total >= rank[:, None]
    at = np.argmax(reached, axis=1)[:, None]  # where the rank-th positive falls
    point = np.take_along_axis(cand, at, 1)[:, 0]
    before = np.take_along_axis(total - mult, at, 1)[:, 0]
    # The (rank − before)-th copy of that point, by original index.
    j = pts.ids[np.minimum(pts.starts[point] + rank - before - 1, pts.ids.size - 1)]
    found = reached[:, -1]
    # Unfound with every point returned: the neighbour does not exist (j is then unused).
    return np.where(found, j, 0), zeros, found | (count == pts.size)
