"""Request models of the service refuse what the ledger could not store as sent, naming the field as
the gate reports it (``events[i].amount``)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from serving.gate import error_body
from serving.schemas import EventsRequest


def _event(amount: object) -> dict[str, object]:
    return {
        "case_id": "C-1",
        "at": "2026-11-01T10:00:00",
        "action": "voice_call",
        "actor": "system",
        "outcome": "paid",
        "amount": amount,
    }


@pytest.mark.parametrize("amount", [0, 12, 12.3, 12.34, 10.1, 0.01, 99999999.99, 1e13, None])
def test_amounts_to_the_fen_are_accepted(amount: object) -> None:
    assert EventsRequest.model_validate({"events": [_event(amount)]}).events[0].amount == amount


@pytest.mark.parametrize("amount", [12.345, 0.001, 1e-05, 99999999.999])
def test_amounts_past_the_fen_are_refused_naming_the_event(amount: float) -> None:
    with pytest.raises(ValidationError) as caught:
        EventsRequest.model_validate({"events": [_event(1.5), _event(amount)]})
    # the body BentoML writes for a refused request, as the gate rewrites it
    raw = json.dumps(
        {
            "error": "invalid",
            "detail": caught.value.errors(include_input=False, include_url=False, include_context=False),
        }
    )
    body = error_body(400, raw.encode())
    assert body["field"] == "events[1].amount"
    assert "2 decimal places" in body["error"]
