"""The logistic-regression baseline trained beside every gradient-boosted model.

A champion must beat it on the same time-ordered validation."""

from __future__ import annotations

from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def logistic_baseline(random_state: int = 0) -> Pipeline:
    """Median-imputed, standardised logistic regression (L2, balanced by nothing)."""
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=1000, C=1.0, random_state=random_state),
    )
