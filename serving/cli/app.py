"""The ``concord`` command: one Typer application with a subcommand per job.

Each command group lives in its own module; this one only assembles them (``concord --help``).
"""

from __future__ import annotations

import typer

from serving.cli import evaluate, features, imports, models, policy, reviews, service, world
from serving.cli.common import console, fail
from serving.cli.doctor import doctor_command

app = typer.Typer(
    help="Concord: who should work each debt case, and what to do next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _check_settings() -> None:
    """Concord: who should work each debt case, and what to do next."""
    from concord.at_rest import restrict_new_files
    from concord.settings import get_settings

    restrict_new_files()  # every file any command writes holds or protects personal data
    try:
        get_settings()
    except ValueError as error:
        fail(f"{error}.")


db_app = typer.Typer(help="The case ledger's database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger schema to the latest version."""
    from concord.db import make_engine
    from concord.settings import get_settings

    engine = make_engine(get_settings())
    console.print(f"ledger ready at {engine.url.render_as_string(hide_password=True)}")


features_app = typer.Typer(
    help="The Feast feature store: offline tables, registry, online store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
features_app.command("build")(features.build_command)
features_app.command("apply")(features.apply_command)
features_app.command("materialize")(features.materialize_command)

models_app = typer.Typer(help="Champion/challenger governance of the registered models.", no_args_is_help=True)
models_app.command("promote")(models.promote_command)
models_app.command("rollback")(models.rollback_command)
models_app.command("history")(models.history_command)

app.add_typer(db_app, name="db")
app.command("doctor")(doctor_command)
app.command("import")(imports.import_command)
app.command("simulate")(world.simulate_command)
app.command("demo")(world.demo_command)
app.add_typer(features_app, name="features")
app.command("profile")(features.profile_command)
app.command("train")(models.train_command)
app.add_typer(models_app, name="models")
app.command("score")(models.score_command)

policy_app = typer.Typer(help="The policy: workflows, catalogue, guardrails (YAML in policies/).", no_args_is_help=True)
policy_app.command("check")(policy.policy_check_command)
disputes_app = typer.Typer(help="Disputes (异议) raised by debtors.", no_args_is_help=True)
disputes_app.command("resolve")(policy.resolve_dispute_command)

app.command("recommend")(policy.recommend_command)
app.command("evaluate-policy")(evaluate.evaluate_policy_command)
app.command("assign")(policy.assign_command)
app.command("litigation-list")(policy.litigation_list_command)
app.add_typer(policy_app, name="policy")
app.add_typer(disputes_app, name="disputes")

keys_app = typer.Typer(help="API keys of the service (stored hashed; shown once).", no_args_is_help=True)
keys_app.command("create")(service.keys_create_command)
keys_app.command("revoke")(service.keys_revoke_command)
audit_app = typer.Typer(help="The service's hash-chained audit trail.", no_args_is_help=True)
audit_app.command("verify")(service.audit_verify_command)
audit_app.command("reviews")(reviews.reviews_command)
events_app = typer.Typer(help="Events the service acknowledged.", no_args_is_help=True)
events_app.command("sync")(service.events_sync_command)

app.command("serve")(service.serve_command)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(events_app, name="events")
