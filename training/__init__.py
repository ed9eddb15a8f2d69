"""Training: labels, point-in-time training sets, fit, evaluation, MLflow logging and promotion.

Batch scoring of open cases with the champion models lives here too.
"""
