"""Models: calibrated LightGBM classifiers with the scikit-learn API, the logistic baseline, metrics.

What each model predicts from which FeatureService lives in ``models.specs``.
"""
