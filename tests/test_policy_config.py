"""Policy YAML is data, checked on load: a wrong key, a bad value, an unknown name or a cycle in a
workflow's transitions gets one sentence naming the file and the key, and `concord` exits 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from policies.config import PACKAGED, load_policy
from policies.schema import PolicyError
from serving.cli.app import app


def policy_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir(parents=True)
    for path in PACKAGED.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


def edit(folder: Path, name: str, change) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def refusal(folder: Path) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy(folder)
    message = str(caught.value)
    assert message.count(". ") == 0 and message.endswith("."), message  # one sentence
    return message


def test_the_shipped_policy_loads_with_both_workflows() -> None:
    policy = load_policy()
    assert set(policy.workflows) == {"five_level", "one_plus_x"}
    assert policy.version.startswith("2026.11.1+") and len(policy.version.split("+")[1]) == 12
    assert {
        "quiet_hours",
        "unanswered_dials_per_day",
        "connected_calls_per_day",
        "third_party",
        "disputed",
        "opted_out",
        "scope",
        "write_off_certificate",
    } <= set(policy.guardrails.ids())
    assert "regulation_f_7_in_7" not in policy.guardrails.ids()  # shipped, but disabled


def test_a_wrong_key_is_named_with_its_file_and_path(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    edit(folder, "guardrails.yaml", lambda d: d["caps"][1].update(limt=3))
    message = refusal(folder)
    assert "guardrails.yaml: caps[1].limt: unknown key 'limt'" in message


def test_a_bad_value_is_named(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    edit(folder, "guardrails.yaml", lambda d: d["caps"][0].update(limit="six"))
    assert "guardrails.yaml: caps[0].limit: must be a whole number at least 1, not 'six'" in refusal(folder)


def test_an_unknown_fact_or_action_is_named(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    edit(
        folder,
        "workflow_five_level.yaml",
        lambda d: d["stages"]["warning"]["next"][2]["when"].update(fact="ever_reachd"),
    )
    assert "workflow_five_level.yaml: stages.warning.next[2].when.fact: unknown fact 'ever_reachd'" in refusal(folder)
    folder = policy_copy(tmp_path / "b")
    edit(folder, "workflow_one_plus_x.yaml", lambda d: d["stages"]["mediation"]["actions"].append("text_message"))
    assert "stages.mediation.actions[6]: unknown action 'text_message'" in refusal(folder)


def test_a_cycle_in_the_transitions_is_refused(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    edit(
        folder,
        "workflow_five_level.yaml",
        lambda d: d["stages"]["mediation"]["next"].append({"to": "warning", "when": {"fact": "refused_total"}}),
    )
    message = refusal(folder)
    assert "workflow_five_level.yaml: stages: the transitions form a cycle" in message
    assert "warning -> mediation -> warning" in message


def test_the_catalogue_keeps_every_contract_action(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    edit(folder, "catalogue.yaml", lambda d: d["actions"].pop("payment_order"))
    assert "catalogue.yaml: actions: the catalogue must keep every contract action; missing: payment_order" in (
        refusal(folder)
    )


def test_the_version_follows_the_content(tmp_path) -> None:
    folder = policy_copy(tmp_path)
    before = load_policy(folder).version
    edit(folder, "claims.yaml", lambda d: d.update(legal_cap_annual_rate=0.2))
    after = load_policy(folder).version
    assert before.split("+")[0] == after.split("+")[0] and before != after


def test_cli_exits_2_with_one_sentence(tmp_path, settings) -> None:
    folder = policy_copy(tmp_path)
    edit(
        folder,
        "workflow_one_plus_x.yaml",
        lambda d: d["stages"]["litigation"]["next"].append({"to": "pre_check", "when": True}),
    )
    runner = CliRunner()
    result = runner.invoke(app, ["policy", "check", "--policy", str(folder)])
    assert result.exit_code == 2
    assert "workflow_one_plus_x.yaml: stages: the transitions form a cycle: litigation -> pre_check -> " in (
        result.output.replace("\n", "")
    )
    good = runner.invoke(app, ["policy", "check"])
    assert good.exit_code == 0 and load_policy().version in good.output
    workflow = runner.invoke(app, ["recommend", "--all", "--out", str(tmp_path / "x.csv"), "--workflow", "seven"])
    assert workflow.exit_code == 2 and "unknown workflow 'seven'" in workflow.output
