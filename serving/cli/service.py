"""``concord serve``, ``concord keys create|revoke``, ``concord audit verify`` and ``concord events
sync``: running the service, its API keys, its audit trail and the events it acknowledged.

``serve`` migrates the ledger and the service's store, imports acknowledged events the ledger
lacks, then hands the process over to ``bentoml serve`` (no migrations in its workers).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import console, errors, fail

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the serving package


def prepare_service() -> None:
    """Migrate the ledger and the service's store, and import acknowledged events the ledger lacks."""
    from concord.audit import audit_engine
    from concord.db import make_engine
    from concord.settings import get_settings
    from serving.events import sync_events

    settings = get_settings()
    ledger, store = make_engine(settings), audit_engine(settings)
    try:
        done = sync_events(settings, ledger, store)
        if done.events:
            console.print(
                f"imported {done.imported:,} acknowledged events into the ledger "
                f"({done.unchanged:,} already there, {done.rejected:,} rejected)",
                highlight=False,
            )
    finally:
        ledger.dispose()
        store.dispose()


def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 3000,
    workers: Annotated[int, typer.Option(help="worker processes (each loads the models once)", min=1, max=32)] = 1,
    threads: Annotated[int, typer.Option(help="requests each worker runs at once", min=1, max=64)] = 4,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log every request (method, path, status, time)")
    ] = True,
) -> None:
    """Start the next-best-action service (BentoML) on HOST:PORT, after migrating the databases."""
    prepare_service()
    options = [f"services.concord.workers={workers}", f"services.concord.threads={threads}"]
    if not access_log:
        options.append("services.concord.logging.access.enabled=false")
    os.environ["CONCORD_SERVE_WORKERS"] = str(workers)  # serving.spread: connections spread over them
    # BentoML keeps its Prometheus files in BENTOML_HOME/prometheus_multiproc_dir and empties that
    # folder whenever a service starts: two services sharing the default home (~/bentoml) on one
    # machine erased each other's metrics. Each Concord home gets its own unless BENTOML_HOME is set.
    from concord.settings import get_settings

    os.environ.setdefault("BENTOML_HOME", str(get_settings().home / "bentoml"))
    os.environ["BENTOML_CONFIG_OPTIONS"] = " ".join([os.environ.get("BENTOML_CONFIG_OPTIONS", ""), *options]).strip()
    console.print(
        f"serving on http://{host}:{port} (OpenAPI at /openapi.json, readiness at /readyz)",
        highlight=False,
        soft_wrap=True,
    )
    sys.stdout.flush()
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [
        str(bentoml),
        "serve",
        "serving.service:NextBestAction",
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(ROOT),
    ]
    os.execv(command[0], command)  # the service takes this process over: signals reach it directly


def keys_create_command(
    role: Annotated[str, typer.Option(help="platform, supervisor, court, data_scientist or admin")],
    creditor: Annotated[str | None, typer.Option(help="a platform key's creditor (its cases only)")] = None,
    court: Annotated[str | None, typer.Option(help="a court key's court (its own list only)")] = None,
) -> None:
    """Make an API key; the key is printed once, as the last word of the output."""
    from concord import audit
    from concord.settings import get_settings
    from serving.auth import authenticate, check_scope, create_key

    try:
        check_scope(role, creditor, court)
    except ValueError as error:
        fail(f"{error}.")
    engine = audit.audit_engine(get_settings())
    try:
        raw = create_key(engine, role, creditor, court)
        principal = authenticate(engine, raw)
        assert principal is not None
        with engine.begin() as connection:
            audit.append(
                connection,
                "key",
                {"key_id": principal.key_id, "role": role, "creditor": creditor, "court": court, "event": "created"},
                actor="cli",
            )
    finally:
        engine.dispose()
    scope = f" for creditor '{creditor}'" if creditor else (f" for court '{court}'" if court else "")
    console.print(f"{role} key {principal.key_id}{scope} made; it is shown only now, keep it safe:", highlight=False)
    print(raw)


def keys_revoke_command(key_id: Annotated[int, typer.Argument(help="the key's id (printed when it was made)")]) -> None:
    """Revoke a key: the service refuses it within seconds."""
    from concord import audit
    from concord.settings import get_settings
    from serving.auth import revoke_key

    engine = audit.audit_engine(get_settings())
    try:
        if not revoke_key(engine, key_id):
            fail(f"no active key {key_id}.")
        with engine.begin() as connection:
            audit.append(connection, "key", {"key_id": key_id, "event": "revoked"}, actor="cli")
    finally:
        engine.dispose()
    console.print(f"key {key_id} revoked", highlight=False)


def audit_verify_command() -> None:
    """Check the audit trail's hash chain from its first record; exit 1 naming the first broken one."""
    from concord import audit
    from concord.settings import get_settings

    engine = audit.audit_engine(get_settings())
    try:
        result = audit.verify(engine)
    finally:
        engine.dispose()
    if not result.ok:
        errors.print(f"[bold red]error:[/] {result.sentence()}.", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(result.sentence(), highlight=False)


def events_sync_command() -> None:
    """Import the events the service acknowledged that the ledger lacks (the service does this every
    CONCORD_EVENT_SYNC_SECONDS on its own)."""
    from concord.audit import audit_engine
    from concord.db import make_engine
    from concord.settings import get_settings
    from serving.events import sync_events

    settings = get_settings()
    ledger, store = make_engine(settings), audit_engine(settings)
    try:
        done = sync_events(settings, ledger, store)
    finally:
        ledger.dispose()
        store.dispose()
    console.print(
        f"{done.events:,} acknowledged events read: imported {done.imported:,}, unchanged "
        f"{done.unchanged:,}, rejected {done.rejected:,}; the ledger has every event through audit "
        f"record {done.through_seq:,}",
        highlight=False,
        soft_wrap=True,
    )
