"""What every ``concord`` subcommand shares: the two consoles, one way to fail, timestamp and date parsers.

Messages for people go to stdout; errors go to stderr as one sentence with exit code 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, overload

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

    from ingestion.parsing import Parsed

console = Console()
errors = Console(stderr=True)

MODEL_NAMES = ("reachability", "settlement")  # what ``--model all`` trains
EFFECTS_MODEL = "action_effects"  # trained on its own: it learns from the events, not from sampled decisions


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
    from ingestion.parsing import parse_timestamp

    return _parsed(text, option, parse_timestamp).to_pydatetime()


def date(text: str | None, option: str) -> dt.date | None:
    """A command-line date in any contract form (2024-03-05, 2024/3/5, 2024年3月5日, ...), or None."""
    if text is None:
        return None
    from ingestion.parsing import parse_date

    return _parsed(text, option, parse_date).date()


def _parsed(text: str, option: str, parser: Callable[[pd.Series], Parsed]) -> Any:
    """The one value ``parser`` reads from ``text``; exit 2 with the parser's reason if it cannot."""
    import pandas as pd

    parsed = parser(pd.Series([text], dtype="string[pyarrow]"))
    if parsed.errors.notna().any():
        fail(f"{option} {parsed.errors.iloc[0]}: '{text}'.")
    return parsed.values.iloc[0]


def model_names(model: str) -> tuple[str, ...]:
    """The models a ``--model`` option names (``all`` for every one)."""
    if model == "all":
        return MODEL_NAMES
    if model not in (*MODEL_NAMES, EFFECTS_MODEL):
        fail(f"--model must be {', '.join((*MODEL_NAMES, EFFECTS_MODEL))} or all, not '{model}'.")
    return (model,)
