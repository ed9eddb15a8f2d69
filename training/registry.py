"""MLflow tracking and the model registry, with champion/challenger governance.

Tracking and registry default to SQLite under ``CONCORD_HOME`` (artifacts in
``CONCORD_HOME/mlartifacts``); ``CONCORD_MLFLOW_TRACKING_URI`` points both elsewhere (the
production profile uses PostgreSQL). MLflow keeps only the current alias of a version; every
alias change is also written to the ledger's ``model_alias_changes`` so ``concord models
history`` can tell which version was champion when.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, select

from concord import ledger
from concord.settings import Settings

EXPERIMENT = "concord"
CHAMPION, CHALLENGER = "champion", "challenger"
AUC_TOLERANCE = 0.005  # a challenger may lose this much ROC-AUC if its Brier score is no worse


def tracking_uri(settings: Settings) -> str:
    """Where MLflow keeps runs and the registry."""
    return settings.mlflow_tracking_uri or f"sqlite:///{settings.home / 'mlflow.db'}"


def configure(settings: Settings) -> Any:
    """Point MLflow at Concord's store, create the experiment if needed; returns a client."""
    import mlflow
    from mlflow import MlflowClient

    settings.ensure_home()
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with warnings.catch_warnings():
        # MLflow's SQL tracking store, loaded by the first call, uses a SQLAlchemy loader that
        # SQLAlchemy 2.1 deprecates: MLflow's concern, not the user's, printed at every training.
        warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = settings.home / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registered_name(model: str) -> str:
    """Registry name of a Concord model (``reachability`` -> ``concord-reachability``)."""
    return f"concord-{model}"


def version_by_alias(client: Any, model: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(registered_name(model), alias)
    except MlflowException:
        return None


def record_alias_change(
    engine: Engine,
    model: str,
    alias: str,
    version: str | None,
    previous: str | None,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> None:
    """Append one alias change to the ledger's history."""
    with engine.begin() as connection:
        connection.execute(
            insert(ledger.table(ledger.ModelAliasChange)).values(
                model_name=registered_name(model),
                alias=alias,
                version=version,
                previous_version=previous,
                changed_at=ledger.utcnow(),
                reason=reason,
                evidence=json.dumps(evidence or {}, default=str),
            )
        )


def set_alias(
    client: Any,
    engine: Engine,
    model: str,
    alias: str,
    version: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> None:
    """Give ``version`` the alias in MLflow and record the change."""
    current = version_by_alias(client, model, alias)
    client.set_registered_model_alias(registered_name(model), alias, str(version))
    record_alias_change(engine, model, alias, str(version), str(current.version) if current else None, reason, evidence)


def history(engine: Engine, model: str) -> pd.DataFrame:
    """Alias changes of a model, oldest first: which version was champion (or challenger) when."""
    table = ledger.table(ledger.ModelAliasChange)
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.changed_at, table.c.alias, table.c.version, table.c.previous_version, table.c.reason)
            .where(table.c.model_name == registered_name(model))
            .order_by(table.c.id)
        ).all()
    return pd.DataFrame(rows, columns=["changed_at", "alias", "version", "previous_version", "reason"])


@dataclass
class Decision:
    """Outcome of a promotion: whether it happened and the figures both sides reached."""

    promoted: bool
    reason: str
    champion_version: str | None
    challenger_version: str | None
    figures: dict[str, dict[str, float]] = field(default_factory=dict)


def holdout_of(client: Any, version: Any) -> pd.DataFrame:
    """The out-of-time holdout a version was evaluated on (features, label, creditor type)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="holdout/holdout.parquet", tracking_uri=client.tracking_uri
    )
    return pd.read_parquet(path)


def load_version(model: str, version: str) -> Any:
    """The fitted estimator of a registered version."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{registered_name(model)}/{version}")


def evaluation_estimator(client: Any, model: str, version: Any) -> Any:
    """The model a version's run fitted before its last out-of-time origin (``evaluation_model``):
    registered models are refitted on every decision, the holdout included, so versions are
    compared by what they learnt before it. Versions logged without one give their registered model."""
    import mlflow.sklearn

    names = {artifact.path for artifact in client.list_artifacts(version.run_id)}
    if "evaluation_model" in names:
        return mlflow.sklearn.load_model(f"runs:/{version.run_id}/evaluation_model")
    return load_version(model, str(version.version))


