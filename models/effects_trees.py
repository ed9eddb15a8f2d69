"""Tree-level surgery on LightGBM boosters, for cheaper surrogate predictions (``models.effects_prepared``).

- :func:`split_on`: a booster as two whose raw scores add up to its own: the trees that never
  read one input (the action of the pooled outcome model, the outcome of the value model) and
  the trees that do. The first part is the same for every value of that input, so it is
  predicted once per case instead of once per action (or per outcome class).
- :func:`merged`: one booster whose raw score is the mean of several boosters' (their trees one
  after another, every leaf value divided by their number): a bag of refits predicted in one call.

Both edit LightGBM's text model format: a tree left out is replaced by a one-leaf tree of value 0,
so that a multiclass model keeps its class of each tree (tree i belongs to class i mod classes).
"""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np

_TREE = re.compile(r"^Tree=\d+\n", re.MULTILINE)
_END = "end of trees"
_EMPTY = (
    "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\n"
    "right_child=\nleaf_value=0\nleaf_weight=0\nleaf_count=0\ninternal_value=\ninternal_weight=\n"
    "internal_count=\nis_linear=0\nshrinkage=1\n"
)


def _parts(booster: lgb.Booster) -> tuple[str, list[str], str]:
    """The model text's header (without ``tree_sizes``), its trees' bodies and what follows them."""
    text = booster.model_to_string()
    end = text.index(_END)
    starts = [m for m in _TREE.finditer(text, 0, end)]
    header = re.sub(r"^tree_sizes=.*\n", "", text[: starts[0].start()] if starts else text[:end], flags=re.MULTILINE)
    bodies = [
        text[m.end() : (starts[i + 1].start() if i + 1 < len(starts) else end)].strip("\n") + "\n"
        for i, m in enumerate(starts)
    ]
    return header, bodies, text[end:]


def _model(header: str, bodies: list[str], tail: str) -> lgb.Booster:
    trees = "".join(f"Tree={i}\n{body}\n\n" for i, body in enumerate(bodies))
    return lgb.Booster(model_str=f"{header}{trees}{tail}")


def _reads(body: str, feature: int) -> bool:
    line = re.search(r"^split_feature=(.*)$", body, re.MULTILINE)
    return line is not None and str(feature) in line.group(1).split()


def split_on(booster: lgb.Booster, feature: int) -> tuple[lgb.Booster, lgb.Booster, float]:
    """(trees that never read ``feature``, trees that do, the share of trees that do); the two
    boosters' raw scores add up to ``booster``'s."""
    header, bodies, tail = _parts(booster)
    reads = [_reads(body, feature) for body in bodies]
    shared = [_EMPTY if r else body for body, r in zip(bodies, reads, strict=True)]
    specific = [body if r else _EMPTY for body, r in zip(bodies, reads, strict=True)]
    return _model(header, shared, tail), _model(header, specific, tail), float(np.mean(reads)) if reads else 0.0


def _scaled(body: str, factor: float) -> str:
    def scale(match: re.Match[str]) -> str:
        values = " ".join(repr(float(v) * factor) for v in match.group(2).split())
        return f"{match.group(1)}{values}"

    return re.sub(r"^(leaf_value=|internal_value=)(.*)$", scale, body, flags=re.MULTILINE)


def merged(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw score is the mean of ``boosters``' raw scores (same inputs and classes)."""
    parts = [_parts(b) for b in boosters]
    factor = 1.0 / len(boosters)
    bodies = [_scaled(body, factor) for _, trees, _ in parts for body in trees]
    return _model(parts[0][0], bodies, parts[0][2])
