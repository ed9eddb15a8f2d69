"""The review page end to end in headless Chromium (Debian's ``chromium``, driven by Playwright)
against the real service (``concord serve`` -> ``bentoml serve``) on a copy of the session world:
a supervisor logs in, filters the queue, opens a case, reads the explanation, overrides it with a
reason and finds the override in the audit trail, and the platform sees the new state through
``decision_status``; court and platform keys get 403.

Screenshots of the queue and the case view go to ``CONCORD_TEST_SCREENSHOTS`` (default
``var/screenshots`` in the repository). Without ``/usr/bin/chromium`` these tests skip, saying so,
unless ``CONCORD_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from concord.settings import Settings
from tests.conftest import REQUIRE_SERVICES
from tests.review_world import open_case_refs, personal_values, review_env
from tests.service_world import ROOT, Service, make_key

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("CONCORD_TEST_SCREENSHOTS") or ROOT / "var" / "screenshots")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian chromium (checked before any service is started)."""
    if not CHROMIUM.exists():
        message = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; CONCORD_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(f"{message}; the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(chromium, service_world: str, tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("review-browser")
    env = review_env(service_world, root)
    settings = Settings.from_env(env)
    refs = open_case_refs(settings)
    keys = {
        "supervisor": make_key(env, "supervisor"),
        "court": make_key(env, "court", "--court", "晋江市人民法院"),
        "platform": make_key(env, "platform", "--creditor", refs[0]["creditor"]),
    }
    service = Service(env, root / "service.log").start()
    try:
        answer = httpx.post(
            f"{service.url}/next_best_action",
            json={"cases": refs},
            timeout=300,
            headers={"Authorization": f"Bearer {keys['supervisor']}"},
        )
        assert answer.status_code == 200, answer.text
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield {
            "url": service.url,
            "keys": keys,
            "results": answer.json()["results"],
            "log": root / "service.log",
            "browser": chromium,
            "service_world": service_world,
            "platform_creditor": refs[0]["creditor"],
        }
    finally:
        service.stop()


def new_page(site: dict[str, Any]) -> Any:
    context = site["browser"].new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    return context.new_page()


def log_in(site: dict[str, Any], role: str) -> tuple[Any, int]:
    """A page after submitting the login form with the role's key, and the form's answer status."""
    page = new_page(site)
    page.goto(f"{site['url']}/review/login")
    page.fill("input[name=key]", site["keys"][role])
    with page.expect_response(lambda r: r.url.endswith("/review/login") and r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return page, posted.value.status


@pytest.mark.parametrize("role", ["court", "platform"])
def test_court_and_platform_keys_cannot_open_the_page(site, role) -> None:
    answer = httpx.get(f"{site['url']}/review/queue", headers={"Authorization": f"Bearer {site['keys'][role]}"})
    assert answer.status_code == 403
    page, status = log_in(site, role)
    assert status == 403 and "仅限主管" in page.content()
    assert page.goto(f"{site['url']}/review/queue").url.endswith("/review/login")  # no session was made
    page.context.close()


def test_a_supervisor_filters_opens_explains_overrides_and_finds_it_in_the_audit_trail(site) -> None:
    pending = [r for r in site["results"] if r["approval"] == "pending"]
    assert pending, "the 1+X chain proposes asset freezes and payment orders: some must wait for approval"
    target = pending[0]
    page, status = log_in(site, "supervisor")
    assert status == 303 or page.url.endswith("/review/queue")
    assert page.url.endswith("/review/queue") and "待复核队列" in page.content()
    cookie = next(c for c in page.context.cookies() if c["name"] == "concord_review")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.select_option("select[name=creditor]", target["creditor"])
    page.click("#filters button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("#queue tbody tr")
    assert rows.count() == sum(1 for r in pending if r["creditor"] == target["creditor"])
    assert all(target["creditor"] in rows.nth(i).inner_text() for i in range(rows.count()))
    page.screenshot(path=str(SCREENSHOTS / "review-queue.png"), full_page=True)

    page.click(f"a[href$='/decisions/{target['decision_id']}']")
    page.wait_for_load_state()
    assert page.locator("svg.waterfall").count() == 2  # both scores explained
    explanation = page.locator("#explanation").inner_text()
    assert "对数几率" in explanation and "校准前" in explanation
    assert "平均起点" in explanation and "原始分数" in explanation
    assert page.locator("#approval").inner_text() == "待审批"
    page.screenshot(path=str(SCREENSHOTS / "review-case.png"), full_page=True)

    choices = page.locator("#override-action option").evaluate_all("options => options.map(o => o.value)")
    blocked = {b["action"] for b in target["blocked"]}
    assert choices and target["action"] not in choices and not blocked & set(choices)
    other = "mediator_call" if "mediator_call" in choices else choices[0]
    page.select_option("#override-action", other)
    page.fill("#override-reason", "债务人已回电，先安排调解员联系")
    page.click("#override")
    page.wait_for_load_state()
    assert page.locator("#approval").inner_text() == "已改判"

    page.goto(f"{site['url']}/review/audit?kind=review&case_id={target['case_id']}&verify=1")
    trail = page.locator("#audit").inner_text()
    assert "债务人已回电，先安排调解员联系" in trail and "override" in trail
    assert "审计链完整" in page.locator("#chain").inner_text()

    status_of = httpx.post(
        f"{site['url']}/decision_status",
        json={"decision_ids": [target["decision_id"]]},
        headers={"Authorization": f"Bearer {site['keys']['supervisor']}"},
    ).json()
    state = status_of["decisions"][0]
    assert (state["approval"], state["final_action"], state["may_act"]) == ("overridden", other, True)

    page.click("#lang")
    page.wait_for_load_state()
    assert "Supervisor review" in page.content()
    page.context.close()


def test_the_platform_sees_pending_until_a_supervisor_approves(site) -> None:
    pending = [r for r in site["results"] if r["approval"] == "pending"][1:]  # the first is overridden above
    platform = site["platform_creditor"]
    target = next((r for r in pending if r["creditor"] == platform), pending[-1])
    ask = {"decision_ids": [target["decision_id"]]}

    def state(role: str) -> dict[str, Any]:
        return httpx.post(
            f"{site['url']}/decision_status", json=ask, headers={"Authorization": f"Bearer {site['keys'][role]}"}
        ).json()

    before = state("supervisor")["decisions"][0]
    assert (before["approval"], before["final_action"], before["may_act"]) == ("pending", None, False)
    if target["creditor"] != platform:  # another creditor's decision is unknown to this platform key
        assert state("platform") == {"decisions": [], "unknown": [target["decision_id"]]}
    page, _ = log_in(site, "supervisor")
    page.goto(f"{site['url']}/review/decisions/{target['decision_id']}")
    page.click("#approve")
    page.wait_for_load_state()
    assert page.locator("#approval").inner_text() == "已批准"
    for role in ("supervisor", "platform") if target["creditor"] == platform else ("supervisor",):
        after = state(role)["decisions"][0]
        assert (after["approval"], after["final_action"], after["may_act"]) == ("approved", target["action"], True)
    page.context.close()


def test_no_raw_personal_data_on_the_pages_or_in_the_log(site) -> None:
    page, _ = log_in(site, "supervisor")
    shown = []
    for path in ("/review/queue?status=all", "/review/audit", "/review/funnel", "/review/models"):
        page.goto(f"{site['url']}{path}")
        shown.append(page.content())
    for result in site["results"][:10]:
        page.goto(f"{site['url']}/review/decisions/{result['decision_id']}")
        shown.append(page.content())
    text = "\n".join(shown) + site["log"].read_text(errors="replace")
    for column, values in personal_values(site["service_world"]).items():
        leaked = [v for v in values if v in text]
        assert not leaked, f"{column} shown: {leaked[:3]}"
    page.context.close()
