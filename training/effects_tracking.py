"""The action-effect model in MLflow: its run, its registration as ``challenger``, and promotion by
off-policy value.

A run logs the candidates' out-of-time values (DR, IPS, SNIPS with intervals, effective sample
size, weighted log-loss), the chosen method, the overlap diagnostics of the logging policy's
propensities (``overlap.csv``, and per action ``overlap.<action>.*`` metrics), the holdout, the
model fitted before the holdout (``evaluation_model``) and the registered model (with its
propensity model inside). Promotion (:func:`promote_effects`): the challenger becomes champion
only if its greedy policy's switch doubly robust value on the challenger's holdout is higher than
the champion's on the same decisions (same propensities, same outcome model: the challenger's
evaluation model). Switch-DR (:func:`training.ope.switch_to_logging`, ``PROMOTION_TAU``): where a
policy's weight on an action would pass 20 (an action the logging policy gave less than 5 %
there), that choice is valued as the logging policy's, so neither side is credited for actions
the logs cannot check; the plain DR is reported beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from training import registry
from training.effects import SUPPORT_FLOOR, EffectsResult
from training.ope import dr_difference, greedy, off_policy, switch_to_logging
from training.tracking import sklearn_model_options

MODEL = "action_effects"
PROMOTION_TAU = 20.0  # switch-DR: a weight above this is switched to the logging policy (see the module doc)


def _log_model(estimator: Any, name: str, registered: str | None = None) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.log_model(
        estimator, name=name, registered_model_name=registered, **sklearn_model_options(estimator)
    )


def report_markdown(result: EffectsResult, extra: dict[str, Any]) -> str:
    """The run's report for a person."""
    value = result.policy_value
    supported = ", ".join(result.model.supported_)
    fallback = [f"- {name}: {why}" for name, why in result.model.fallback_.items() if why]
    return "\n".join(
        [
            "# action_effects: P(settled within 90 days | action now)",
            "",
            f"- decisions: {result.rows:,} from {result.time_range[0]:%Y-%m-%d} to {result.time_range[1]:%Y-%m-%d}; "
            f"holdout from {result.holdout_from:%Y-%m-%d} ({len(result.holdout):,} decisions)",
            f"- method chosen by the holdout's doubly robust policy value: {result.chosen}",
            f"- its greedy policy on the holdout: DR {value.dr.value:.4f} [{value.dr.low:.4f}, {value.dr.high:.4f}], "
            f"SNIPS {value.snips.value:.4f}, effective sample size {value.ess:,.0f}; the logging policy achieved "
            f"{result.logging_value:.4f}",
            f"- estimated actions: {supported}",
            "- actions left to the prior:",
            *(fallback or ["- none"]),
            *[f"- {k}: {v}" for k, v in extra.items()],
            "",
            "## Candidates",
            "",
            result.candidates.round(4).to_markdown(index=False),
            "",
            "## Overlap of the logging policy",
            "",
            result.overlap.round(4).to_markdown(index=False),
        ]
    )


