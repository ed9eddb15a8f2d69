"""The numba kernel of :mod:`models.effects_forest` (compiled on first use, cached on disk).

Each node's decision as LightGBM takes it (``Tree::Decision``), with the inputs already read as
LightGBM reads a dense matrix (within 1e-35 of zero: zero): ``flags`` bit 0 categorical, bit 1 the
default direction is left, bit 2 a NaN goes left, bit 3 zero is the missing value (it goes the
default way).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

BLOCK = 256  # rows walked through one tree before the next: the block's inputs stay in cache


@numba.njit(inline="always")
def _step(X, i, node, code, last, cats, feature, threshold, flags, left, right, cat_bounds, cat_bits):  # noqa: ANN001, ANN202, PLR0913
    """One node's decision for row ``i``: the next node (a leaf: < 0)."""
    f = feature[node]
    fval = code if f == last else np.float64(X[i, f])
    d = flags[node]
    if np.isnan(fval):
        go_left = (d & 4) != 0
    elif d & 1:  # categorical: negative values go right
        go_left = False
        if fval >= 0:
            v = np.int64(fval)
            c = np.int64(threshold[node])
            start = cat_bounds[cats + c]
            word = v // 32
            if word < cat_bounds[cats + c + 1] - start:
                go_left = ((cat_bits[start + word] >> np.uint32(v % 32)) & np.uint32(1)) != 0
    elif (d & 8) and fval == 0.0:
        go_left = (d & 2) != 0
    else:
        go_left = fval <= threshold[node]
    return left[node] if go_left else right[node]


@numba.njit(parallel=True, cache=True, nogil=True)
def _walk(
    X,
    masks,
    out,
    last,
    tree_class,
    tree_root,
    tree_cats,
    feature,
    threshold,
    flags,
    left,
    right,  # noqa: ANN001, ANN202, PLR0913
    leaf_value,
    cat_bounds,
    cat_bits,
    group_start,
    group_code,
    member_start,
    members,
):
    n = X.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    for b in numba.prange(blocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        rows = np.empty(BLOCK, dtype=np.int64)
        ends = np.empty(BLOCK, dtype=np.int64)
        for t in range(tree_root.shape[0]):
            k = tree_class[t]
            root = tree_root[t]
            cats = tree_cats[t]
            for g in range(group_start[t], group_start[t + 1]):
                code = group_code[g]
                gmask = np.uint64(0)
                for m in range(member_start[g], member_start[g + 1]):
                    gmask |= np.uint64(1) << np.uint64(members[m])
                count = 0
                for i in range(lo, hi):
                    if masks[i] & gmask:
                        rows[count] = i
                        count += 1
                q = 0
                while q + 1 < count:  # two rows at a time: their walks overlap in the CPU
                    a = root
                    c = root
                    ia = rows[q]
                    ic = rows[q + 1]
                    while a >= 0 and c >= 0:
                        a = _step(
                            X, ia, a, code, last, cats, feature, threshold, flags, left, right, cat_bounds, cat_bits
                        )
                        c = _step(
                            X, ic, c, code, last, cats, feature, threshold, flags, left, right, cat_bounds, cat_bits
                        )
                    while a >= 0:
                        a = _step(
                            X, ia, a, code, last, cats, feature, threshold, flags, left, right, cat_bounds, cat_bits
                        )
                    while c >= 0:
                        c = _step(
                            X, ic, c, code, last, cats, feature, threshold, flags, left, right, cat_bounds, cat_bits
                        )
                    ends[q] = a
                    ends[q + 1] = c
                    q += 2
                if q < count:
                    a = root
                    while a >= 0:
                        a = _step(
                            X,
                            rows[q],
                            a,
                            code,
                            last,
                            cats,
                            feature,
                            threshold,
                            flags,
                            left,
                            right,
                            cat_bounds,
                            cat_bits,
                        )
                    ends[q] = a
                for q in range(count):
                    i = rows[q]
                    value = leaf_value[-1 - ends[q]]
                    hit = masks[i] & gmask
                    m = member_start[g]
                    while hit:  # the group's codes this row wants (members ascending)
                        bit = np.uint64(1) << np.uint64(members[m])
                        if hit & bit:
                            out[i, members[m], k] += value
                            hit ^= bit
                        m += 1
    return out


def run(forest: Any, X: np.ndarray, masks: np.ndarray, out: np.ndarray, num_threads: int = 0) -> np.ndarray:
    """Add every tree's leaf to ``out`` (rows, codes, classes) for the codes of ``masks`` (rows, uint64)."""
    threads = numba.get_num_threads()
    if num_threads > 0:
        numba.set_num_threads(min(num_threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        return _walk(
            X,
            masks,
            out,
            int(forest.last),
            forest.tree_class,
            forest.tree_root,
            forest.tree_cats,
            forest.feature,
            forest.threshold,
            forest.flags,
            forest.left,
            forest.right,
            forest.leaf_value,
            forest.cat_bounds,
            forest.cat_bits,
            forest.group_start,
            forest.group_code,
            forest.member_start,
            forest.members,
        )
    finally:
        numba.set_num_threads(threads)
