"""The effect model: what each action does to a case, as outcome-class probabilities per
stage (warning, mediation, after an agreement), from the debtor's hidden traits.

sigma is the logistic function; the intercepts come from ``Calibration``, the action-specific
terms from an effect profile (``profiles.py``). ``docs/simulator.md`` (the effect model) states
every formula.
"""

from __future__ import annotations

import numpy as np

from simulator.arrays import sigmoid
from simulator.calibration import Calibration
from simulator.population import Traits
from simulator.profiles import EffectProfile, Terms
from simulator.states import (
    A0_ACTIONS,
    AGREE,
    CERT,
    CONTACT,
    FAIL,
    M1,
    M_ACTIONS,
    N_CLASSES,
    PAID,
    PARTIAL,
    PROMISE,
    REPAIR,
    W_ACTIONS,
    W_LINE,
)

# warning actions that need a working line to reach anyone
PHONE_CHANNELS = frozenset({"sms_warning", "flash_sms", "similar_case_push", "voice_call"})


def contact_classes(
    r: np.ndarray, s: np.ndarray, paid_share: np.ndarray, agree_share: np.ndarray, promise: np.ndarray
) -> np.ndarray:
    """Split contact probability ``r`` (n, A) into outcome classes: a (n, A, 8) view.

    ``s`` = P(settle | contact), ``paid_share`` = P(paid in full | settle), ``agree_share`` =
    P(agreement | settle, not paid in full), ``promise`` (n,) = P(promise | contact, no settle).
    """
    out = np.zeros((N_CLASSES,) + r.shape)  # class planes are contiguous
    settle = r * s
    out[PAID] = settle * paid_share
    unpaid = settle - out[PAID]
    out[AGREE] = unpaid * agree_share
    out[PARTIAL] = unpaid - out[AGREE]
    rest = r - settle
    out[PROMISE] = rest * promise[:, None]
    out[CONTACT] = rest - out[PROMISE]
    out[FAIL] = 1 - r
    return out.transpose(1, 2, 0)


def q_warning(t: Traits, line: np.ndarray, cal: Calibration, profile: EffectProfile) -> np.ndarray:
    """Outcome-class probabilities (n, len(W_ACTIONS), 8) of each warning-stage action."""
    n = len(line)
    ln = line.astype(float)
    aw = np.asarray(cal.reach_w)[t.ct]
    features = _Features(t)
    r = np.zeros((n, len(W_ACTIONS)))
    for action, terms in profile.warning_reach.items():
        j = W_ACTIONS.index(action)
        reach = sigmoid(np.asarray(features.add(aw, terms)))
        r[:, j] = ln * reach if action in PHONE_CHANNELS else reach
    h = np.zeros((n, len(W_ACTIONS)))
    for action, terms in profile.warning_settle.items():
        h[:, W_ACTIONS.index(action)] = features.add(None, terms)
    base = np.asarray(cal.settle_m)[t.ct] - 1.0 + 0.9 * t.zw + 0.5 * t.zc
    s = sigmoid(base[:, None] + h)
    paid_share = sigmoid(-0.5 + 0.9 * t.zc - 0.6 * t.lpr)[:, None]
    out = contact_classes(r, s, paid_share, np.full((1, 1), 0.7), sigmoid(-0.6 + 0.7 * t.zw))
    repair = sigmoid(cal.repair + 0.9 * t.zr)
    out[:, 4, :] = 0.0
    out[:, 4, REPAIR] = repair
    out[:, 4, FAIL] = 1 - repair
    out[:, 7, :] = 0.0
    out[:, 7, CERT] = 1.0
    return out