def log_effects(settings: Settings, engine: Engine, result: EffectsResult, extra: dict[str, Any]) -> str:
    """Log the run, register the model as ``challenger``; returns its version."""
    import mlflow

    from training.tracking import _git_commit

    client = registry.configure(settings)
    with mlflow.start_run(run_name=f"{MODEL}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags(
            {
                "model": MODEL,
                "label": "settlement",
                "method": result.chosen,
                "git_commit": _git_commit(),
                "train_rows": str(result.rows),
                "train_from": str(result.time_range[0]),
                "train_to": str(result.time_range[1]),
                "holdout_from": str(result.holdout_from),
                "holdout_rows": str(len(result.holdout)),
                **{k: str(v) for k, v in extra.items()},
            }
        )
        model = result.model
        mlflow.log_params(
            {
                "method": result.chosen,
                "support_floor": SUPPORT_FLOOR,
                "weight_clip": model.weight_clip,
                "min_decisions": model.min_decisions,
                "min_choice_share": model.min_choice_share,
                "members": model.members,
                "trees": json.dumps(model.trees_),
                **{k: str(v) for k, v in result.extra.items()},
            }
        )
        for row in result.candidates.to_dict(orient="records"):
            mlflow.log_metrics({f"{row['method']}.{k}": float(v) for k, v in row.items() if k != "method" and v == v})
        mlflow.log_metrics(
            {
                "policy.dr": result.policy_value.dr.value,
                "policy.ess": result.policy_value.ess,
                "logging.settled": result.logging_value,
                "supported_actions": len(model.supported_),
            }
        )
        for row in result.overlap.to_dict(orient="records"):
            mlflow.log_metrics(
                {
                    f"overlap.{row['action']}.{k}": float(row[k])
                    for k in ("decisions", "propensity_p05", "support_share", "ess", "recorded_share")
                }
            )
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            documents = {
                "report.md": report_markdown(result, extra),
                "overlap.csv": result.overlap.to_csv(index=False),
                "candidates.csv": result.candidates.to_csv(index=False),
                "effects.json": json.dumps(
                    {
                        "features": result.features,
                        "method": result.chosen,
                        "supported": list(model.supported_),
                        "fallback": model.fallback_,
                        "counts": model.counts_,
                    },
                    indent=2,
                ),
            }
            for name, text in documents.items():
                (folder / name).write_text(text, encoding="utf-8")
                mlflow.log_artifact(str(folder / name))
            result.holdout.to_parquet(folder / "holdout.parquet")
            mlflow.log_artifact(str(folder / "holdout.parquet"), artifact_path="holdout")
        _log_model(result.evaluation_model, "evaluation_model")
        info = _log_model(model, "model", registry.registered_name(MODEL))
        version = str(info.registered_model_version)
        registry.set_alias(client, engine, MODEL, registry.CHALLENGER, version, f"trained in run {run.info.run_id}")
    return version


def compare_on_holdout(
    challenger: Any, champion: Any, holdout: pd.DataFrame, tau: float = PROMOTION_TAU
) -> dict[str, Any]:
    """Both models' greedy policies on the challenger's holdout (settlement rate): per side, IPS,
    SNIPS and DR of the policy as it is (``plain``) and of the policy switched to the logging
    policy where its weight would pass ``tau`` (the side's figures: its ``dr`` is switch-DR); the
    paired switch-DR difference (``difference``) and the plain one (``difference_plain``)."""
    features = list(challenger.feature_names_in_)
    missing = [f for f in champion.feature_names_in_ if f not in holdout.columns]
    if missing:
        raise ValueError(f"the holdout lacks features the champion needs: {', '.join(missing[:5])}")
    propensity = challenger.propensity_
    actions = tuple(propensity.actions_)
    x_new = holdout[features].to_numpy(np.float32)
    x_old = holdout[list(champion.feature_names_in_)].to_numpy(np.float32)
    support = propensity.of(x_new, actions) >= SUPPORT_FLOOR
    logged = np.searchsorted(np.asarray(actions, dtype=object), holdout["action"].astype(str).to_numpy(object))
    support[np.arange(len(holdout)), logged] = True
    mu, reward = holdout["mu"].to_numpy(float), holdout["label"].to_numpy(float)
    q = challenger.predict_actions(x_new, actions)
    policies = {}
    for side, model, x in (("challenger", challenger, x_new), ("champion", champion, x_old)):
        values = model.predict_actions(x, actions)
        pi = greedy(values, support & np.isfinite(values))
        none = pi.sum(axis=1) == 0
        pi[none] = propensity.of(x_new[none], actions)
        policies[side] = pi
    rows = np.arange(len(holdout))
    logging = propensity.of(x_new, actions)
    logging[rows, logged] = mu  # the recorded propensity where there is one
    switched = {side: switch_to_logging(pi, logging, tau) for side, pi in policies.items()}
    figures: dict[str, Any] = {
        side: {
            **off_policy(switched[side], logged, mu, reward, q).as_dict(),
            "plain": off_policy(pi, logged, mu, reward, q).as_dict(),
            "switched_share": float(np.abs(switched[side] - pi).sum() / 2 / len(pi)),
        }
        for side, pi in policies.items()
    }
    difference = dr_difference(switched["challenger"], switched["champion"], logged, mu, reward, q)
    plain = dr_difference(policies["challenger"], policies["champion"], logged, mu, reward, q)
    return {
        **figures,
        "tau": tau,
        "difference": {"dr": difference.value, "low": difference.low, "high": difference.high},
        "difference_plain": {"dr": plain.value, "low": plain.low, "high": plain.high},
    }


