"""Compliance guardrails (``policies/guardrails.yaml``), checked on every recommendation.

Each rule has an id and a reason and blocks some actions for some cases:

- ``quiet_hours``: no contact between the configured hours, Asia/Shanghai (default 22:00-08:00);
- caps per debtor by channel, per calendar day (Asia/Shanghai) or per rolling 7 days, counting
  attempts, unanswered attempts or connected ones (defaults: the China Banking Association
  figures; a Regulation F style 7-in-7 cap ships disabled);
- ``third_party``: no third-party contact unless the debtor's number is invalid or the last N
  phone attempts all failed;
- ``after_settlement``: no contact once the case is paid in full, written off or closed;
- ``agreement_honoured``: no contact, and none of the listed legal actions, while an agreement
  is being honoured (an agreement or payment within the last N days);
- ``disputed``: no contact while a dispute (异议) is open, until a supervisor resolves it;
- ``opted_out``: nothing on a channel the debtor opted out of;
- ``scope``: no court action for a case outside the courts' small-claims scope;
- ``write_off_certificate``: no suit (or other listed action) once a 预查废 certificate is issued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from policies.catalogue import Catalogue
from policies.facts import Facts
from policies.schema import Node

COUNTS = {"attempts": ("today", "week"), "unanswered": ("today",), "connected": ("today", "week")}
WINDOWS = {"day": "today", "7d": "week"}


@dataclass(frozen=True)
class Rule:
    """A guardrail: ``blocked(facts, channel)`` says, per case, whether it blocks the actions it
    targets on ``channel`` (the rule's targets are the actions of ``targets``)."""

    id: str
    reason: str
    targets: tuple[str, ...]
    blocked: Callable[[Facts, str], np.ndarray]
    cap: Cap | None = None  # set for per-debtor caps, which a batch must also enforce across cases
    by_channel: bool = True  # False: ``blocked`` ignores the channel (asked once, not once per channel)
    # per catalogue (by identity): the columns of the targeted actions on each channel, found once
    # (and every channel's columns together, for a rule that ignores the channel)
    _columns: dict[int, tuple[Catalogue, tuple[tuple[str, np.ndarray], ...], np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _found(self, catalogue: Catalogue) -> tuple[Catalogue, tuple[tuple[str, np.ndarray], ...], np.ndarray]:
        found = self._columns.get(id(catalogue))
        if found is not None and found[0] is catalogue:
            return found
        by_channel: dict[str, list[int]] = {}
        for j, action in enumerate(catalogue.actions):
            if action.name in self.targets:
                by_channel.setdefault(action.channel, []).append(j)
        groups = tuple((channel, np.array(js, dtype=np.intp)) for channel, js in by_channel.items())
        everywhere = np.concatenate([columns for _, columns in groups]) if groups else np.zeros(0, dtype=np.intp)
        found = self._columns[id(catalogue)] = (catalogue, groups, everywhere)
        return found

    def columns(self, catalogue: Catalogue) -> tuple[tuple[str, np.ndarray], ...]:
        """Per channel, in catalogue order of first use, the catalogue columns this rule targets."""
        return self._found(catalogue)[1]

    def matrix(self, facts: Facts, catalogue: Catalogue) -> np.ndarray:
        """(cases x actions) True where this rule blocks the action for the case."""
        out = np.zeros((facts.n, len(catalogue.actions)), dtype=bool)
        _, groups, everywhere = self._found(catalogue)
        if not self.by_channel and groups:
            out[:, everywhere] = np.asarray(self.blocked(facts, groups[0][0]), dtype=bool).reshape(-1, 1)
            return out
        for channel, columns in groups:
            out[:, columns] = np.asarray(self.blocked(facts, channel), dtype=bool).reshape(-1, 1)
        return out


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` of ``count`` per debtor in the window, on each channel (``per: channel``)
    or on the channels together (``per: all``)."""

    channels: tuple[str, ...]
    per_channel: bool
    count: str  # attempts | unanswered | connected
    window: str  # today | week
    limit: int

    def fact(self, channel: str) -> str:
        return f"{channel}_{self.count}_{self.window}"

    def used(self, facts: Facts, channel: str) -> np.ndarray:
        """What the debtor has used of the cap that covers ``channel``."""
        if self.per_channel:
            return facts[self.fact(channel)]
        return np.sum([facts[self.fact(ch)] for ch in self.channels], axis=0)

    def group(self, channel: str) -> str:
        """The counter an action on ``channel`` draws from."""
        return channel if self.per_channel else "+".join(self.channels)


@dataclass(frozen=True)
class Guardrails:
    version: str
    rules: tuple[Rule, ...]

    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)


def _minutes(node: Node) -> int:
    text = node.text()
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2):
        raise node.fail(f"must be a time of day as HH:MM, not '{text}'")
    return int(hours) * 60 + int(minutes)


def _section(keys: dict[str, Node], name: str, allowed: tuple[str, ...]) -> dict[str, Node] | None:
    """A rule's settings, or None when the rule is absent or ``enabled: false``."""
    if name not in keys:
        return None
    section = keys[name].mapping(allowed=("enabled", "reason", *allowed))
    if "enabled" in section and not section["enabled"].flag():
        return None
    return section


def _reason(section: dict[str, Node], default: str) -> str:
    return section["reason"].text() if "reason" in section else default


def _at_night(facts: Facts, channel: str, *, start: int, end: int) -> np.ndarray:
    minute = facts["local_minute"]
    return (minute >= start) | (minute < end) if start > end else (minute >= start) & (minute < end)


def _line_alive(facts: Facts, channel: str, *, streak: int) -> np.ndarray:
    return (facts["number_invalid"] == 0) & (facts["failed_streak"] < streak)


def _honoured(facts: Facts, channel: str, *, days: float) -> np.ndarray:
    return (facts["agreement_signed"] > 0) & (facts["days_since_last_settled"] <= days)


def _over_cap(facts: Facts, channel: str, *, cap: Cap) -> np.ndarray:
    return cap.used(facts, channel) >= cap.limit


def parse_guardrails(root: Node, catalogue: Catalogue) -> Guardrails:
    """The rules of ``guardrails.yaml``, in the order they are reported."""
    top = root.mapping(
        allowed=(
            "version",
            "source",
            "quiet_hours",
            "caps",
            "third_party",
            "after_settlement",
            "agreement_honoured",
            "disputed",
            "opted_out",
            "scope",
            "write_off_certificate",
        ),
        required=("version",),
    )
    contact = tuple(a.name for a in catalogue.actions if a.contacts_someone)
    rules: list[Rule] = []
    if (s := _section(top, "quiet_hours", ("start", "end"))) is not None:
        rules.append(
            Rule(
                "quiet_hours",
                _reason(s, f"no contact from {s['start'].value} to {s['end'].value} Asia/Shanghai"),
                contact,
                partial(_at_night, start=_minutes(s["start"]), end=_minutes(s["end"])),
                by_channel=False,
            )
        )
    rules.extend(_caps(top["caps"], catalogue) if "caps" in top else [])
    if (s := _section(top, "third_party", ("min_failed_attempts",))) is not None:
        streak = s["min_failed_attempts"].whole(1)
        third = tuple(a.name for a in catalogue.actions if a.contact == "third_party")
        rules.append(
            Rule(
                "third_party",
                _reason(
                    s,
                    f"no third-party contact unless the debtor's number is invalid "
                    f"or {streak} attempts in a row failed",
                ),
                third,
                partial(_line_alive, streak=streak),
                by_channel=False,
            )
        )
    if (s := _section(top, "after_settlement", ())) is not None:
        rules.append(
            Rule(
                "after_settlement",
                _reason(s, "no contact after the case is settled, written off or closed"),
                contact,
                lambda f, _: f["finished"] > 0,
                by_channel=False,
            )
        )
    if (s := _section(top, "agreement_honoured", ("honour_days", "also_blocks"))) is not None:
        days = s["honour_days"].number(minimum=1)
        extra = s["also_blocks"].names(catalogue.names, "action") if "also_blocks" in s else ()
        rules.append(
            Rule(
                "agreement_honoured",
                _reason(
                    s,
                    f"no contact or suit while an agreement is honoured (a "
                    f"payment or agreement in the last {days:g} days)",
                ),
                tuple(dict.fromkeys((*contact, *extra))),
                partial(_honoured, days=days),
                by_channel=False,
            )
        )
    if (s := _section(top, "disputed", ())) is not None:
        rules.append(
            Rule(
                "disputed",
                _reason(s, "no contact while the debtor disputes the debt (异议) and no supervisor has resolved it"),
                contact,
                lambda f, _: f["dispute_open"] > 0,
                by_channel=False,
            )
        )
    if (s := _section(top, "opted_out", ())) is not None:
        on_channel = tuple(a.name for a in catalogue.actions if a.contacts_someone)
        rules.append(
            Rule(
                "opted_out",
                _reason(s, "the debtor opted out of this channel"),
                on_channel,
                lambda f, channel: f[f"opted_out_{channel}"] > 0,
            )
        )
    if (s := _section(top, "scope", ("actions",))) is not None:
        rules.append(
            Rule(
                "scope",
                _reason(
                    s, "the case is outside the courts' scope (a credit card, or a person's loan under 100,000 CNY)"
                ),
                s["actions"].names(catalogue.names, "action"),
                lambda f, _: f["in_scope"] == 0,
                by_channel=False,
            )
        )
    if (s := _section(top, "write_off_certificate", ("actions",))) is not None:
        rules.append(
            Rule(
                "write_off_certificate",
                _reason(s, "a pre-check write-off certificate (预查废) was issued"),
                s["actions"].names(catalogue.names, "action"),
                lambda f, _: f["certificate_issued"] > 0,
                by_channel=False,
            )
        )
    return Guardrails(version=str(top["version"].value), rules=tuple(rules))


def _caps(node: Node, catalogue: Catalogue) -> list[Rule]:
    rules = []
    seen: set[str] = set()
    for item in node.sequence():
        keys = item.mapping(
            allowed=("id", "reason", "enabled", "channels", "per", "count", "window", "limit"),
            required=("id", "channels", "count", "window", "limit"),
        )
        rule_id = keys["id"].text()
        if rule_id in seen:
            raise keys["id"].fail(f"the cap id '{rule_id}' is used twice")
        seen.add(rule_id)
        if "enabled" in keys and not keys["enabled"].flag():
            continue
        count = keys["count"].text(tuple(COUNTS))
        window = WINDOWS[keys["window"].text(tuple(WINDOWS))]
        if window not in COUNTS[count]:
            raise keys["window"].fail(f"{count} attempts are counted per day only")
        cap = Cap(
            channels=keys["channels"].names(catalogue.contact_channels, "contact channel"),
            per_channel=keys["per"].text(("channel", "all")) == "channel" if "per" in keys else True,
            count=count,
            window=window,
            limit=keys["limit"].whole(1),
        )
        targets = tuple(a.name for a in catalogue.actions if a.contacts_someone and a.channel in cap.channels)
        default = (
            f"at most {cap.limit} {count} attempts per debtor per "
            f"{'day' if window == 'today' else '7 days'} on {' and '.join(cap.channels)}"
            f"{' (each channel)' if cap.per_channel and len(cap.channels) > 1 else ''}"
        )
        rules.append(Rule(rule_id, _reason(keys, default), targets, partial(_over_cap, cap=cap), cap))
    return rules


def debtor_overflow(
    rule: Rule, facts: Facts, catalogue: Catalogue, chosen: np.ndarray, value: np.ndarray
) -> np.ndarray:
    """Cases whose chosen action would take a debtor past a cap once every case of the batch is
    counted: of a debtor's cases choosing actions on a capped channel, the most valuable keep the
    allowance left; the others are returned (True), to be ranked again without that action."""
    assert rule.cap is not None
    cap = rule.cap
    targets = catalogue.mask(rule.targets)
    rows = np.flatnonzero(targets[chosen])
    if rows.size < 2:
        return np.zeros(facts.n, dtype=bool)
    channels = np.array([catalogue.actions[j].channel for j in chosen[rows]], dtype=object)
    group_codes = pd.factorize(np.array([cap.group(ch) for ch in channels], dtype=object))[0]
    debtors = facts.text("debtor_key")[rows]
    debtor_codes = pd.factorize(debtors)[0].astype(np.int64)
    unknown = debtors == ""  # a case without a known debtor is its own debtor
    debtor_codes[unknown] = debtor_codes.max() + 1 + np.arange(int(unknown.sum()))
    keys = debtor_codes * (int(group_codes.max()) + 1) + group_codes
    allowance = np.empty(rows.size)
    for channel in np.unique(channels):
        here = channels == channel
        allowance[here] = cap.limit - cap.used(facts, str(channel))[rows[here]]
    order = np.lexsort((rows, -value[rows], keys))  # by counter, best value first, then case order
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    rank = np.arange(rows.size) - np.maximum.accumulate(np.where(starts, np.arange(rows.size), 0))
    over = np.zeros(facts.n, dtype=bool)
    over[rows[order[rank >= allowance[order]]]] = True
    return over
