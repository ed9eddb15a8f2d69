"""A small world for the review page's tests: simulated, imported, featurised, materialised and
trained with ``concord``'s own commands; and recommendations recorded as the service records them
(``concord.audit.append`` of kind ``recommendation`` and ``record_decision``)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from concord.settings import Settings

AS_OF = "2026-06-20"
DECIDED_AT = dt.datetime(2026, 6, 20, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def build_world(home: Path, cases: int = 1500, seed: int = 3) -> Settings:
    """Simulate and import a world under ``home``, build and materialise its features, train and
    register both champions; return its settings (the environment is set by the caller)."""
    from serving.cli.app import app

    env = {"CONCORD_HOME": str(home / "home"), "CONCORD_PSEUDONYM_KEY": "review-test",
           "CONCORD_TUNING_TRIALS": "2", "CONCORD_TUNING_SECONDS": "10"}
    steps = [("simulate", "--cases", str(cases), "--seed", str(seed), "--out", str(home / "world"),
              "--format", "parquet"),
             *(("import", table, str(home / "world" / f"{table}.parquet"), "--historical")
               for table in ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")),
             ("features", "build", "--as-of", AS_OF), ("features", "apply"),
             ("features", "materialize", "--end", AS_OF), ("train", "--model", "all", "--as-of", AS_OF)]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("CONCORD_DATABASE_URL", raising=False)
        patch.delenv("CONCORD_AUDIT_URL", raising=False)
        for step in steps:
            result = CliRunner().invoke(app, list(step))
            assert result.exit_code == 0, (step, result.output)
    return Settings.from_env(env)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def record_recommendations(settings: Settings, count: int = 24, *, mediator: str = "M-test",
                           workflow: str = "one_plus_x") -> list[dict[str, Any]]:
    """Decide for the cases open at ``DECIDED_AT`` in ``workflow`` (the 1+X chain freezes assets
    and asks for payment orders: sensitive actions) and record ``count`` of them (the sensitive
    ones first) in the audit trail and ``decisions``; returns what was recorded."""
    import numpy as np

    from concord.audit import append, audit_engine, record_decision
    from concord.db import make_engine
    from policies.cases import case_inputs
    from policies.config import load_policy
    from policies.engine import PolicyEngine
    from policies.scores import ChampionScorer

    ledger, audit = make_engine(settings), audit_engine(settings)
    policy = load_policy()
    engine, scorer = PolicyEngine(policy.with_workflow(workflow)), ChampionScorer.champions(settings)
    inputs = case_inputs(settings, ledger, DECIDED_AT, policy.catalogue, scorer)
    answers = []
    for i in range(len(inputs.frame)):
        row = inputs.frame.iloc[i].to_dict()
        answers.append((i, row, engine.recommend_one(row, reasons=scorer.reasons(inputs.features.iloc[[i]])[0],
                                                     model_versions=scorer.versions)))
    answers.sort(key=lambda item: not policy.catalogue.actions[policy.catalogue.index(item[2].action)].sensitive)
    recorded = []
    for i, row, answer in answers[:count]:
        decision_id = uuid.uuid4().hex
        sensitive = policy.catalogue.actions[policy.catalogue.index(answer.action)].sensitive
        features = {k: _plain(v) for k, v in inputs.features.iloc[i].to_dict().items()}
        scores = {"p_reach": float(row["p_reach"]), "p_settle": float(row["p_settle"])}
        with audit.begin() as connection:
            append(connection, "recommendation", {"recommendation": answer.to_dict(), "features": features,
                                                  "scores": scores},
                   decision_id=decision_id, case_id=answer.case_id, creditor=answer.creditor, actor="key:0:platform")
            approval = record_decision(connection, decision_id=decision_id, case_id=answer.case_id,
                                       creditor=answer.creditor, court=_plain(row.get("court")), stage=answer.stage,
                                       action=answer.action, sensitive=sensitive,
                                       risk_flags="; ".join(answer.risk_flags), mediator=mediator, at=DECIDED_AT)
        recorded.append({"decision_id": decision_id, "answer": answer, "approval": approval, "scores": scores,
                         "features": features, "case_pk": int(np.int64(row["case_pk"]))})
    ledger.dispose()
    audit.dispose()
    return recorded