def artifact_json(client: Any, version: Any, name: str) -> dict[str, Any] | None:
    """A JSON artifact of a version's run, or None when the run has none of that name."""
    import mlflow

    if name not in {artifact.path for artifact in client.list_artifacts(version.run_id)}:
        return None
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=name, tracking_uri=client.tracking_uri
    )
    with open(path, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def evaluate_on(estimator: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """ROC-AUC and Brier score of an estimator on a holdout frame (label column ``label``)."""
    from models.metrics import scores

    columns = list(getattr(estimator, "feature_names_in_", []))
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise ValueError(f"the holdout lacks features the model needs: {', '.join(missing[:5])}")
    figures = scores(holdout["label"].to_numpy(), estimator.predict_proba(holdout[columns])[:, 1])
    return {k: figures[k] for k in ("roc_auc", "brier", "ece", "rows")}


def promote(settings: Settings, engine: Engine, model: str) -> Decision:
    """Make the challenger champion if it is at least as good on the challenger's holdout.

    Rule: challenger ROC-AUC not lower than the champion's by more than 0.005 and its Brier
    score not worse. Both are scored on the same out-of-time holdout (the challenger's last
    origin), each by the model its run fitted before its own last origin
    (:func:`evaluation_estimator`). With no champion yet, the challenger is promoted.
    """
    client = configure(settings)
    challenger = version_by_alias(client, model, CHALLENGER)
    champion = version_by_alias(client, model, CHAMPION)
    if challenger is None:
        return Decision(
            False, f"{registered_name(model)} has no challenger to promote", champion and str(champion.version), None
        )
    if champion is not None and str(champion.version) == str(challenger.version):
        return Decision(False, "the challenger already is the champion", str(champion.version), str(challenger.version))
    if champion is None:
        set_alias(client, engine, model, CHAMPION, str(challenger.version), "first champion")
        client.delete_registered_model_alias(registered_name(model), CHALLENGER)
        record_alias_change(engine, model, CHALLENGER, None, str(challenger.version), "promoted to champion")
        return Decision(True, "no champion yet: the challenger becomes champion", None, str(challenger.version))
    holdout = holdout_of(client, challenger)
    figures = {
        "champion": evaluate_on(evaluation_estimator(client, model, champion), holdout),
        "challenger": evaluate_on(evaluation_estimator(client, model, challenger), holdout),
    }
    auc_ok = figures["challenger"]["roc_auc"] >= figures["champion"]["roc_auc"] - AUC_TOLERANCE
    brier_ok = figures["challenger"]["brier"] <= figures["champion"]["brier"]
    if not (auc_ok and brier_ok):
        why = []
        if not auc_ok:
            why.append(
                f"ROC-AUC {figures['challenger']['roc_auc']:.4f} is more than {AUC_TOLERANCE} below "
                f"the champion's {figures['champion']['roc_auc']:.4f}"
            )
        if not brier_ok:
            why.append(
                f"Brier {figures['challenger']['brier']:.4f} is worse than the champion's "
                f"{figures['champion']['brier']:.4f}"
            )
        return Decision(False, "; ".join(why), str(champion.version), str(challenger.version), figures)
    set_alias(client, engine, model, CHAMPION, str(challenger.version), "challenger beat champion on holdout", figures)
    client.delete_registered_model_alias(registered_name(model), CHALLENGER)
    record_alias_change(engine, model, CHALLENGER, None, str(challenger.version), "promoted to champion")
    return Decision(
        True,
        "challenger beat the champion on the same holdout",
        str(champion.version),
        str(challenger.version),
        figures,
    )


def champion_lineage(engine: Engine, model: str) -> list[str]:
    """Champion versions as a stack: promotions push, rollbacks pop; the last is current."""
    stack: list[str] = []
    changes = history(engine, model)
    for change in changes[changes["alias"] == CHAMPION].itertuples(index=False):
        if str(change.reason).startswith("rollback"):
            if stack:
                stack.pop()
            if not stack or stack[-1] != change.version:
                stack.append(str(change.version))
        elif change.version is not None:
            stack.append(str(change.version))
    return stack


def rollback(settings: Settings, engine: Engine, model: str) -> Decision:
    """Give the champion alias back to the version that was champion before the current one."""
    client = configure(settings)
    champion = version_by_alias(client, model, CHAMPION)
    lineage = champion_lineage(engine, model)
    if champion is None or len(lineage) < 2:
        return Decision(False, "there is no earlier champion to roll back to", champion and str(champion.version), None)
    previous = lineage[-2]
    set_alias(client, engine, model, CHAMPION, previous, f"rollback from version {str(champion.version)}")
    return Decision(True, f"version {previous} is champion again", str(champion.version), previous)
