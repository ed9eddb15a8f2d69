"""The supervisor's review page in process (Starlette's test client, mounted at /review as the
service mounts it) over a small trained world: login and roles, CSRF, the queue and its filters,
the case view and its explanation, approve and override into the audit trail, disputes, the
champions' figures from MLflow, the funnel, and no personal data on any page."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from concord.audit import audit_engine, records, verify
from concord.db import make_engine
from concord.settings import Settings
from serving.auth import create_key
from serving.review.app import create_app
from serving.review.context import ReviewContext
from tests.review_world import personal_values, recommend_in_process, review_env, world_files


@pytest.fixture(scope="module")
def world(service_world: str, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A copy of the session's service world, its open cases decided by the service's own code."""
    root = tmp_path_factory.mktemp("review-page")
    env = review_env(service_world, root)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("CONCORD_DATABASE_URL", raising=False)
        patch.delenv("CONCORD_AUDIT_URL", raising=False)
        settings = Settings.from_env(env)
        audit = audit_engine(settings)
        keys = {
            role: create_key(audit, role, **scope)
            for role, scope in (
                ("supervisor", {}),
                ("admin", {}),
                ("data_scientist", {}),
                ("platform", {"creditor": "安信消费金融有限公司"}),
                ("court", {"court": "晋江市人民法院"}),
            )
        }
        recorded = []
        for answer in recommend_in_process(settings, keys["supervisor"]):
            payload = records(audit, kind="recommendation", decision_id=answer.decision_id)[0].payload
            recorded.append(
                {
                    "decision_id": answer.decision_id,
                    "approval": answer.approval,
                    "answer": answer,
                    "scores": answer.scores.model_dump(),
                    "features": payload["features"],
                }
            )
        context = ReviewContext(settings)
        app = Starlette(routes=[Mount("/review", create_app(context))])
        yield {
            "settings": settings,
            "keys": keys,
            "recorded": recorded,
            "app": app,
            "audit": audit,
            "service_world": service_world,
        }
        context.dispose()
        audit.dispose()


