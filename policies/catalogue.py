"""The action catalogue (``policies/catalogue.yaml``): every action of CONTRACTS.md with its channel,
cost in CNY, performer, whom it contacts, whether it is sensitive, and its preconditions.

A policy may add actions; it may not rename or drop those of ``concord.vocabulary.ACTIONS``.
Preconditions are conditions over case facts (``policies/conditions.py``); an action whose
precondition fails is not eligible, whatever the workflow stage allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from concord.vocabulary import ACTIONS
from policies.conditions import ALWAYS, Condition, parse_condition
from policies.facts import known_facts
from policies.schema import Node

PERFORMERS = ("system", "mediator", "lawyer", "court")
CONTACTS = ("debtor", "third_party", "none")  # whom the action reaches: the debtor, someone else, nobody
NO_CHANNEL = "none"


@dataclass(frozen=True)
class Action:
    """One action: what it costs, who does it, whom it contacts, and when it may be taken."""

    name: str
    zh: str
    channel: str  # contact method counted by the caps; "none" for actions that contact nobody
    cost_cny: float
    performer: str
    contact: str
    sensitive: bool  # asset freezes, orders, suits, referrals: never explored at random, reviewed
    requires: Condition
    description: str

    @property
    def contacts_someone(self) -> bool:
        """Whether the action reaches a person (the debtor or a third party)."""
        return self.contact != "none"


@dataclass(frozen=True)
class Catalogue:
    """The actions in catalogue order (the order breaks ties between equal values)."""

    version: str
    channels: tuple[str, ...]
    actions: tuple[Action, ...]

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.actions)

    def index(self, name: str) -> int:
        """Position of the action ``name`` in the catalogue."""
        return self.names.index(name)

    def __getitem__(self, name: str) -> Action:
        return self.actions[self.index(name)]

    def costs(self) -> np.ndarray:
        """Cost of each action in CNY, in catalogue order."""
        return np.array([a.cost_cny for a in self.actions], dtype=np.float64)

    def mask(self, names: tuple[str, ...]) -> np.ndarray:
        """Boolean mask over the catalogue of the actions ``names``."""
        return np.isin(np.array(self.names, dtype=object), list(names))

    @property
    def contact_channels(self) -> tuple[str, ...]:
        """Channels on which some action contacts someone (the channels contact caps count)."""
        return tuple(ch for ch in self.channels if ch != NO_CHANNEL)


_ACTION_KEYS = ("zh", "channel", "cost_cny", "performer", "contact", "sensitive", "requires", "description")


def parse_catalogue(root: Node) -> Catalogue:
    """The catalogue from ``catalogue.yaml``'s top node."""
    top = root.mapping(allowed=("version", "channels", "actions"), required=("version", "channels", "actions"))
    channels = top["channels"].names(what="channel")
    if NO_CHANNEL not in channels:
        raise top["channels"].fail(f"must include '{NO_CHANNEL}' (for actions that contact nobody)")
    entries = dict(top["actions"].items())
    missing = [name for name in ACTIONS if name not in entries]
    if missing:
        raise top["actions"].fail(f"the catalogue must keep every contract action; missing: {', '.join(missing)}")
    names = tuple(entries)
    known = known_facts(channels, names)
    actions = []
    for name, node in entries.items():
        keys = node.mapping(allowed=_ACTION_KEYS, required=("channel", "cost_cny", "performer", "contact"))
        contact = keys["contact"].text(CONTACTS)
        channel = keys["channel"].text(channels)
        if contact != "none" and channel == NO_CHANNEL:
            raise keys["channel"].fail(f"'{name}' contacts the {contact.replace('_', ' ')}: give the channel it uses")
        actions.append(
            Action(
                name=name,
                zh=keys["zh"].text() if "zh" in keys else name,
                channel=channel,
                cost_cny=keys["cost_cny"].number(minimum=0),
                performer=keys["performer"].text(PERFORMERS),
                contact=contact,
                sensitive=keys["sensitive"].flag() if "sensitive" in keys else False,
                requires=parse_condition(keys["requires"], known) if "requires" in keys else ALWAYS,
                description=keys["description"].text() if "description" in keys else "",
            )
        )
    return Catalogue(version=str(top["version"].value), channels=channels, actions=tuple(actions))
