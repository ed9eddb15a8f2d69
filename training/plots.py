"""The plots a training run logs: what drives the registered model and how it did out of time.

SHAP summary and dependence plots (LightGBM's ``pred_contrib``, or the baseline's linear
contributions when the baseline was registered), the calibration curve and the cumulative-gains
(lift) chart on the last rolling origin's validation rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.result import TrainingResult


def plots(result: TrainingResult, folder: Path) -> list[Path]:
    """SHAP summary and dependence plots of the registered model (on the holdout's rows), the
    out-of-time calibration curve and lift chart of model and baseline (PNG files in ``folder``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap
    from sklearn.calibration import calibration_curve

    paths = []
    sample = result.holdout[result.features].head(2000).astype(float)  # not a float64 copy of the whole holdout
    contributions = result.model.contributions(sample)
    values = contributions[result.features].to_numpy()
    shap.summary_plot(values, sample, show=False, max_display=20, rng=np.random.default_rng(0))  # jitter, reproducible
    paths.append(folder / "shap_summary.png")
    plt.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close("all")
    top = np.argsort(-np.abs(values).mean(axis=0))[:3]
    for index in top:
        name = result.features[index]
        shap.dependence_plot(index, values, sample, show=False, interaction_index=None)
        paths.append(folder / f"shap_dependence_{name}.png")
        plt.savefig(paths[-1], bbox_inches="tight", dpi=110)
        plt.close("all")
    fig, ax = plt.subplots(figsize=(5, 5))
    for column, label in (("p_model", "model"), ("p_baseline", "baseline")):
        observed, predicted = calibration_curve(
            result.holdout["label"], result.holdout[column], n_bins=10, strategy="quantile"
        )
        ax.plot(predicted, observed, marker="o", label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"{result.spec.name}: calibration")
    ax.legend()
    paths.append(folder / "calibration.png")
    fig.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in (("p_model", "model"), ("p_baseline", "baseline")):
        ordered = result.holdout.sort_values(column, ascending=False)["label"].to_numpy()
        gains = np.cumsum(ordered) / max(ordered.sum(), 1)
        ax.plot(np.arange(1, len(gains) + 1) / len(gains), gains, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(
        xlabel="share of cases worked, best first",
        ylabel="share of positives found",
        title=f"{result.spec.name}: cumulative gains (lift)",
    )
    ax.legend()
    paths.append(folder / "lift.png")
    fig.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close(fig)
    return paths
