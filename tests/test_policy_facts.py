"""Facts: history facts a caller did not give fall back on the features, and never on themselves."""

from __future__ import annotations

import numpy as np

from policies.facts import Facts


def test_opted_out_total_without_history_or_feature_is_zero_not_a_recursion() -> None:
    facts = Facts({"case_id": ["C1", "C2"]}, 2)
    assert facts["opted_out_total"].tolist() == [0.0, 0.0]
    assert facts["opted_out_sms"].tolist() == [0.0, 0.0]


def test_channel_opt_outs_fall_back_on_the_total_when_no_history_is_given() -> None:
    facts = Facts({"opted_out_total": [0, 2, np.nan]}, 3)
    assert facts["opted_out_voice"].tolist() == [0.0, 1.0, 0.0]
    given = Facts({"opted_out_total": [2], "opted_out_voice": [0]}, 1)
    assert given["opted_out_voice"].tolist() == [0.0]
