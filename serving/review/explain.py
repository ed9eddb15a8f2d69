"""One case's explanation as a waterfall: from the model's starting point, each feature's push
on the raw score (log-odds, before calibration), to the raw score and the calibrated probability.

Contributions are the model's own: LightGBM's ``pred_contrib`` (SHAP values) for the gradient-
boosted models, coefficient x standardised value for the logistic baseline
(``contributions(X)`` on both, with ``bias``). The largest pushes are shown one by one, the rest
summed in one bar; the bars' geometry is computed here so the template only draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.review.words import feature_name, text

SHOWN = 10  # features shown one by one; the rest are summed
WIDTH = 500.0  # px of the bar area in the SVG


@dataclass(frozen=True)
class Step:
    """One bar: ``label`` moved the running score from ``start`` to ``start + push``."""

    label: str
    value: str  # the feature's value as shown, '' for the summary bars
    push: float  # log-odds
    start: float
    x: float  # px
    width: float  # px
    kind: str  # up, down, total
    feature: str = ""  # the model's own name of the feature ('' for the summary bars)


@dataclass(frozen=True)
class Waterfall:
    """A model's explanation of one case."""

    model: str
    version: str
    bias: float
    raw_score: float  # log-odds
    raw_probability: float
    probability: float  # calibrated (equals raw for a model without calibration)
    calibrated: bool
    steps: tuple[Step, ...]
    zero_x: float  # px of log-odds 0


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    number = float(value)
    if number.is_integer() and abs(number) < 1e12:
        return f"{int(number):,}"
    return f"{number:,.2f}" if abs(number) >= 1 else f"{number:.3f}"


def waterfall(
    model_name: str, version: str, model: Any, features: pd.DataFrame, lang: str = "zh", shown: int = SHOWN
) -> Waterfall:
    """The waterfall of ``model`` (a fitted ``CalibratedOdds`` or ``LogisticOdds``) on the one row
    of ``features`` (which holds at least the model's columns; missing ones count as unknown)."""
    columns = [str(c) for c in model.feature_names_in_]
    row = features.reindex(columns=columns).iloc[[0]].astype(np.float64)
    contributions = model.contributions(row).iloc[0]
    bias = float(contributions["bias"])
    pushes = contributions.drop(labels="bias").astype(float)
    order = pushes.abs().sort_values(ascending=False, kind="stable").index
    top, rest = list(order[:shown]), list(order[shown:])
    items: list[tuple[str, str, float, str]] = [
        (feature_name(name, lang), _shown(row.iloc[0][name]), float(pushes[name]), name) for name in top
    ]
    if rest:
        items.append((text("others", lang) + f" ({len(rest)})", "", float(pushes[rest].sum()), ""))
    raw = bias + float(pushes.sum())
    probability = float(model.predict_proba(row)[0, 1])
    running, points = bias, [0.0, bias]
    for _, _, push, _ in items:
        running += push
        points.append(running)
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span

    def x_of(v: float) -> float:
        return round((v - low) / (high - low) * WIDTH, 1)

    steps = [Step(text("start", lang), "", bias, 0.0, min(x_of(0.0), x_of(bias)), abs(x_of(bias) - x_of(0.0)), "total")]
    running = bias
    for label, value, push, name in items:
        a, b = x_of(running), x_of(running + push)
        steps.append(
            Step(label, value, push, running, min(a, b), max(abs(b - a), 1.0), "up" if push >= 0 else "down", name)
        )
        running += push
    steps.append(
        Step(text("raw_score", lang), "", raw, 0.0, min(x_of(0.0), x_of(raw)), abs(x_of(raw) - x_of(0.0)), "total")
    )
    return Waterfall(
        model=model_name,
        version=version,
        bias=bias,
        raw_score=raw,
        raw_probability=float(1.0 / (1.0 + math.exp(-raw))),
        probability=probability,
        calibrated=getattr(model, "calibrator_", None) is not None,
        steps=tuple(steps),
        zero_x=x_of(0.0),
    )