def client(world) -> TestClient:
    return TestClient(world["app"], base_url="http://testserver")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def logged_in(world, role: str = "supervisor") -> TestClient:
    browser = client(world)
    token = csrf_of(browser.get("/review/login").text)
    answer = browser.post("/review/login", data={"key": world["keys"][role], "csrf": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return browser


def bearer(world, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['keys'][role]}"}


def test_login_sets_a_signed_httponly_strict_cookie_and_refuses_forms_without_csrf(world) -> None:
    browser = client(world)
    first = browser.get("/review/queue", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/review/login"
    page = browser.get("/review/login")
    assert page.status_code == 200 and "主管复核" in page.text  # Chinese by default
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/review" in cookie
    assert browser.post("/review/login", data={"key": world["keys"]["supervisor"]}).status_code == 403
    wrong = browser.post("/review/login", data={"key": "ck_1_" + "x" * 40, "csrf": csrf_of(page.text)})
    assert wrong.status_code == 401 and "密钥无效" in wrong.text
    done = browser.post(
        "/review/login", data={"key": world["keys"]["supervisor"], "csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and world["keys"]["supervisor"] not in done.headers["set-cookie"]
    assert browser.get("/review/queue").status_code == 200
    # a cookie whose signature does not match is no session at all
    forged = client(world)
    forged.cookies.set("concord_review", browser.cookies["concord_review"][:-3] + "AAA", path="/review")
    assert forged.get("/review/queue", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("role", ["court", "platform", "admin", "data_scientist"])
def test_other_roles_get_403_by_bearer_and_by_form(world, role) -> None:
    answer = client(world).get("/review/queue", headers=bearer(world, role))
    assert answer.status_code == 403 and role in answer.json()["detail"]
    browser = client(world)
    token = csrf_of(browser.get("/review/login").text)
    form = browser.post("/review/login", data={"key": world["keys"][role], "csrf": token}, follow_redirects=False)
    assert form.status_code == 403 and "仅限主管" in form.text
    assert browser.get("/review/queue", follow_redirects=False).status_code == 303  # no session was made


def test_a_bad_bearer_key_is_401_and_a_revoked_key_loses_its_session(world) -> None:
    from serving.auth import authenticate, revoke_key

    assert client(world).get("/review/queue", headers={"Authorization": "Bearer nope"}).status_code == 401
    key = create_key(world["audit"], "supervisor")
    browser = client(world)
    token = csrf_of(browser.get("/review/login").text)
    browser.post("/review/login", data={"key": key, "csrf": token})
    assert browser.get("/review/queue").status_code == 200
    revoke_key(world["audit"], authenticate(world["audit"], key).key_id)  # type: ignore[union-attr]
    assert browser.get("/review/queue", follow_redirects=False).status_code == 303


def test_queue_lists_pending_sensitive_recommendations_and_filters_them(world) -> None:
    recorded = world["recorded"]
    pending = [r for r in recorded if r["approval"] == "pending"]
    assert pending, "the 1+X chain should have frozen assets or asked for a payment order somewhere"
    api = client(world)
    listed = api.get("/review/queue", headers={**bearer(world, "supervisor"), "Accept": "application/json"}).json()
    ids = {d["decision_id"] for d in listed["decisions"]}
    assert {r["decision_id"] for r in pending} <= ids
    assert all(d["approval"] == "pending" for d in listed["decisions"])
    one = pending[0]["answer"]
    for name, value, keep in (
        ("creditor", one.creditor, lambda r: r["answer"].creditor == one.creditor),
        ("action", one.action, lambda r: r["answer"].action == one.action),
        ("stage", one.stage, lambda r: r["answer"].stage == one.stage),
    ):
        got = api.get(
            "/review/queue",
            params={name: value, "status": "all"},
            headers={**bearer(world, "supervisor"), "Accept": "application/json"},
        ).json()["decisions"]
        mine = {d["decision_id"] for d in got} & {r["decision_id"] for r in recorded}
        assert mine == {r["decision_id"] for r in recorded if keep(r)}, name
    flagged = [r for r in recorded if r["answer"].risk_flags]
    if flagged:
        flag = flagged[0]["answer"].risk_flags[0]
        got = api.get(
            "/review/queue",
            params={"risk_flag": flag, "status": "all"},
            headers={**bearer(world, "supervisor"), "Accept": "application/json"},
        ).json()["decisions"]
        assert {d["decision_id"] for d in got} == {r["decision_id"] for r in recorded if flag in r["answer"].risk_flags}
    nobody = api.get(
        "/review/queue",
        params={"mediator": "no-such-mediator", "status": "all"},
        headers={**bearer(world, "supervisor"), "Accept": "application/json"},
    ).json()
    assert nobody["decisions"] == []
    page = logged_in(world).get("/review/queue", params={"creditor": one.creditor})
    assert page.status_code == 200 and one.case_id in page.text and "待审批" in page.text


def test_case_view_shows_scores_actions_rules_and_a_waterfall_that_adds_up(world) -> None:
    from serving.review.case_view import build, find_case_row
    from serving.review.store import decision
    from serving.review.words import has_plain_name

    waiting = [r for r in world["recorded"] if r["approval"] == "pending"]
    pending = next((r for r in waiting if r["answer"].blocked), waiting[0])
    answer = pending["answer"]
    page = logged_in(world).get(f"/review/decisions/{pending['decision_id']}")
    assert page.status_code == 200
    html = page.text
    assert all(f"{pending['scores'][p] * 100:.1f}%" in html for p in ("p_reach", "p_settle"))
    assert all(r.action in html for r in answer.ranked) and f"{answer.ranked[0].expected_value:,.2f}" in html
    assert all(rule in html for b in answer.blocked for rule in b.rules)
    assert "对数几率" in html and "校准前" in html  # says what the bars are, in plain words
    context = ReviewContext(world["settings"])
    view = build(
        context,
        find_case_row(context, answer.case_id, answer.creditor),
        decision(context.audit, pending["decision_id"]),
        "en",
    )
    assert view.recorded and {w.model for w in view.waterfalls} == {"reachability", "settlement"}
    for waterfall in view.waterfalls:
        pushes = [s.push for s in waterfall.steps[1:-1]]
        assert math.isclose(waterfall.bias + sum(pushes), waterfall.raw_score, abs_tol=1e-9)
        model, _ = context.model(waterfall.model, waterfall.version)
        frame = pd.DataFrame([{k: (math.nan if v is None else v) for k, v in pending["features"].items()}])
        assert math.isclose(waterfall.probability, model.predict_proba(frame[list(model.feature_names_in_)])[0, 1])
        column = "p_reach" if waterfall.model == "reachability" else "p_settle"
        assert math.isclose(waterfall.probability, pending["scores"][column], rel_tol=1e-9)
        named = [s for s in waterfall.steps if s.feature]
        assert named and all(has_plain_name(s.feature) for s in named)
    english = logged_in(world).get(f"/review/decisions/{pending['decision_id']}", params={"lang": "en"}).text
    assert "log-odds, before calibration" in english and "Supervisor review" in english
    context.dispose()


def test_every_model_feature_has_plain_words(world) -> None:
    from serving.review.words import feature_name, has_plain_name

    context = ReviewContext(world["settings"])
    for name in ("reachability", "settlement"):
        model, _ = context.model(name, None)
        missing = [f for f in model.feature_names_in_ if not has_plain_name(str(f))]
        assert not missing, f"{name}: no plain words for {missing}"
        assert all(feature_name(str(f), "en") != feature_name(str(f), "zh") for f in model.feature_names_in_)
    context.dispose()


def test_approve_then_override_are_recorded_once_in_the_audit_chain(world) -> None:
    pending = [r for r in world["recorded"] if r["approval"] == "pending"]
    browser = logged_in(world)
    first = pending[0]
    page = browser.get(f"/review/decisions/{first['decision_id']}")
    no_token = browser.post(f"/review/decisions/{first['decision_id']}/review", data={"verdict": "approve"})
    assert no_token.status_code == 403
    approved = browser.post(
        f"/review/decisions/{first['decision_id']}/review",
        data={"verdict": "approve", "reason": "", "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    again = browser.post(
        f"/review/decisions/{first['decision_id']}/review", data={"verdict": "approve", "csrf": csrf_of(page.text)}
    )
    assert again.status_code == 409 and "already approved" in again.text
    api, headers = client(world), {**bearer(world, "supervisor"), "Accept": "application/json"}
    target = next(r for r in world["recorded"] if r["approval"] == "not_required")
    url = f"/review/decisions/{target['decision_id']}/review"
    answer = target["answer"]
    assert (
        api.post(url, data={"verdict": "override", "action": answer.action, "reason": "x"}, headers=headers).status_code
        == 400
    )
    if answer.blocked:
        refused = api.post(
            url, data={"verdict": "override", "action": answer.blocked[0].action, "reason": "x"}, headers=headers
        )
        assert refused.status_code == 400 and answer.blocked[0].rules[0] in refused.json()["detail"]
    other = next(
        name
        for name in ("mediator_call", "sms_warning", "wait")
        if name != answer.action and name not in {b.action for b in answer.blocked}
    )
    blank = api.post(url, data={"verdict": "override", "action": other, "reason": "  "}, headers=headers)
    assert blank.status_code == 400 and "needs a reason" in blank.json()["detail"]
    done = api.post(
        url,
        data={"verdict": "override", "action": other, "reason": "debtor called back: try a mediator"},
        headers=headers,
    )
    assert done.status_code == 200 and done.json()["approval"] == "overridden" and done.json()["final_action"] == other
    reviews = records(world["audit"], kind="review", decision_id=target["decision_id"])
    assert len(reviews) == 1 and reviews[0].payload["final_action"] == other
    assert reviews[0].payload["recommended_action"] == answer.action and reviews[0].actor.endswith(":supervisor")
    assert reviews[0].payload["reason"] == "debtor called back: try a mediator"
    assert [r.payload["verdict"] for r in records(world["audit"], kind="review", decision_id=first["decision_id"])] == [
        "approve"
    ]
    assert verify(world["audit"]).ok
    trail = browser.get("/review/audit", params={"kind": "review", "case_id": answer.case_id, "verify": "1"}).text
    assert "debtor called back" in trail and "审计链完整" in trail


def test_reviews_are_exported_as_labels(world, tmp_path) -> None:
    import stat

    from typer.testing import CliRunner

    from serving.cli.app import app

    out = tmp_path / "reviews.csv"
    result = CliRunner().invoke(app, ["audit", "reviews", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert set(frame["verdict"]) == {"approve", "override"}
    override = frame[frame["reason"] == "debtor called back: try a mediator"].iloc[0]
    assert override["verdict"] == "override" and override["final_action"] != override["recommended_action"]
    assert override["reviewer"].endswith(":supervisor") and override["decision_id"]
    assert "overrides" in result.output


def test_a_disputed_case_waits_until_a_supervisor_resolves_it(world) -> None:
    browser = logged_in(world)
    api = client(world).get("/review/queue", headers={**bearer(world, "supervisor"), "Accept": "application/json"})
    disputes = api.json()["disputes"]
    assert disputes, "the world has disputed cases"
    case = disputes[0]
    page = browser.get(f"/review/cases/{case['case_pk']}")
    assert page.status_code == 200 and 'id="resolve"' in page.text
    assert (
        browser.post(
            f"/review/cases/{case['case_pk']}/resolve", data={"note": "", "csrf": csrf_of(page.text)}
        ).status_code
        == 400
    )
    done = browser.post(
        f"/review/cases/{case['case_pk']}/resolve",
        data={"note": "creditor confirmed the debt", "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    after = client(world).get("/review/queue", headers={**bearer(world, "supervisor"), "Accept": "application/json"})
    assert case["case_pk"] not in {d["case_pk"] for d in after.json()["disputes"]}
    ledger = make_engine(world["settings"])
    from policies.history import load_resolutions

    resolutions = load_resolutions(ledger, dt.datetime.now(dt.UTC), [case["case_pk"]])
    assert len(resolutions) == 1
    ledger.dispose()
    logged = records(world["audit"], kind="review", case_id=case["case_id"])
    last = logged[-1].payload
    assert (last["verdict"], last["note"]) == ("resolve_dispute", "creditor confirmed the debt")


def test_models_page_shows_the_champions_figures_and_plots_from_mlflow(world) -> None:
    from training import registry

    browser = logged_in(world)
    page = browser.get("/review/models")
    assert page.status_code == 200
    client_ = registry.configure(world["settings"])
    for model in ("reachability", "settlement"):
        version = registry.version_by_alias(client_, model, registry.CHAMPION)
        metrics = client_.get_run(version.run_id).data.metrics
        assert f"{metrics['model.all.roc_auc']:.3f}" in page.text
        plot = browser.get(f"/review/models/{model}/shap_summary.png")
        assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.get("/review/models/settlement/../../etc/passwd").status_code == 404


def test_funnel_by_creditor_agrees_with_the_stage_feature(world) -> None:
    from features.offline.build import built_as_of
    from serving.review.funnel import funnel

    ledger = make_engine(world["settings"])
    rows = funnel(ledger, as_of=built_as_of(world["settings"]))  # the events the stage feature saw
    state = pd.read_parquet(world["settings"].home / "features" / "offline" / "case_state.latest.parquet")
    assert sum(r.by_stage[s] for r in rows for s in r.by_stage) == sum(r.cases for r in rows)
    expected = state["stage"].value_counts().to_dict()
    got: dict[str, int] = {}
    for row in rows:
        for stage, n in row.by_stage.items():
            if n:
                got[stage] = got.get(stage, 0) + n
    assert got == expected
    events = pd.read_csv(world_files(world["service_world"]) / "events.csv", dtype={"amount": str})
    paid = events[events["outcome"].isin(["paid", "partial_paid"])]
    recovered = sum(r.recovered for r in funnel(ledger))
    assert math.isclose(recovered, float(paid["amount"].astype(float).sum()), rel_tol=1e-9)
    page = logged_in(world).get("/review/funnel")
    assert page.status_code == 200 and rows[0].creditor in page.text
    ledger.dispose()


def test_no_page_shows_a_raw_id_number_phone_or_name(world) -> None:
    browser = logged_in(world)
    pages = [browser.get(f"/review/decisions/{r['decision_id']}").text for r in world["recorded"]]
    pages += [browser.get(p).text for p in ("/review/queue?status=all", "/review/audit", "/review/funnel")]
    disputes = (
        client(world)
        .get("/review/queue", headers={**bearer(world, "supervisor"), "Accept": "application/json"})
        .json()["disputes"]
    )
    pages += [browser.get(f"/review/cases/{d['case_pk']}").text for d in disputes[:5]]
    shown = "\n".join(pages)
    for column, values in personal_values(world["service_world"]).items():
        leaked = [v for v in values if v in shown]
        assert not leaked, f"{column} shown: {leaked[:3]}"


def test_funnel_of_a_world_our_simulator_did_not_make(settings, tmp_path) -> None:
    """The foreign world (Chinese headers, xlsx pool, its own actions and outcomes): the funnel's
    counts, recomputed here from its files with pandas."""
    from ingestion.importer import import_file
    from serving.review.funnel import funnel
    from tests.foreign_world import build as build_foreign

    paths = build_foreign(tmp_path / "foreign", n_cases=600)
    ledger = make_engine(settings)
    for table in ("mediators", "cases", "contact_checks", "capacity", "litigation", "events"):
        assert import_file(table, paths[table], settings, ledger, received_at=None).rejected == 0
    cases = pd.read_excel(paths["cases"], dtype=str)
    events = pd.read_csv(paths["events"], dtype=str, encoding="utf-8-sig")
    rank = pd.Series(1, index=events.index)  # every event of this world is an attempt or a close
    rank[events["结果"].isin(["reached", "refused", "promise_to_pay"])] = 2
    rank[events["结果"] == "agreement"] = 3
    rank[events["处置动作"] == "close"] = 7
    furthest = rank.groupby([events["债权机构"], events["案件编号"]]).max()
    rows = {row.creditor: row for row in funnel(ledger)}
    assert sum(row.cases for row in rows.values()) == len(cases)
    for creditor, group in cases.groupby("债权机构"):
        row = rows[creditor]
        mine = events[events["债权机构"] == creditor]
        assert row.cases == len(group)
        assert (
            row.reached
            == mine[mine["结果"].isin(["reached", "refused", "promise_to_pay", "agreement"])]["案件编号"].nunique()
        )
        assert row.settled == mine[mine["结果"] == "agreement"]["案件编号"].nunique()
        assert row.recovered == 0.0  # agreements promise money; only paid events recover it
        stages = furthest.loc[creditor].value_counts()
        expected = {
            "warning": stages.get(1, 0),
            "mediation": stages.get(2, 0),
            "agreement": stages.get(3, 0),
            "closed": stages.get(7, 0),
        }
        expected["new"] = len(group) - int(stages.sum())
        assert {k: v for k, v in row.by_stage.items() if v} == {k: int(v) for k, v in expected.items() if v}
    ledger.dispose()
