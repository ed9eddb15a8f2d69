"""Effect profiles: named sets of action effects kept as data (``effect_profiles.yaml``), so
that a world whose actions work differently is a choice of name, not a change of code.

Loaded once and validated: a bad stage, action, feature or coefficient is refused with a
sentence that names its key. ``effects.py`` evaluates the terms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from simulator.states import M_ACTIONS, W_ACTIONS

PROFILES_FILE = Path(__file__).with_name("effect_profiles.yaml")
DEFAULT_PROFILE = "default"
FEATURES = ("intercept", "reachability", "capacity", "willingness", "assets", "willing_poor", "able_unwilling")
# stage -> effect -> the actions it may name
_SECTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "warning": {"reach": W_ACTIONS, "settle": W_ACTIONS},
    "mediation": {"contact": M_ACTIONS, "settle": M_ACTIONS},
}

Terms = tuple[tuple[str, float], ...]  # (feature, coefficient), in the order they are added


@dataclass(frozen=True)
class EffectProfile:
    """The action-specific terms of the effect model (logit scale), per stage and effect."""

    name: str
    description: str
    warning_reach: dict[str, Terms]
    warning_settle: dict[str, Terms]
    mediation_contact: dict[str, Terms]
    mediation_settle: dict[str, Terms]


def profile_names() -> tuple[str, ...]:
    """The names of the profiles in ``effect_profiles.yaml``, in file order."""
    return tuple(_load_file())


def effect_profile(name: str) -> EffectProfile:
    """The profile called ``name``; ValueError naming the known profiles if there is none."""
    profiles = _load_file()
    if name not in profiles:
        raise ValueError(f"unknown effect profile '{name}': use one of {', '.join(profiles)}")
    return profiles[name]


@functools.lru_cache(maxsize=1)
def _load_file() -> dict[str, EffectProfile]:
    raw = yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{PROFILES_FILE.name}: expected a mapping of profile names to profiles")
    return {str(name): _parse_profile(str(name), body) for name, body in raw.items()}


def _parse_profile(name: str, body: object) -> EffectProfile:
    where = f"{PROFILES_FILE.name}: profile '{name}'"
    if not isinstance(body, dict):
        raise ValueError(f"{where} must be a mapping with description, warning and mediation")
    unknown = set(body) - {"description", *_SECTIONS}
    if unknown:
        raise ValueError(f"{where} has unknown key '{sorted(unknown)[0]}'")
    sections: dict[str, dict[str, Terms]] = {}
    for stage, effects in _SECTIONS.items():
        stage_body = body.get(stage) or {}
        if not isinstance(stage_body, dict):
            raise ValueError(f"{where}: {stage} must be a mapping of {', '.join(effects)}")
        for key in stage_body:
            if key not in effects:
                raise ValueError(f"{where}: {stage}.{key} is not one of {', '.join(effects)}")
        for effect, actions in effects.items():
            sections[f"{stage}_{effect}"] = _parse_effect(f"{where}: {stage}.{effect}", stage_body.get(effect), actions)
    return EffectProfile(name=name, description=str(body.get("description", "")), **sections)


def _parse_effect(where: str, body: object, actions: tuple[str, ...]) -> dict[str, Terms]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError(f"{where} must map actions to terms")
    parsed: dict[str, Terms] = {}
    for action, terms in body.items():
        if action not in actions:
            raise ValueError(f"{where}.{action} is not an action of this stage ({', '.join(actions)})")
        if not isinstance(terms, dict) or not terms:
            raise ValueError(f"{where}.{action} must map features to coefficients")
        pairs = []
        for feature, coefficient in terms.items():
            if feature not in FEATURES:
                raise ValueError(f"{where}.{action}.{feature} is not a feature ({', '.join(FEATURES)})")
            is_number = isinstance(coefficient, int | float) and not isinstance(coefficient, bool)
            if not is_number or not math.isfinite(coefficient):
                raise ValueError(f"{where}.{action}.{feature} must be a finite number, not {coefficient!r}")
            pairs.append((str(feature), float(coefficient)))
        parsed[str(action)] = tuple(pairs)
    return parsed