def q_mediation(t: Traits, promised: np.ndarray, cal: Calibration, profile: EffectProfile) -> np.ndarray:
    """Outcome-class probabilities (n, len(M_ACTIONS), 8) once the debtor has been reached."""
    n = len(promised)
    m = promised.astype(float)
    features = _Features(t)
    gamma = np.zeros((n, len(M_ACTIONS)))
    for action, terms in profile.mediation_contact.items():
        gamma[:, M_ACTIONS.index(action)] = features.add(None, terms)
    c = sigmoid((np.asarray(cal.contact_m)[t.ct] + 0.8 * t.zr + 0.6 * m)[:, None] + gamma)
    h = np.zeros((n, len(M_ACTIONS)))
    for action, terms in profile.mediation_settle.items():
        h[:, M_ACTIONS.index(action)] = features.add(None, terms)
    base = np.asarray(cal.settle_m)[t.ct] + 0.9 * t.zw + 0.5 * t.zc + 0.8 * m
    s = sigmoid(base[:, None] + h)
    paid = sigmoid(-0.5 + 0.9 * t.zc - 0.6 * t.lpr)
    paid_share = np.repeat(paid[:, None], len(M_ACTIONS), axis=1)
    paid_share[:, 3] *= 0.3
    agree_share = np.full((1, len(M_ACTIONS)), 0.6)
    agree_share[0, 3] = 0.85
    return contact_classes(c, s, paid_share, agree_share, sigmoid(-0.5 + 0.7 * t.zw))


def q_agreed(t: Traits, formalised: bool) -> np.ndarray:
    """Outcome-class probabilities after an agreement: (n, 3, 8) for A0, (n, 1, 8) for A1."""
    n = len(t.zr)
    c = sigmoid(1.0 + 0.5 * t.zr)
    if not formalised:
        out = np.zeros((n, len(A0_ACTIONS), N_CLASSES))
        out[:, 0:2, CERT] = 0.95
        out[:, 0:2, FAIL] = 0.05
        pay = sigmoid(-0.5 + 0.8 * t.zc + 0.5 * t.zw)
        out[:, 2, PAID] = c * pay
        out[:, 2, PARTIAL] = c * (1 - pay) * 0.6
        out[:, 2, CONTACT] = c * (1 - pay) * 0.4
        out[:, 2, FAIL] = 1 - c
        return out
    out = np.zeros((n, 1, N_CLASSES))
    pay = sigmoid(-0.8 + 0.8 * t.zc + 0.6 * t.zw)
    part = sigmoid(0.5 + 0.8 * t.zw)
    out[:, 0, PAID] = c * pay
    out[:, 0, PARTIAL] = c * (1 - pay) * part
    out[:, 0, CONTACT] = c * (1 - pay) * (1 - part)  # refuses to go on paying: back to mediation
    out[:, 0, FAIL] = 1 - c
    return out


def outcome_probs(state: np.ndarray, t: Traits, group: str, cal: Calibration, profile: EffectProfile) -> np.ndarray:
    """Outcome-class probabilities (n, A, 8) of every non-close action of the group."""
    if group == "W":
        return q_warning(t, W_LINE[state], cal, profile)
    if group == "M":
        return q_mediation(t, state == M1, cal, profile)
    if group == "A0":
        return q_agreed(t, formalised=False)
    return q_agreed(t, formalised=True)


class _Features:
    """The profile's features of some rows, each computed once when a term first asks for it."""

    def __init__(self, t: Traits) -> None:
        self._t = t
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            t = self._t
            self._cache[name] = {
                "reachability": lambda: t.zr,
                "capacity": lambda: t.zc,
                "willingness": lambda: t.zw,
                "assets": lambda: t.assets,
                "willing_poor": lambda: sigmoid(2 * t.zw) * sigmoid(-2 * t.zc),
                "able_unwilling": lambda: sigmoid(2 * t.zc) * sigmoid(-2 * t.zw),
            }[name]()
        return self._cache[name]

    def add(self, start: np.ndarray | None, terms: Terms) -> np.ndarray | float:
        """``start`` plus the terms, added one by one in the profile's order (``None``: start at 0)."""
        total: np.ndarray | float | None = start
        for feature, coefficient in terms:
            term = coefficient if feature == "intercept" else coefficient * self[feature]
            total = term if total is None else total + term
        return 0.0 if total is None else total
