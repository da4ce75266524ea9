"""A day built as a journal, every figure computed by hand (docs/reports.md), checked in the stored 15-minute
cells, the day's roll-up and the reports; on SQLite and on the real PostgreSQL server.

The day (seconds from a 15-minute boundary; queues support (SL 20 s, short abandon 5 s) and sales):
  0    a logs in (support); 1 b logs in (support + sales)
  10   c1 into support via the IVR flow "main": a rings, answers at 15 (wait 5), hangs up at 75, wraps up
       until 85; the caller rates the call 4 at 80
  20   c2 into support: b rings, no answer at 30 (b not responding until 100); c2 gives up at 33 (wait 13)
  40   c3 into support, gives up at 42 (wait 2: a short abandon)
  200  c4 into sales: b answers at 230 (wait 30), holds 260-270, transfers it to support at 300, wraps up
       until 310; a answers it at 305 (wait 5 in support) and talks until the caller hangs up at 905
  400  c5 into flow "main" and served there (ends at 410)
  935  a's wrap-up ends by the timer; 940 a pauses (break), b pauses (lunch)
  950  the server's last sign of life; it starts again at 1000 (a gap)
  1000 c6 into support, nobody free; asks for a callback at 1010; b is ready at 1100 and takes it at 1110,
       hangs up at 1130, wraps up until 1135
  1120 c7 into support, lost at 1125 by a PBX restart
  1800 a heartbeat closes the second interval
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acd import events as ev
from acd.config import parse_config
from crmstore import reports as store_ops
from crmstore.plan import Fetch
from crmstore.store import CrmStore
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder
from ctiserver.reports.engine import Query, run_report
from ctiserver.reports.writer import ReportsWriter

T0 = 1_800_000_000  # a 15-minute boundary (and 2027-01-15 08:00 UTC)
QUEUES = """\
skills: [support, sales]
pause_reasons: [break, lunch]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 30, service_level: {percent: 80, within_s: 20},
     short_abandon_s: 5, announce_every_s: 0}
  - {name: sales, skills: {sales: 1}, wrap_up_s: 30, announce_every_s: 0}
agents:
  - {id: a, name: A, skills: {support: 1}, queues: [support], endpoint: PJSIP/a}
  - {id: b, name: B, skills: {support: 1, sales: 1}, queues: [support, sales], endpoint: PJSIP/b}
