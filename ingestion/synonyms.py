"""The synonym table: how banks spell the contract's enum values and headers, kept as
configuration (``synonyms.yaml`` shipped here, plus the file named in ``CONCORD_SYNONYMS``),
validated on load with one sentence naming the bad key.

Owns loading and checking the table (:func:`load_synonyms`) and the spellings a column
accepts, for every row or for one creditor's rows (:meth:`Synonyms.choices`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from concord.settings import Settings
from ingestion.contracts import TABLES, Column

SHIPPED = Path(__file__).with_name("synonyms.yaml")


class SynonymError(ValueError):
    """A synonym file that cannot be used; the message names the file and the bad key."""


def spelling_key(text: str) -> str:
    """A spelling as enum values are compared: trimmed, full-width folded, lower case."""
    return unicodedata.normalize("NFKC", text).strip().lower()


def _enum_columns() -> dict[str, Column]:
    """Every column with a fixed set of values, by name (the same name has the same values in
    every table)."""
    return {c.name: c for table in TABLES.values() for c in table.columns if c.choices}


def _column_names() -> set[str]:
    return {c.name for table in TABLES.values() for c in table.columns}


@dataclass(frozen=True)
class Synonyms:
    """Spellings beyond the contract's: values (column -> spelling key -> value), headers (column
    -> header spellings), and values that hold for one creditor's rows only."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    creditors: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def choices(self, column: Column, creditor: str | None = None) -> dict[str, str]:
        """Spelling -> contract value for ``column``: the contract's, the table's, and the
        creditor's (each later one winning)."""
        merged = {spelling_key(k): v for k, v in (column.choices or {}).items()}
        merged.update(self.values.get(column.name, {}))
        if creditor is not None:
            merged.update(self.creditors.get(creditor, {}).get(column.name, {}))
        return merged

    def merged(self, other: Synonyms) -> Synonyms:
        """These synonyms with ``other``'s added (``other`` wins where both spell a value)."""
        values = {c: {**self.values.get(c, {}), **other.values.get(c, {})} for c in {*self.values, *other.values}}
        headers = {c: (*self.headers.get(c, ()), *other.headers.get(c, ())) for c in {*self.headers, *other.headers}}
        creditors = {
            name: {
                c: {**self.creditors.get(name, {}).get(c, {}), **other.creditors.get(name, {}).get(c, {})}
                for c in {*self.creditors.get(name, {}), *other.creditors.get(name, {})}
            }
            for name in {*self.creditors, *other.creditors}
        }
        return Synonyms(values, headers, creditors)


def _spellings(source: str, key: str, raw: object) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str | int) and str(s).strip() for s in raw):
        raise SynonymError(f"{source}: {key} must be a list of spellings (text), not {raw!r}.")
    return [str(s) for s in raw]


def _values(source: str, prefix: str, raw: object) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SynonymError(f"{source}: {prefix} must map contract columns to their values' spellings.")
    columns = _enum_columns()
    out: dict[str, dict[str, str]] = {}
    for name, by_value in raw.items():
        if name not in columns:
            raise SynonymError(
                f"{source}: {prefix}.{name} is not a contract column with fixed values ({', '.join(sorted(columns))})."
            )
        if not isinstance(by_value, Mapping):
            raise SynonymError(f"{source}: {prefix}.{name} must map each value of {name} to its spellings.")
        allowed = sorted(set((columns[name].choices or {}).values()))
        out[name] = {}
        for value, spellings in by_value.items():
            if value not in allowed:
                raise SynonymError(
                    f"{source}: {prefix}.{name}.{value} is not a value of {name} ({', '.join(allowed)})."
                )
            for spelling in _spellings(source, f"{prefix}.{name}.{value}", spellings):
                key = spelling_key(spelling)
                if out[name].get(key, value) != value:
                    raise SynonymError(
                        f"{source}: {prefix}.{name}.{value} spells '{spelling}', which "
                        f"{prefix}.{name}.{out[name][key]} spells too."
                    )
                out[name][key] = value
    return out


def _parse(source: str, raw: object) -> Synonyms:
    if raw is None:
        return Synonyms()
    if not isinstance(raw, Mapping):
        raise SynonymError(f"{source}: the file must be a mapping with values, columns and creditors.")
    unknown = sorted(set(raw) - {"values", "columns", "creditors"})
    if unknown:
        raise SynonymError(f"{source}: {unknown[0]} is not a section of a synonym file (values, columns, creditors).")
    headers: dict[str, tuple[str, ...]] = {}
    names = _column_names()
    for name, spellings in (raw.get("columns") or {}).items():
        if name not in names:
            raise SynonymError(f"{source}: columns.{name} is not a contract column.")
        headers[name] = tuple(_spellings(source, f"columns.{name}", spellings))
    creditors: dict[str, dict[str, dict[str, str]]] = {}
    for creditor, body in (raw.get("creditors") or {}).items():
        prefix = f"creditors.{creditor}"
        if not isinstance(body, Mapping) or set(body) - {"values"}:
            raise SynonymError(f"{source}: {prefix} may hold only values (the spellings of this creditor's rows).")
        name = unicodedata.normalize("NFKC", str(creditor)).strip()  # as the importer normalises cells
        creditors[name] = _values(source, f"{prefix}.values", body.get("values"))
    return Synonyms(_values(source, "values", raw.get("values")), headers, creditors)


def read_synonyms(path: Path) -> Synonyms:
    """One synonym file, checked.

    Raises:
        SynonymError: unreadable, not YAML, or a key that is not a contract column or value.
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SynonymError(f"synonym file {path} cannot be read ({error.strerror}).") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SynonymError(f"synonym file {path} is not valid YAML{where}.") from error
    return _parse(f"synonym file {path}", raw)


def load_synonyms(settings: Settings) -> Synonyms:
    """The shipped synonyms, with those of ``CONCORD_SYNONYMS`` added when it names a file."""
    synonyms = read_synonyms(SHIPPED)
    if settings.synonyms_file is not None:
        synonyms = synonyms.merged(read_synonyms(settings.synonyms_file))
    return synonyms
