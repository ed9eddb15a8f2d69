"""What every ``concord`` subcommand shares: the two consoles, one way to fail, one timestamp parser.

Messages for people go to stdout; errors go to stderr as one sentence with exit code 2.
"""

from __future__ import annotations

import datetime as dt
from typing import NoReturn, overload

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)

MODEL_NAMES = ("reachability", "settlement")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one sentence to stderr and exit with ``code``."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@overload
def timestamp(text: str, option: str) -> dt.datetime: ...


@overload
def timestamp(text: None, option: str) -> None: ...


def timestamp(text: str | None, option: str) -> dt.datetime | None:
    """A command-line timestamp in any contract form (naive = Asia/Shanghai) as aware UTC, or None."""
    if text is None:
        return None
    import pandas as pd

    from ingestion.parsing import parse_timestamp

    parsed = parse_timestamp(pd.Series([text], dtype="string[pyarrow]"))
    if parsed.errors.notna().any():
        fail(f"{option} {parsed.errors.iloc[0]}: '{text}'.")
    return parsed.values.iloc[0].to_pydatetime()


def model_names(model: str) -> tuple[str, ...]:
    """The models a ``--model`` option names (``all`` for every one)."""
    if model == "all":
        return MODEL_NAMES
    if model not in MODEL_NAMES:
        fail(f"--model must be {', '.join(MODEL_NAMES)} or all, not '{model}'.")
    return (model,)