"""
CONFIG = parse_config(QUEUES, "<day>")


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def arrive(r: Recorder, call_id: str, flow: str | None = None) -> None:
    r.record(f.CallArrived(call_id, "pbx1", f"PJSIP/pstn-{call_id}", "13800138000", "", "5551000"))
    if flow:
        r.record(f.IvrStarted(call_id, flow, False))


def the_day(store: CrmStore) -> tuple[Recorder, Projector]:
    clock = Clock()
    projector = Projector(CONFIG, tz=UTC)
    journal = Journal(store, clock)
    r = Recorder(journal, projector, lambda: ("<day>", QUEUES), checkpoint_facts=10**9)
    projector.listeners.append(ReportsWriter(projector.intervals, journal, UTC))

    def at(t: float, *bodies: object) -> None:
        clock.now = T0 + t
        for body in bodies:
            out = r.record(body)
            assert not [x for x in out if type(x).__name__ == "Refusal"], (t, body, out)

    at(0, ev.AgentLoggedIn("a"))
    at(1, ev.AgentLoggedIn("b"))
    clock.now = T0 + 10
    arrive(r, "c1", "main")
    at(10, ev.CallEnqueued("c1", "support"))
    at(11, ev.OfferRinging("c1", "a"))
    at(15, ev.OfferAnswered("c1", "a"))
    clock.now = T0 + 20
    arrive(r, "c2")
    at(20, ev.CallEnqueued("c2", "support"))
    at(30, ev.OfferFailed("c2", "b", "no-answer"))
    at(33, ev.CallerHungUp("c2"), f.CallEnded("c2", 16, "", "caller"))
    clock.now = T0 + 40
    arrive(r, "c3")
    at(40, ev.CallEnqueued("c3", "support"))
    at(42, ev.CallerHungUp("c3"), f.CallEnded("c3", 16, "", "caller"))
    at(75, ev.AgentCallEnded("a", "c1", "agent"))
    at(76, f.CallEnded("c1", 16, "", "agent"))
    at(80, f.SurveyAnswered("c1", 4))
    at(85, ev.WrapUpDone("a"))
    at(100, ev.AgentReady("b"))
    clock.now = T0 + 200
    arrive(r, "c4")
    at(200, ev.CallEnqueued("c4", "sales"))
    at(230, ev.OfferAnswered("c4", "b"))
    at(260, ev.HoldStarted("c4"))
    at(270, ev.HoldEnded("c4"))
    at(300, ev.TransferToQueue("c4", "b", "support"))
    at(305, ev.OfferAnswered("c4", "a"))
    at(310, ev.WrapUpDone("b"))
    clock.now = T0 + 400
    arrive(r, "c5", "main")
    at(410, f.CallEnded("c5", 16, "", "caller"))
    at(905, ev.AgentCallEnded("a", "c4", "caller"), f.CallEnded("c4", 16, "", "caller"))
    at(940, ev.AgentPaused("a", "break"), ev.AgentPaused("b", "lunch"))
    at(950, f.Heartbeat())
    at(1000, f.ServerStarted("test", T0 + 950))
    clock.now = T0 + 1000
    arrive(r, "c6")
    at(1000, ev.CallEnqueued("c6", "support"))
    at(1010, ev.CallbackRequested("c6"))
    at(1100, ev.AgentReady("b"))
    at(1110, ev.OfferAnswered("c6", "b"))
    clock.now = T0 + 1120
    arrive(r, "c7")
    at(1120, ev.CallEnqueued("c7", "support"))
    at(1125, ev.CallLeftQueue("c7", "lost: PBX restart"))
    at(1130, ev.AgentCallEnded("b", "c6", "agent"))
    at(1135, ev.WrapUpDone("b"))
    at(1800, f.Heartbeat())
    return r, projector


def _rows(sql: str, *args: object):  # type: ignore[no-untyped-def]
    got = yield Fetch(sql, args)
    return [tuple(x) for x in got]


async def cells(store: CrmStore, grain: str, start: int) -> dict[tuple[str, str, str], dict[str, float]]:
    rows = await store.read_plan(store_ops.read_cells(grain, start, start + 1))
    return {(x.queue, x.agent, x.flow): dict(x.values) for x in rows}


def nonzero(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v}


async def test_the_hand_computed_day(store: CrmStore) -> None:
    r, _ = the_day(store)
    await r.journal.flush()
    first = await cells(store, "15m", T0)
    assert nonzero(first[("support", "", "")]) == {
        "offered": 4, "answered": 2, "answered_in_sl": 2, "abandoned": 2, "short_abandoned": 1,
        "wait_answered_s": 10.0, "wait_abandoned_s": 15.0, "wait_max_s": 13.0, "offers": 3, "ring_no_answer": 1,
        "handled": 1, "talk_s": 60.0, "wrapup_s": 10.0, "surveys": 1, "survey_sum": 4,
        "aw_0": 2, "ab_0": 1, "ab_2": 1, "tk_1": 1}
    assert nonzero(first[("sales", "", "")]) == {
        "offered": 1, "answered": 1, "wait_answered_s": 30.0, "wait_max_s": 30.0, "offers": 1, "aw_3": 1,
        "handled": 1, "talk_s": 60.0, "hold_s": 10.0, "wrapup_s": 10.0, "transferred": 1, "tk_2": 1}
    assert nonzero(first[("support", "a", "")]) == {
        "answered": 2, "answered_in_sl": 2, "wait_answered_s": 10.0, "offers": 2, "handled": 1, "talk_s": 60.0,
        "wrapup_s": 10.0, "surveys": 1, "survey_sum": 4, "tk_1": 1}
    assert nonzero(first[("support", "b", "")]) == {"offers": 1, "ring_no_answer": 1}
    assert nonzero(first[("sales", "b", "")]) == {
        "answered": 1, "wait_answered_s": 30.0, "offers": 1, "handled": 1, "talk_s": 60.0, "hold_s": 10.0,
        "wrapup_s": 10.0, "transferred": 1, "tk_2": 1}
    assert nonzero(first[("", "a", "")]) == {
        "login_s": 900.0, "available_s": 225.0, "reserved_s": 10.0, "on_call_s": 655.0, "wrap_up_s": 10.0}
    assert nonzero(first[("", "b", "")]) == {
        "login_s": 899.0, "available_s": 709.0, "reserved_s": 40.0, "on_call_s": 60.0, "on_hold_s": 10.0,
        "wrap_up_s": 10.0, "not_responding_s": 70.0}
    assert nonzero(first[("", "", "main")]) == {"ivr_calls": 2, "ivr_contained": 1}

    second = await cells(store, "15m", T0 + 900)
    assert nonzero(second[("support", "", "")]) == {
        "offered": 2, "answered": 1, "wait_answered_s": 110.0, "wait_max_s": 110.0, "aw_5": 1,
        "callbacks_requested": 1, "callbacks_answered": 1, "lost": 1, "offers": 1,
        "handled": 2, "talk_s": 620.0, "wrapup_s": 35.0, "tk_0": 1, "tk_4": 1}
    assert nonzero(second[("", "a", "")]) == {
        "login_s": 900.0, "on_call_s": 5.0, "wrap_up_s": 30.0, "available_s": 5.0, "paused_s": 860.0}
    assert nonzero(second[("", "b", "")]) == {
        "login_s": 900.0, "available_s": 705.0, "paused_s": 160.0, "reserved_s": 10.0, "on_call_s": 20.0,
        "wrap_up_s": 5.0}
    pauses = await store.read_plan(store_ops.read_pauses("15m", T0 + 900, T0 + 901))
    assert sorted(pauses) == [(T0 + 900, "a", "break", 860.0), (T0 + 900, "b", "lunch", 160.0)]
    assert await store.read_plan(store_ops.read_gaps(T0, T0 + 1800)) == [(T0 + 950.0, T0 + 1000.0)]

    # the day is the sum of its intervals, written as each closed
    day = await cells(store, "day", int(datetime.fromtimestamp(T0, UTC).replace(hour=0).timestamp()))
    assert day[("support", "", "")]["offered"] == 6 and day[("support", "", "")]["handled"] == 3
    assert day[("support", "", "")]["wait_max_s"] == 110.0
    assert day[("", "a", "")]["login_s"] == 1800.0

    # a report over the day: the figures of docs/reports.md
    q = Query("inbound-summary", datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 1800, UTC), "total")
    (support, sales) = sorted((await run_report(store, q, CONFIG)).rows, key=lambda x: x["queue"] != "support")
    assert support["queue"] == "support" and sales["queue"] == "sales"
    assert (support["offered"], support["answered"], support["abandoned"], support["short_abandoned"]) == (6, 3, 2, 1)
    assert support["service_level"] == 50.0  # 2 of (3 answered + 2 abandoned - 1 short)
    assert support["abandon_rate"] == pytest.approx(100 * 1 / 6, abs=0.1)  # short abandons apart
    assert support["asa"] == 40.0 and support["longest_wait"] == 110.0  # (5 + 5 + 110) / 3
    assert support["aht"] == pytest.approx((60 + 10 + 620 + 35) / 3, abs=0.1)
    assert (support["callbacks"], support["lost"]) == (1, 1)
    assert (sales["transferred"], sales["aht"]) == (1, 80.0)
    load = await run_report(store, Query("agent-load", q.first, q.stop, "total"), CONFIG)
    a = next(x for x in load.rows if x["agent"] == "a")
    assert (a["login"], a["paused"], a["pause:break"]) == (1800, 860, 860)
    assert a["occupancy"] == pytest.approx(100 * (10 + 660 + 40) / (10 + 660 + 40 + 230), abs=0.1)
    loss = await run_report(store, Query("call-loss", q.first, q.stop, "total", queues=("support",)), CONFIG)
    assert loss.rows[0]["lost_calls"] == 3 and loss.rows[0]["loss_rate"] == 50.0  # 2 abandoned + 1 lost of 6
    summary = await run_report(store, Query("inbound-summary", q.first, q.stop, "15m"), CONFIG)
    assert any("not running" in n for n in summary.notes)


# The queue_log grammar (docs/acd.md, app_queue's own lines in tests/captures 16): fields per verb.
GRAMMAR = {
    "ENTERQUEUE": 3, "CONNECT": 3, "RINGNOANSWER": 1, "COMPLETECALLER": (3, 4), "COMPLETEAGENT": 3,
    "TRANSFER": 5, "ABANDON": (3, 4), "EXITWITHKEY": 4, "EXITWITHTIMEOUT": 3, "AGENTLOGIN": 1,
    "AGENTLOGOFF": 2, "PAUSE": 1, "UNPAUSE": 1, "ADDMEMBER": 1, "REMOVEMEMBER": 1,
}


def parse_queue_log(text: str) -> list[tuple[int, str, str, str, str, list[str]]]:
    out = []
    for line in text.splitlines():
        epoch, call_id, queue, agent, verb, *data = line.split("|")
        assert epoch.isdigit() and len(epoch) == 10, line  # epoch seconds, an integer
        assert queue and "," not in queue and queue != "NONE" or verb in ("AGENTLOGIN", "AGENTLOGOFF"), line
        arity = GRAMMAR[verb]
        assert len(data) in (arity if isinstance(arity, tuple) else (arity,)), line
        out.append((int(epoch), call_id, queue, agent, verb, data))
    return out


def test_the_queue_log_reads_with_the_grammar_and_gives_the_same_figures(store: CrmStore) -> None:
    """A tool that reads only the queue_log (QueueMetrics, Asternic) finds the report's figures in it."""
    _, projector = the_day(store)
    lines = parse_queue_log("".join(projector.queue_log.pending))
    support = [x for x in lines if x[2] == "support"]
    verbs = [x[4] for x in support]
    entered = verbs.count("ENTERQUEUE")
    connected = [x for x in support if x[4] == "CONNECT"]
    abandons = [x for x in support if x[4] == "ABANDON" and x[5][3:] != ["lost"]]
    lost = [x for x in support if x[4] == "ABANDON" and x[5][3:] == ["lost"]]
    short = [x for x in abandons if int(x[5][2]) < 5]
    holdtimes = [int(x[5][0]) for x in connected]
    in_sl = [h for h in holdtimes if h <= 20]
    # the report's figures for support over the whole day (docs/reports.md)
    assert (entered, len(connected), len(abandons), len(short), len(lost)) == (6, 3, 2, 1, 1)
    assert 100 * len(in_sl) / (len(connected) + len(abandons) - len(short)) == 50.0
    assert sum(holdtimes) / len(holdtimes) == 40.0  # ASA
    assert max(holdtimes + [int(x[5][2]) for x in abandons]) == 110  # longest wait
    assert [x[4] for x in lines if x[2] == "sales" and x[1] == "c4"] == ["ENTERQUEUE", "CONNECT", "TRANSFER"]
    assert verbs.count("RINGNOANSWER") == 1 and verbs.count("COMPLETECALLER") == 1
