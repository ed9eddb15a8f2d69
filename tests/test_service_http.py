"""The service over HTTP, started as users start it (``concord serve`` -> ``bentoml serve``) on a small
world: every endpoint, the roles and scopes (401/403), refusals naming the field (400/404/413),
audit before the answer, approval pending for sensitive actions, events reaching the ledger."""

from __future__ import annotations

import collections
import datetime as dt
import io
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from concord.settings import Settings
from policies.config import PACKAGED
from tests.conftest import copy_world
from tests.service_world import Service, concord, make_key


@pytest.fixture(scope="module")
def api(service_world: str, tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("service-http")
    env = copy_world(service_world, root)
    # The small world's open cases are early in the funnel, where no packaged action is sensitive:
    # this service's policy also makes contact repair (a third party contacted) wait for approval.
    policy = root / "policy"
    shutil.copytree(PACKAGED, policy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    catalogue = (policy / "catalogue.yaml").read_text()
    assert "    zh: 失联修复\n" in catalogue
    marked = catalogue.replace("    zh: 失联修复\n", "    zh: 失联修复\n    sensitive: true\n")
    (policy / "catalogue.yaml").write_text(marked)
    # The service decides at the wall clock: with quiet hours (22:00-08:00 Shanghai) on, every
    # contact would wait while the suite runs in those hours. Quiet hours are tested at fixed
    # times by the policy engine's tests; here they are off so the answers do not depend on the hour.
    guardrails = (policy / "guardrails.yaml").read_text()
    assert "\nquiet_hours:\n" in guardrails
    off = guardrails.replace("\nquiet_hours:\n", "\nquiet_hours:\n  enabled: false\n")
    (policy / "guardrails.yaml").write_text(off)
    env["CONCORD_POLICY_DIR"] = str(policy)
    settings = Settings.from_env(env)
    ledger = create_engine(settings.database_url)
    with ledger.connect() as connection:
        creditors = [r[0] for r in connection.execute(text("SELECT name FROM creditors ORDER BY name"))]
        courts = [
            r[0]
            for r in connection.execute(
                text("SELECT court FROM cases WHERE court IS NOT NULL GROUP BY court ORDER BY COUNT(*) DESC")
            )
        ]
    from training.scoring import open_cases

    opened = open_cases(ledger, dt.datetime.now(dt.UTC))
    keys = {
        "admin": make_key(env, "admin"),
        "supervisor": make_key(env, "supervisor"),
        "data_scientist": make_key(env, "data_scientist"),
        "platform": make_key(env, "platform", "--creditor", creditors[0]),
        "court": make_key(env, "court", "--court", courts[0]),
    }
    service = Service(env, root / "service.log").start()
    try:
        yield {
            "url": service.url,
            "env": env,
            "keys": keys,
            "creditors": creditors,
            "courts": courts,
            "open": opened,
            "ledger": ledger,
            "log": root / "service.log",
            "home": Path(env["CONCORD_HOME"]),
            "world": Path(service_world).parent / "world",
        }
    finally:
        service.stop()
        ledger.dispose()


def post(api: dict, route: str, body: object, role: str | None = "admin", **headers: str) -> httpx.Response:
    if role is not None:
        headers["Authorization"] = f"Bearer {api['keys'][role]}"
    return httpx.post(f"{api['url']}/{route}", json=body, headers=headers, timeout=120)


def one_open(api: dict, creditor: str | None = None) -> tuple[str, str]:
    frame = api["open"]
    if creditor is not None:
        frame = frame[frame["creditor"] == creditor]
    row = frame.iloc[0]
    return str(row["case_id"]), str(row["creditor"])


def test_health_metrics_and_openapi(api) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(api["url"] + path, timeout=60).status_code == 200
    post(api, "next_best_action", {"case_id": one_open(api)[0]})
    metrics = httpx.get(api["url"] + "/metrics", timeout=60).text
    assert "bentoml_service_request_total" in metrics and 'endpoint="/next_best_action"' in metrics
    document = httpx.get(api["url"] + "/openapi.json", timeout=60).json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/next_best_action",
        "/assign",
        "/explain",
        "/profile",
        "/litigation_list",
        "/events",
        "/reload",
        "/decision_status",
    }
    operation = document["paths"]["/next_best_action"]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert {"200", "400", "401", "403", "404", "413", "503"} <= set(operation["responses"])


@pytest.mark.parametrize(
    "route",
    ["next_best_action", "assign", "explain", "profile", "litigation_list", "events", "reload", "decision_status"],
)
def test_every_route_wants_a_key(api, route) -> None:
    missing = post(api, route, {}, role=None)
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = post(api, route, {}, role=None, Authorization="Bearer ck_1_" + "x" * 43)
    assert wrong.status_code == 401


def test_roles_and_scopes(api) -> None:
    case_id, creditor = one_open(api, api["creditors"][0])
    other_id, other = one_open(api, api["creditors"][1])
    assert post(api, "next_best_action", {"case_id": case_id}, role="court").status_code == 403
    assert post(api, "events", {"events": []}, role="data_scientist").status_code == 403
    assert post(api, "reload", {}, role="platform").status_code == 403
    refused = post(api, "litigation_list", {}, role="platform")
    assert refused.status_code == 403 and "platform" in refused.json()["error"]
    # a platform key serves its own creditor's cases: another creditor's are not there for it
    assert post(api, "next_best_action", {"case_id": case_id}, role="platform").status_code == 200
    hidden = post(api, "next_best_action", {"case_id": other_id}, role="platform")
    assert hidden.status_code == 404 and creditor in hidden.json()["error"]
    named = post(api, "next_best_action", {"case_id": other_id, "creditor": other}, role="platform")
    assert named.status_code == 403 and named.json()["field"] == "creditor"
    # a court key reads its own court's list only
    assert post(api, "litigation_list", {}, role="court").status_code == 200
    if len(api["courts"]) > 1:
        other_court = post(api, "litigation_list", {"court": api["courts"][1]}, role="court")
        assert other_court.status_code == 403 and other_court.json()["field"] == "court"


def test_refusals_name_the_field(api) -> None:
    case_id, _ = one_open(api)
    cases = [{"case_id": case_id}] * 1001
    checks = [
        ({"case_id": 5}, 400, "case_id"),
        ({"case_id": ""}, 400, "case_id"),
        ({"case_id": case_id, "creditr": "x"}, 400, "creditr"),
        ({}, 400, "case_id"),
        ({"case_id": case_id, "cases": [{"case_id": case_id}]}, 400, "cases"),
        ({"cases": [{"case_id": case_id, "extra": 1}]}, 400, "cases[0].extra"),
        ({"case_id": "NO-SUCH-CASE"}, 404, "case_id"),
        ({"cases": cases}, 413, "cases"),
    ]
    for body, status, field in checks:
        answer = post(api, "next_best_action", body)
        assert answer.status_code == status, (body if len(str(body)) < 200 else "1001 cases", answer.text)
        assert answer.json()["field"] == field and answer.json()["error"]
    broken = httpx.post(
        f"{api['url']}/next_best_action",
        content=b'{"case_id": ',
        headers={"Authorization": f"Bearer {api['keys']['admin']}"},
        timeout=60,
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    assert post(api, "explain", {"case_id": "NO-SUCH-CASE"}).status_code == 404
    assert post(api, "profile", {}).json()["field"] == "case_id"
    assert post(api, "litigation_list", {"court": "无此法院"}).status_code == 404
    assert post(api, "litigation_list", {"court": api["courts"][0], "format": "pdf"}).json()["field"] == "format"
    big = post(api, "events", {"events": [{"case_id": "x" * 60}] * 40_000})
    assert big.status_code == 413


def test_one_case_is_audited_and_a_batch_agrees(api) -> None:
    open_cases = api["open"].drop_duplicates("debtor_key").head(25)
    refs = [
        {"case_id": str(c), "creditor": str(k)}
        for c, k in zip(open_cases["case_id"], open_cases["creditor"], strict=True)
    ]
    singles = [post(api, "next_best_action", ref).json()["results"][0] for ref in refs]
    batch = post(api, "next_best_action", {"cases": [*refs, {"case_id": "NO-SUCH-CASE"}]}).json()
    assert [r["case_id"] for r in batch["results"]] == [r["case_id"] for r in singles]
    assert batch["errors"] == [
        {"case_id": "NO-SUCH-CASE", "creditor": None, "status": 404, "error": "no case 'NO-SUCH-CASE' in the ledger"}
    ]
    for one, many in zip(singles, batch["results"], strict=True):
        assert one["action"] == many["action"] and one["stage"] == many["stage"]
        assert math.isclose(one["scores"]["p_settle"], many["scores"]["p_settle"], rel_tol=1e-9)
        assert one["decision_id"] != many["decision_id"]
    first = singles[0]
    assert first["approval"] in ("pending", "not_required") and first["model_versions"]
    audit = create_engine(f"sqlite:///{api['home'] / 'audit.db'}")
    with audit.connect() as connection:
        kind, payload = connection.execute(
            text("SELECT kind, payload FROM audit_records WHERE seq = :s"), {"s": first["audit_seq"]}
        ).one()
        state = connection.execute(
            text("SELECT approval, action FROM decisions WHERE decision_id = :d"), {"d": first["decision_id"]}
        ).one()
    audit.dispose()
    assert kind == "recommendation" and first["decision_id"] in payload and '"features"' in payload
    assert tuple(state) == (first["approval"], first["action"])


SENSITIVE = {
    "contact_repair",
    "pre_check_write_off",
    "asset_preservation",
    "payment_order",
    "file_lawsuit",
    "enforcement",
    "criminal_referral",
}


def test_the_packaged_catalogue_marks_the_sensitive_actions() -> None:
    from policies.config import load_policy

    marked = {a.name for a in load_policy().catalogue.actions if a.sensitive}
    assert marked == SENSITIVE - {"contact_repair"}


def test_sensitive_actions_wait_for_approval(api) -> None:
    opened = api["open"]
    refs = [
        {"case_id": str(c), "creditor": str(k)} for c, k in zip(opened["case_id"], opened["creditor"], strict=True)
    ][:1000]
    results = post(api, "next_best_action", {"cases": refs}, role="supervisor").json()["results"]
    sensitive = [r for r in results if r["sensitive"]]
    assert sensitive, collections.Counter(r["action"] for r in results)
    assert all(r["action"] in SENSITIVE for r in sensitive)
    assert all(r["approval"] == "pending" and r["needs_review"] for r in sensitive)
    assert all(r["approval"] == "not_required" for r in results if not r["sensitive"])
    audit = create_engine(f"sqlite:///{api['home'] / 'audit.db'}")
    with audit.connect() as connection:
        pending = {
            r[0] for r in connection.execute(text("SELECT decision_id FROM decisions WHERE approval = 'pending'"))
        }
    audit.dispose()
    assert {r["decision_id"] for r in sensitive} <= pending


def test_explain_and_profile(api) -> None:
    case_id, creditor = one_open(api)
    explained = post(api, "explain", {"case_id": case_id, "creditor": creditor}, role="data_scientist").json()
    assert [m["model"] for m in explained["models"]] == ["reachability", "settlement"]
    for model in explained["models"]:
        raw = 1 / (1 + math.exp(-(model["bias"] + sum(c["log_odds"] for c in model["contributions"]))))
        assert 0 < raw < 1 and 0 <= model["probability"] <= 1
        sizes = [abs(c["log_odds"]) for c in model["contributions"]]
        assert sizes == sorted(sizes, reverse=True)
    found = post(api, "profile", {"case_id": case_id}, role="supervisor").json()
    assert found["case"]["case_id"] == case_id and "debtor_name" not in found["case"]
    assert "*" in (found["case"]["id_masked"] or "*") and found["features"]
    assert all(e["at"].endswith("+00:00") for e in found["events"])


def test_litigation_list_json_and_xlsx(api) -> None:
    court = api["courts"][0]
    listed = post(api, "litigation_list", {}, role="court").json()
    assert listed["court"] == court and listed["sheets"]
    workbook = post(api, "litigation_list", {"court": court, "format": "xlsx"}, role="supervisor")
    assert workbook.status_code == 200 and workbook.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    book = openpyxl.load_workbook(io.BytesIO(workbook.content))
    assert book.sheetnames == list(listed["sheets"])


def test_events_are_acknowledged_all_or_none_counted_and_imported(api) -> None:
    case_id, creditor = one_open(api, api["creditors"][0])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    before = post(api, "next_best_action", {"case_id": case_id}, role="platform").json()["results"][0]
    calls = before["ranked"] and sum(1 for r in before["ranked"] if r["action"] == "voice_call")
    bad = post(
        api,
        "events",
        {
            "events": [
                {
                    "case_id": case_id,
                    "at": now.isoformat(),
                    "action": "voice_call",
                    "actor": "system",
                    "outcome": "no_answer",
                },
                {
                    "case_id": "NO-SUCH-CASE",
                    "at": now.isoformat(),
                    "action": "voice_call",
                    "actor": "system",
                    "outcome": "no_answer",
                },
            ]
        },
        role="platform",
    )
    assert bad.status_code == 404 and bad.json()["field"] == "events[1].case_id"
    future = post(
        api,
        "events",
        {
            "events": [
                {
                    "case_id": case_id,
                    "at": (now + dt.timedelta(days=2)).isoformat(),
                    "action": "sms_warning",
                    "actor": "system",
                    "outcome": "sent",
                }
            ]
        },
        role="platform",
    )
    assert future.status_code == 400 and future.json()["field"] == "events[0].at"
    fen = post(
        api,
        "events",
        {
            "events": [
                {
                    "case_id": case_id,
                    "at": now.isoformat(),
                    "action": "voice_call",
                    "actor": "system",
                    "outcome": "no_answer",
                },
                {
                    "case_id": case_id,
                    "at": now.isoformat(),
                    "action": "voice_call",
                    "actor": "system",
                    "outcome": "paid",
                    "amount": 12.345,
                },
            ]
        },
        role="platform",
    )
    assert fen.status_code == 400 and fen.json()["field"] == "events[1].amount", fen.text
    assert (
        post(
            api,
            "events",
            {
                "events": [
                    {
                        "case_id": case_id,
                        "at": "0001-01-01T00:00:00",
                        "action": "wait",
                        "actor": "system",
                        "outcome": "sent",
                    }
                ]
            },
        ).status_code
        == 400
    )
    # three calls today: seconds apart, never before the Shanghai day began (were they minutes apart,
    # the daily count would miss some in the first minutes after midnight)
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0)
    events = [
        {
            "case_id": case_id,
            "at": max(now - dt.timedelta(seconds=i), today).isoformat(),
            "action": "voice_call",
            "actor": "system",
            "outcome": "no_answer",
        }
        for i in range(3)
    ]
    acked = post(api, "events", {"events": events}, role="platform")
    assert acked.status_code == 200 and acked.json()["accepted"] == 3
    after = post(api, "next_best_action", {"case_id": case_id}, role="platform").json()["results"][0]
    audit = create_engine(f"sqlite:///{api['home'] / 'audit.db'}")
    with audit.connect() as connection:
        seqs = [
            r[0]
            for r in connection.execute(
                text("SELECT seq FROM audit_records WHERE kind = 'event' AND case_id = :c"), {"c": case_id}
            )
        ]
        history = connection.execute(
            text("SELECT payload FROM audit_records WHERE seq = :s"), {"s": after["audit_seq"]}
        ).scalar_one()
    audit.dispose()
    assert seqs == [e["seq"] for e in acked.json()["events"]]  # the refused requests wrote nothing
    assert '"voice_attempts_today":3.0' in history or '"voice_attempts_today":4.0' in history, calls
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while dt.datetime.now() < deadline:
        with api["ledger"].connect() as connection:
            stored = connection.execute(
                text(
                    "SELECT COUNT(*) FROM events e JOIN cases c ON c.id = e.case_pk WHERE c.case_id = :c "
                    "AND e.action = 'voice_call' AND e.received_at IS NOT NULL"
                ),
                {"c": case_id},
            ).scalar_one()
        if stored >= 3:
            break
        time.sleep(0.5)
    assert stored >= 3, "acknowledged events should reach the ledger within seconds"


def test_assign_and_reload(api) -> None:
    opened = api["open"].head(30)
    refs = [{"case_id": str(c), "creditor": str(k)} for c, k in zip(opened["case_id"], opened["creditor"], strict=True)]
    plan = post(api, "assign", {"cases": refs, "save": True}, role="supervisor").json()
    assert len(plan["assignments"]) == 30 and plan["audit_seq"] > 0
    assert all(a["mediator_id"] or a["reason"].startswith("unassigned") for a in plan["assignments"])
    assert all(m["load_after"] <= max(m["capacity"], m["load_before"]) for m in plan["mediators"])
    with api["ledger"].connect() as connection:
        saved = connection.execute(text("SELECT COUNT(*) FROM assignments")).scalar_one()
    assert saved == sum(1 for a in plan["assignments"] if a["mediator_id"]) and plan["saved"] == (saved > 0)
    same = post(api, "reload", {}, role="data_scientist").json()
    assert same["reloaded"] is False and set(same["model_versions"]) == {"reachability", "settlement"}
    assert post(api, "reload", {"force": True}).json()["reloaded"] is True


def test_audit_verifies_and_logs_hold_no_personal_data(api) -> None:
    checked = concord(api["env"], "audit", "verify")
    assert checked.returncode == 0 and "audit chain OK" in checked.stdout, checked.stderr
    cases = pd.read_csv(api["world"] / "cases.csv", dtype=str)
    # a refused request carrying a phone number in a wrong field must not put it in the log
    phone = str(cases["phone"].dropna().iloc[0])
    post(api, "next_best_action", {"case_id": one_open(api)[0], "phone": phone})
    log = api["log"].read_text()
    for column in ("id_number", "phone", "debtor_name"):
        leaked = [v for v in cases[column].dropna().unique() if len(str(v)) >= 3 and str(v) in log]
        assert not leaked, f"the service log holds {column} values"
