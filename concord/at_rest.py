"""Personal data at rest: every file Concord creates is readable by its owner only, where such
data lives under ``CONCORD_HOME``, and the check that ``concord doctor`` runs on their modes.

A process umask of 0o077 (:func:`restrict_new_files`, called where Concord starts: the CLI and
the service) covers every file any library writes for Concord (SQLite, MLflow, Feast, DuckDB,
parquet); explicit modes cover files that may already exist from before.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from concord.settings import Settings

OWNER_ONLY_UMASK = 0o077  # new files 0600, new folders 0700
OPEN_TO_OTHERS = 0o077  # permission bits for group and others: none may be set


def restrict_new_files() -> None:
    """Make every file and folder this process creates from now on readable by its owner only."""
    os.umask(OWNER_ONLY_UMASK)


def make_private(path: Path) -> None:
    """Take group and other permissions off ``path`` if it exists (a file made before the umask)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & OPEN_TO_OTHERS:
        os.chmod(path, mode & ~OPEN_TO_OTHERS)


@dataclass(frozen=True)
class Place:
    """Where one kind of personal data lives: ``path`` is None when it lives in a server."""

    what: str
    holds: str
    path: Path | None
    where: str


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).absolute()


def personal_data_places(settings: Settings) -> list[Place]:
    """Every place Concord keeps personal data or what protects it, embedded or on a server."""
    home = settings.home
    ledger_file = sqlite_file(settings.database_url)
    tracking = settings.mlflow_tracking_uri or f"sqlite:///{home / 'mlflow.db'}"
    mlflow_file = sqlite_file(tracking)

    def server(url: str) -> str:
        return make_url(url).render_as_string(hide_password=True)

    return [
        Place(
            "case ledger",
            "debtor names, masked ID numbers and phones, pseudonyms, amounts, histories",
            ledger_file,
            str(ledger_file) if ledger_file else server(settings.database_url),
        ),
        Place(
            "pseudonym key",
            "the secret that links a pseudonym to its ID number or phone",
            None if settings.configured_pseudonym_key else settings.key_file,
            "CONCORD_PSEUDONYM_KEY" if settings.configured_pseudonym_key else str(settings.key_file),
        ),
        Place(
            "import reports and rejected rows",
            "rejected rows as the bank sent them: names, ID numbers, phones",
            home / "imports",
            str(home / "imports"),
        ),
        Place(
            "demo worlds",
            "synthetic case pools in the contract shapes (raw identifiers, made up)",
            home / "demo",
            str(home / "demo"),
        ),
        Place(
            "feature store",
            "features by debtor pseudonym: offline parquet, registry, online store",
            home / "features",
            str(home / "features"),
        ),
        Place(
            "MLflow runs and registry",
            "metrics, training-set figures, holdout rows by pseudonym",
            mlflow_file,
            str(mlflow_file) if mlflow_file else server(tracking),
        ),
        Place("MLflow artifacts", "models, plots and reports", home / "mlartifacts", str(home / "mlartifacts")),
        _service_store(settings),
    ]


def _service_store(settings: Settings) -> Place:
    """The service's store: API key hashes, the audit trail (case ids, feature values by pseudonym,
    decisions), the decisions' state; its own SQLite file beside a SQLite ledger."""
    from concord.audit import audit_url

    url = audit_url(settings)
    path = sqlite_file(url)
    where = str(path) if path else make_url(url).render_as_string(hide_password=True)
    return Place(
        "service's store",
        "API key hashes, the audit trail and decisions: case ids, pseudonymised feature values, recommendations",
        path,
        where,
    )


@dataclass(frozen=True)
class ModeProblem:
    """A file or folder under ``CONCORD_HOME`` that others than its owner may read."""

    path: Path
    mode: int
    folder: bool

    def sentence(self) -> str:
        """One sentence naming the path, its mode and the command that fixes it."""
        kind, wanted = ("folder", "700") if self.folder else ("file", "600")
        return (
            f"{kind} {self.path} has mode {self.mode:04o}, readable by others than its owner: "
            f"run chmod {wanted} '{self.path}'."
        )


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for folder, folders, files in os.walk(root):
        for name in sorted(folders) + sorted(files):
            yield Path(folder) / name


def check_modes(settings: Settings) -> tuple[int, list[ModeProblem]]:
    """How many files and folders there are under ``CONCORD_HOME`` (and in the places of personal
    data kept elsewhere), and those that group or others may use; links are not followed."""
    roots = [settings.home]
    for place in personal_data_places(settings):
        if place.path is not None and not place.path.is_relative_to(settings.home):
            roots.append(place.path)
    checked, problems = 0, []
    for root in roots:
        if not root.exists():
            continue
        for path in _walk(root):
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            checked += 1
            mode = stat.S_IMODE(info.st_mode)
            if mode & OPEN_TO_OTHERS:
                problems.append(ModeProblem(path, mode, stat.S_ISDIR(info.st_mode)))
    return checked, problems
