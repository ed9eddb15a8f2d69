"""The state machine of a simulated case: outcome classes, stages and states, the actions each
stage offers, the transition table, and the step clock (days between steps, contact hours).

The logging policy (``policy.py``), the effect model (``effects.py``), the case histories
(``histories.py``) and the oracle (``oracle.py``) all speak in these codes.
"""

from __future__ import annotations

import numpy as np

from concord.vocabulary import ACTIONS, OUTCOMES

# Outcome classes of one step (what the state transition depends on), and close.
FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, REPAIR, CERT, CLOSE = range(9)
N_CLASSES = 8  # classes an action other than close can produce
# States. W states are (phone flag, line works): flag 0 none, 1 bad, 2 good.
W_NONE0, W_BAD0, W_BAD1, W_GOOD0, W_GOOD1, M0, M1, A0, A1, ST_PAID, ST_CERT, ST_DONE = range(12)
N_LIVE = 9  # W x5, M0, M1, A0, A1: states from which a reach or a settlement can still happen
W_FLAG = np.array([0, 1, 1, 2, 2])
W_LINE = np.array([0, 0, 1, 0, 1])

W_ACTIONS = (
    "sms_warning",
    "flash_sms",
    "similar_case_push",
    "voice_call",
    "contact_repair",
    "lawyer_letter",
    "asset_preservation",
    "pre_check_write_off",
    "payment_order",
)
M_ACTIONS = (
    "mediator_call",
    "video_mediation",
    "online_negotiation",
    "installment_offer",
    "lawyer_letter",
    "payment_order",
    "file_lawsuit",
)
A0_ACTIONS = ("notarized_agreement", "judicial_confirmation", "mediator_call")
A1_ACTIONS = ("mediator_call",)
MEDIATOR_ACTIONS = frozenset(
    {
        "mediator_call",
        "video_mediation",
        "online_negotiation",
        "installment_offer",
        "notarized_agreement",
        "judicial_confirmation",
        "file_lawsuit",
    }
)
ACTION_CODE = {name: i for i, name in enumerate(ACTIONS)}  # catalogue index of each action
OUTCOME_CODE = {name: i for i, name in enumerate(OUTCOMES)}  # vocabulary index of each outcome
CLOSE_ACTION = ACTION_CODE["close"]
WAIT_ACTION = ACTION_CODE["wait"]  # skip a step (never chosen by the logging policy)

GAP_MIN, GAP_MAX = 3, 7  # days between steps
DAY_START, DAY_SECONDS = 8 * 3600, 12 * 3600  # contact hours 08:00-20:00 local

# next state after an outcome class, per state (-1: impossible)
NEXT_STATE = np.full((12, 9), -1, dtype=np.int8)
for _s in range(5):
    NEXT_STATE[_s, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, REPAIR, CERT, CLOSE]] = (
        _s,
        M0,
        M1,
        A0,
        ST_PAID,
        A1,
        W_GOOD1,
        ST_CERT,
        ST_DONE,
    )
NEXT_STATE[M0, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, CLOSE]] = M0, M0, M1, A0, ST_PAID, A1, ST_DONE
NEXT_STATE[M1, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, CLOSE]] = M1, M0, M1, A0, ST_PAID, A1, ST_DONE
NEXT_STATE[A0, [FAIL, CONTACT, CERT, PAID, PARTIAL, CLOSE]] = A0, A0, A1, ST_PAID, A1, ST_DONE
NEXT_STATE[A1, [FAIL, CONTACT, PAID, PARTIAL, CLOSE]] = A1, M0, ST_PAID, A1, ST_DONE
NEXT_STATE[ST_PAID, CLOSE] = ST_DONE
NEXT_STATE[ST_CERT, CLOSE] = ST_DONE
del _s

GROUPS = ("W", "M", "A0", "A1", "PC")  # stage groups, in the codes group_of returns
STAGE_ACTIONS = {"W": W_ACTIONS, "M": M_ACTIONS, "A0": A0_ACTIONS, "A1": A1_ACTIONS, "PC": ()}  # before close


def group_of(state: np.ndarray) -> np.ndarray:
    """0 W, 1 M, 2 A0, 3 A1, 4 P/C."""
    return np.select([state <= W_GOOD1, state <= M1, state == A0, state == A1], [0, 1, 2, 3], 4)


def draw(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row of ``probs`` with uniforms ``u``; zero-probability columns never win."""
    cum = np.cumsum(probs, axis=1)
    return (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)
