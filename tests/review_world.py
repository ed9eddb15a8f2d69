"""The review page's tests work on a private copy of the session's service world
(``tests.conftest.service_world``) decided by the 1+X chain, whose asset freezes, payment orders
and pre-check write-offs are sensitive actions a supervisor must approve."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import copy_world

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def one_plus_x_policy(target: Path) -> Path:
    """A copy of the shipped policy whose default workflow is the 1+X chain, quiet hours off.

    The service decides at the wall clock: with quiet hours (22:00-08:00 Shanghai) on, every
    contact is blocked while the suite runs in those hours, and the pages would show other
    decisions by night than by day. Quiet hours are tested at fixed times by the policy engine's
    tests; here they are off so that the decisions do not depend on the hour."""
    folder = target / "policy-one-plus-x"
    folder.mkdir(parents=True, exist_ok=True)
    for path in POLICIES.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    text = (folder / "policy.yaml").read_text(encoding="utf-8")
    assert "default: five_level" in text
    (folder / "policy.yaml").write_text(text.replace("default: five_level", "default: one_plus_x"), encoding="utf-8")
    guardrails = (folder / "guardrails.yaml").read_text(encoding="utf-8")
    assert "\nquiet_hours:\n" in guardrails
    off = guardrails.replace("\nquiet_hours:\n", "\nquiet_hours:\n  enabled: false\n")
    (folder / "guardrails.yaml").write_text(off, encoding="utf-8")
    return folder


def review_env(service_world: str, target: Path) -> dict[str, str]:
    """The environment of a private copy of the service world, deciding by the 1+X chain."""
    env = copy_world(service_world, target)
    env["CONCORD_POLICY_DIR"] = str(one_plus_x_policy(target))
    return env


def world_files(service_world: str) -> Path:
    """The folder of the contract files the world was imported from."""
    return Path(service_world).parent / "world"


def open_case_refs(settings: Any, limit: int = 300) -> list[dict[str, str]]:
    """``{case_id, creditor}`` of cases open now (at most ``limit``)."""
    from concord.db import make_engine
    from training.scoring import open_cases

    ledger = make_engine(settings)
    try:
        frame = open_cases(ledger, dt.datetime.now(dt.UTC)).head(limit)
    finally:
        ledger.dispose()
    return [{"case_id": str(r.case_id), "creditor": str(r.creditor)} for r in frame.itertuples(index=False)]


def recommend_in_process(settings: Any, supervisor_key: str, limit: int = 300) -> list[Any]:
    """Decide for the open cases with the service's own code (``serving.recommend``), as a
    supervisor's batch call would: every decision audited with its ``decisions`` row."""
    from serving.auth import authenticate
    from serving.recommend import recommend_batch
    from serving.runtime import Runtime
    from serving.schemas import CaseRef

    runtime = Runtime(settings).start()
    try:
        principal = authenticate(runtime.audit, supervisor_key)
        assert principal is not None and runtime.ready(), runtime.problem
        refs = [CaseRef(**ref) for ref in open_case_refs(settings, limit)]
        results, errors = recommend_batch(runtime, principal, refs)
        assert not errors, errors[:3]
        return results
    finally:
        runtime.stop()


def personal_values(service_world: str) -> dict[str, list[str]]:
    """The raw ID numbers, phones and names of the world's case pool, to search pages for."""
    cases = pd.read_csv(world_files(service_world) / "cases.csv", dtype=str)
    return {
        column: [v for v in cases[column].dropna() if len(v) >= 2] for column in ("id_number", "phone", "debtor_name")
    }