def promote_effects(settings: Settings, engine: Engine) -> registry.Decision:
    """Make the challenger champion if its policy's switch-DR value beats the champion's (see the module doc)."""
    client = registry.configure(settings)
    challenger = registry.version_by_alias(client, MODEL, registry.CHALLENGER)
    champion = registry.version_by_alias(client, MODEL, registry.CHAMPION)
    name = registry.registered_name(MODEL)
    if challenger is None:
        return registry.Decision(
            False, f"{name} has no challenger to promote", champion and str(champion.version), None
        )
    if champion is not None and str(champion.version) == str(challenger.version):
        return registry.Decision(
            False, "the challenger already is the champion", str(champion.version), str(challenger.version)
        )
    if champion is None:
        registry.set_alias(client, engine, MODEL, registry.CHAMPION, str(challenger.version), "first champion")
        client.delete_registered_model_alias(name, registry.CHALLENGER)
        registry.record_alias_change(
            engine, MODEL, registry.CHALLENGER, None, str(challenger.version), "promoted to champion"
        )
        return registry.Decision(
            True, "no champion yet: the challenger becomes champion", None, str(challenger.version)
        )
    holdout = registry.holdout_of(client, challenger)
    new = registry.evaluation_estimator(client, MODEL, challenger)
    new.propensity_ = registry.load_version(MODEL, str(challenger.version)).propensity_
    figures = compare_on_holdout(new, registry.evaluation_estimator(client, MODEL, champion), holdout)
    ahead = figures["challenger"]["dr"] > figures["champion"]["dr"]
    shown = {
        side: {
            "dr": figures[side]["dr"],
            "dr_low": figures[side]["dr_low"],
            "dr_high": figures[side]["dr_high"],
            "ess": figures[side]["ess"],
            "plain_dr": figures[side]["plain"]["dr"],
            "switched_share": figures[side]["switched_share"],
        }
        for side in ("champion", "challenger")
    }
    if not ahead:
        return registry.Decision(
            False,
            f"the challenger's policy is not ahead: switch doubly robust settlement rate "
            f"{figures['challenger']['dr']:.4f} against the champion's "
            f"{figures['champion']['dr']:.4f} on the same holdout",
            str(champion.version),
            str(challenger.version),
            shown,
        )
    registry.set_alias(
        client,
        engine,
        MODEL,
        registry.CHAMPION,
        str(challenger.version),
        "challenger's policy beat the champion's switch doubly robust value",
        figures,
    )
    client.delete_registered_model_alias(name, registry.CHALLENGER)
    registry.record_alias_change(
        engine, MODEL, registry.CHALLENGER, None, str(challenger.version), "promoted to champion"
    )
    return registry.Decision(
        True,
        f"the challenger's policy beat the champion's: switch doubly robust settlement rate "
        f"{figures['challenger']['dr']:.4f} against {figures['champion']['dr']:.4f} "
        f"(difference {figures['difference']['dr']:+.4f}, 95 % interval "
        f"{figures['difference']['low']:+.4f} to {figures['difference']['high']:+.4f})",
        str(champion.version),
        str(challenger.version),
        shown,
    )
