"""The pure parts of outbound calls: the state table, outcomes read from OriginateResponse as capture 15
shows them, and the CRM record folded from the outbound facts (what a replay rebuilds)."""

from __future__ import annotations

import pytest

from acd import events as acd
from ctiserver.crm_history.records import CallRecords, rows
from ctiserver.journal import facts as f
from ctiserver.outbound import states as s
from ctiserver.outbound.states import IllegalMove, Outbound, next_state, outcome_of
from pbxsim.captures import capture


def _capture_reasons() -> dict[str, tuple[str, int]]:
    """Capture 15: far-end extension -> (Response, Reason) of its OriginateResponse."""
    out: dict[str, tuple[str, int]] = {}
    for r in capture("15"):
        text = r.payload.decode(errors="replace")
        if r.direction == "<<<" and "Event: OriginateResponse" in text:
            fields = dict(line.split(": ", 1) for line in text.split("\r\n") if ": " in line)
            name = fields["Channel"].split("/")[1].split("@")[0]
            out[name] = (fields["Response"], int(fields["Reason"]))
    return out


def test_outcomes_of_every_originate_in_capture_15() -> None:
    seen = {name: outcome_of(resp == "Success", reason) for name, (resp, reason) in _capture_reasons().items()}
    assert seen == {"busy": s.BUSY, "congestion": s.FAILED, "noanswer": s.NO_ANSWER, "rejected": s.FAILED,
                    "human": s.ANSWERED, "machine": s.ANSWERED, "silence": s.ANSWERED}


def test_a_failure_never_reads_as_answered() -> None:
    assert outcome_of(False, 4) == s.FAILED


def test_the_table_walks_the_call_and_refuses_shortcuts() -> None:
    state = Outbound.DIALLING_AGENT
    for trigger in ("agent_answered", "dial_customer", "ringing", "answered", "end"):
        state = next_state(state, trigger)
    assert state is Outbound.ENDED
    with pytest.raises(IllegalMove):
        next_state(Outbound.DIALLING_AGENT, "answered")  # the customer is never dialled before the agent
    with pytest.raises(IllegalMove):
        next_state(Outbound.ENDED, "end")


def _fold(*bodies: tuple[float, object]) -> CallRecords:
    records = CallRecords()
    for seq, (at, body) in enumerate(bodies, 1):
        records.apply(f.Fact(seq, at, body), [])
    return records


def test_answered_outbound_row() -> None:
    records = _fold(
        (100.0, f.OutboundDialling("cti-out-1-1001", "1001", "+8613800000003", 7, "Wang", "click_to_call", "sales")),
        (103.0, f.OutboundProgress("cti-out-1-1001", "agent_answered", "1001")),
        (110.0, f.OutboundProgress("cti-out-1-1001", "connected", "1001")),
        (150.0, acd.OutboundEnded("1001", "cti-out-1-1001", "answered", "caller", "sales")),
    )
    rec = records.get("cti-out-1-1001")
    assert rec is not None and rec.direction == "outbound"
    rec.parts[0].ended_at = 150.0  # the agent's move to wrap-up, which the router's decision brings
    [row] = rows(rec)
    assert (row.direction, row.outcome, row.agent, row.caller, row.customer_id, row.answered_at, row.hung_up_by) \
        == ("outbound", "answered", "1001", "+8613800000003", 7, 110.0, "caller")
    assert row.talk_s == 40.0


def test_busy_outbound_row_names_the_agent() -> None:
    records = _fold(
        (100.0, f.OutboundDialling("cti-out-2-1001", "1001", "+8613800000009")),
        (104.0, acd.OutboundEnded("1001", "cti-out-2-1001", "busy", "unknown")),
    )
    rec = records.get("cti-out-2-1001")
    assert rec is not None
    [row] = rows(rec)
    assert (row.direction, row.outcome, row.agent, row.answered_at, row.ended_at) == \
        ("outbound", "busy", "1001", None, 104.0)


def test_a_call_ended_fact_does_not_end_an_outbound_record() -> None:
    records = _fold(
        (100.0, f.OutboundDialling("cti-out-3-1001", "1001", "555")),
        (101.0, f.CallEnded("cti-out-3-1001", 16, "Normal Clearing", "agent")),
    )
    rec = records.get("cti-out-3-1001")
    assert rec is not None and rec.live  # only acd.outbound_ended ends it, with its outcome


def test_outbound_facts_round_trip_the_codec() -> None:
    for body in (f.OutboundDialling("c", "a", "1", None, "", "callback", "q", "cb-1"),
                 f.OutboundProgress("c", "connected", "a"), acd.OutboundStarted("a", "c", "q"),
                 acd.OutboundEnded("a", "c", "busy", "unknown", "q")):
        kind, text = f.encode(body)
        assert f.decode(kind, text) == body
