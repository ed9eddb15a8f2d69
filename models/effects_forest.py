"""A LightGBM booster compiled for one job: raw scores for every value of its last input at once.

The surrogate predicts its pooled outcome model P(o | a, x) once per case and action, and its value
model V(o, x) once per case and outcome class: the same rows again and again, only the last input
(the action's code; the outcome's) changing. Most trees never read that input, and a tree that does
sends many codes down the same branches: a tree splitting once on the action (calls against
letters, say) has two distinct answers per case, not fourteen. :func:`compile_forest` finds, per
tree, the groups of codes that reach the same leaf whatever the other inputs (each code followed
from the root: every branch at a split on another input, its own at a split on the last one); the
kernel (numba, rows in blocks, trees one after another so that a tree stays in cache while rows
stream past it) walks each tree once per case and group with a wanted code, and adds the leaf to
every wanted code of the group.

Exact: the same decisions as LightGBM's ``Tree::Decision`` (NaN and zero as missing, categorical
bitsets, values within 1e-35 of zero read as zero, as LightGBM reads a dense matrix), and the
leaves of each class added in the booster's tree order, so the raw scores equal
``Booster.predict(..., raw_score=True)`` with the last column set to each code, bit for bit
(tested). Used for batches (``models.effects_prepared.predict_prepared``); numba compiles the
kernel on first use (cached on disk).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from models.effects_trees import _parts

MAX_CODES = 64  # codes per forest: a row's wanted codes are one 64-bit mask
CATEGORICAL, DEFAULT_LEFT = 1, 2
MISSING_ZERO, MISSING_NAN = 1, 2
ZERO = 1e-35  # LightGBM's kZeroThreshold


@dataclass(frozen=True)
class Forest:
    """A booster's trees as flat arrays (one-leaf trees of value 0 left out), and per tree the
    groups of last-input codes that always share a leaf. Children < 0 are leaves: ``-1 - leaf``
    (indices into ``leaf_value``, global)."""

    classes: int  # raw scores per row and code (num_tree_per_iteration)
    codes: int
    last: int  # the input whose codes are grouped (the booster's last feature)
    tree_class: np.ndarray  # (trees,) class of each kept tree
    tree_root: np.ndarray  # (trees,) first node, or -1 - leaf for a one-leaf tree
    tree_cats: np.ndarray  # (trees,) offset of the tree's cat_boundaries in ``cat_bounds``
    feature: np.ndarray  # (nodes,) the nodes, every tree's one after another
    threshold: np.ndarray
    flags: np.ndarray  # (nodes,) int8, see models.effects_kernel
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    cat_bounds: np.ndarray
    cat_bits: np.ndarray
    group_start: np.ndarray  # (trees + 1,) each tree's groups: group_start[t] to group_start[t + 1]
    group_code: np.ndarray  # (groups,) the code a group is walked with
    member_start: np.ndarray  # (groups + 1,) each group's codes: members[member_start[g]:member_start[g + 1]]
    members: np.ndarray


def _fields(body: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def _goes_left(
    feature: np.ndarray,
    threshold: np.ndarray,
    decision: np.ndarray,
    cats: tuple[np.ndarray, np.ndarray],
    node: int,
    value: float,
) -> bool:
    """LightGBM's decision at ``node`` for a (non-missing) ``value``."""
    if decision[node] & CATEGORICAL:
        bounds, bits = cats
        k = int(threshold[node])
        word, start, end = int(value) // 32, int(bounds[k]), int(bounds[k + 1])
        return value >= 0 and word < end - start and bool((int(bits[start + word]) >> (int(value) % 32)) & 1)
    missing = (decision[node] >> 2) & 3
    if missing == MISSING_ZERO and abs(value) <= ZERO:
        return bool(decision[node] & DEFAULT_LEFT)
    return value <= threshold[node]


def _flags(threshold: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Per node the kernel's flags: categorical, default left, where a NaN goes (left?), zero is missing."""
    categorical = (decision & CATEGORICAL) != 0
    default_left = (decision & DEFAULT_LEFT) != 0
    missing = (decision >> 2) & 3
    # A NaN is missing where the missing type is NaN; otherwise it reads as 0 (the default way
    # where zero is missing, else 0 <= threshold); at a categorical split it goes right.
    nan_left = (
        np.where(
            missing == MISSING_NAN, default_left, np.where(missing == MISSING_ZERO, default_left, threshold >= 0.0)
        )
        & ~categorical
    )
    zero_missing = (missing == MISSING_ZERO) & ~categorical
    return (categorical * 1 + default_left * 2 + nan_left * 4 + zero_missing * 8).astype(np.int8)


def _groups(
    feature: np.ndarray,
    threshold: np.ndarray,
    decision: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    cats: tuple[np.ndarray, np.ndarray],
    last: int,
    codes: int,
) -> list[list[int]]:
    """One tree's codes grouped by the branches they take at the splits on ``last`` they can reach."""
    seen: dict[tuple[tuple[int, bool], ...], list[int]] = {}
    for code in range(codes):
        path, stack = [], [0]
        while stack:
            node = stack.pop()
            if feature[node] == last:
                go = _goes_left(feature, threshold, decision, cats, node, float(code))
                path.append((node, go))
                children = [left[node] if go else right[node]]
            else:
                children = [left[node], right[node]]
            stack.extend(int(c) for c in children if c >= 0)
        seen.setdefault(tuple(sorted(path)), []).append(code)
    return list(seen.values())


def compile_forest(boosters: list[lgb.Booster], codes: int) -> Forest:
    """The trees of ``boosters`` (same inputs and classes; taken tree index by tree index, the first
    with more than one leaf at each index: a booster split by ``effects_trees.split_on`` and its
    complement give back the original order) grouped over ``codes`` values of the last input."""
    if codes > MAX_CODES:
        raise ValueError(f"at most {MAX_CODES} codes, got {codes}")
    parts = [_parts(b) for b in boosters]
    classes = int(re.search(r"^num_tree_per_iteration=(\d+)", parts[0][0], re.MULTILINE).group(1))  # type: ignore[union-attr]
    last = boosters[0].num_feature() - 1
    arrays: dict[str, list[Any]] = {
        k: []
        for k in (
            "feature",
            "threshold",
            "decision",
            "left",
            "right",
            "leaf_value",
            "cat_bounds",
            "cat_bits",
            "tree_class",
            "tree_root",
            "tree_cats",
            "group_code",
            "members",
            "flags",
        )
    }
    group_start, member_start = [0], [0]
    for index in range(len(parts[0][1])):
        fields = [_fields(p[1][index]) for p in parts]
        chosen = max(fields, key=lambda f: (int(f["num_leaves"]) > 1, f["leaf_value"].strip() not in ("0", "0.0")))
        leaves = [float(v) for v in chosen["leaf_value"].split()]
        if len(leaves) == 1 and leaves[0] == 0.0:
            continue  # adds nothing
        leaf0, node0 = len(arrays["leaf_value"]), len(arrays["feature"])
        arrays["leaf_value"].extend(leaves)
        arrays["tree_class"].append(index % classes)
        arrays["tree_cats"].append(len(arrays["cat_bounds"]))
        if len(leaves) == 1:
            arrays["tree_root"].append(-1 - leaf0)
            arrays["group_code"].append(0)
            arrays["members"].extend(range(codes))
            member_start.append(len(arrays["members"]))
            group_start.append(len(arrays["group_code"]))
            continue
        feature = np.array(chosen["split_feature"].split(), dtype=np.int32)
        threshold = np.array(chosen["threshold"].split(), dtype=np.float64)
        decision = np.array(chosen["decision_type"].split(), dtype=np.int8)
        left = np.array(chosen["left_child"].split(), dtype=np.int32)
        right = np.array(chosen["right_child"].split(), dtype=np.int32)
        bounds = np.array(chosen.get("cat_boundaries", "0").split(), dtype=np.int64)
        bits = np.array(chosen.get("cat_threshold", "").split(), dtype=np.uint32)
        for code_group in _groups(feature, threshold, decision, left, right, (bounds, bits), last, codes):
            arrays["group_code"].append(code_group[0])
            arrays["members"].extend(code_group)
            member_start.append(len(arrays["members"]))
        group_start.append(len(arrays["group_code"]))
        arrays["tree_root"].append(node0)
        arrays["cat_bounds"].extend((bounds + len(arrays["cat_bits"])).tolist())
        arrays["cat_bits"].extend(bits.tolist())
        arrays["feature"].extend(feature.tolist())
        arrays["threshold"].extend(threshold.tolist())
        arrays["decision"].extend(decision.tolist())
        arrays["flags"].extend(_flags(threshold, decision).tolist())
        for side in ("left", "right"):
            child = left if side == "left" else right
            arrays[side].extend(np.where(child >= 0, child + node0, child - leaf0).tolist())  # ~leaf: -1 - leaf
    types = {
        "feature": np.int32,
        "threshold": np.float64,
        "decision": np.int8,
        "left": np.int32,
        "right": np.int32,
        "leaf_value": np.float64,
        "cat_bounds": np.int64,
        "cat_bits": np.uint32,
        "tree_class": np.int32,
        "tree_root": np.int64,
        "tree_cats": np.int64,
        "group_code": np.float64,
        "members": np.int64,
        "flags": np.int8,
    }
    out = {
        k: np.asarray(arrays[k] or [0], dtype=t)
        if k in ("cat_bounds", "cat_bits", "feature", "threshold", "decision", "left", "right", "flags")
        else np.asarray(arrays[k], dtype=t)
        for k, t in types.items()
    }
    del out["decision"]
    return Forest(
        classes=classes,
        codes=codes,
        last=last,
        group_start=np.asarray(group_start, dtype=np.int64),
        member_start=np.asarray(member_start, dtype=np.int64),
        **out,
    )


_CACHE: weakref.WeakKeyDictionary[lgb.Booster, Forest] = weakref.WeakKeyDictionary()


def forest_of(boosters: list[lgb.Booster], codes: int) -> Forest:
    """:func:`compile_forest`, once per first booster (kept while it lives)."""
    found = _CACHE.get(boosters[0])
    if found is None or found.codes != codes:
        found = _CACHE[boosters[0]] = compile_forest(boosters, codes)
    return found


def raw_scores(forest: Forest, X: np.ndarray, wanted: np.ndarray, num_threads: int = 0) -> np.ndarray:
    """(rows, codes, classes) raw scores of ``X`` (rows x the inputs before the last, float32) with
    the last input set to each code; only where ``wanted`` (rows x codes, bool) is true (0 elsewhere)."""
    from models import effects_kernel

    X = np.asarray(X, dtype=np.float32)
    X = np.ascontiguousarray(np.where(np.abs(X) <= ZERO, np.float32(0.0), X))  # as LightGBM reads it
    weights = np.left_shift(np.uint64(1), np.arange(forest.codes, dtype=np.uint64))
    masks = (np.asarray(wanted, dtype=np.uint64)[:, : forest.codes] * weights).sum(axis=1, dtype=np.uint64)
    out = np.zeros((len(X), forest.codes, forest.classes))
    return effects_kernel.run(forest, X, masks, out, num_threads)
