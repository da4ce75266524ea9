"""CRM work from the consoles: the customer's card and its edits, tickets, the agent's follow-up worklist and
its calls, the supervisors' churn list and grading on demand. The gateway has checked the role and that a
call_id is the agent's; here the CRM's own ids are checked (whose follow-up, which call), and the store's
refusals become one-line `Refused` replies: nothing is written then.

A follow-up call is an outbound leg named ``cti-fu-<follow-up>-<ms>-<agent>`` (calls/legs.py), originated
through the same call control as click-to-call. Calling it and saving what came of it are journaled; the
CRM's row of the call and the follow-up's new state go in the journal's batch with the second fact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from crmstore import queries as Q
from crmstore.errors import CrmConflict, CrmError, CrmNotFound, CrmPermissionError
from crmstore.journal import JournalRow, read_rows_between, seq_at
from crmstore.model import FollowUpKind, FollowUpStatus, TicketStatus
from crmstore.plan import Plan
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import period_ending
from crmstore.validation import InvalidField
from crmstore.work import CrmWork, FollowUpCall, save_follow_up_call

from ..bus import EventBus
from ..callmodel import events as ce
from ..calls import legs
from ..gateway.auth import Principal
from ..gateway.backend import Refused
from ..gateway.schema import to_wire
from ..journal import facts as f
from ..journal.journal import JournalClosed
from ..reports.engine import Query, ReportError, run_report

if TYPE_CHECKING:
    from .backend import ConsoleBackend

_SAVE_TIMEOUT_S = 3.0
_KEEP_DIALS = 1000
_CALLED_WITHIN_S = 60.0  # the call's fact is journaled once the agent answers: well inside this of its id's time
# The agent's phone rings this long before the customer is dialled: the command waits for that answer, so
# it must end inside the gateway's 10 s command timeout. Rung longer (a real desk phone answered after
# 12 s), the console was told "did not answer in time" while the PBX went on to dial the customer, and the
# call was never journaled nor could be saved.
FOLLOW_UP_RING_S = 8.0
GRADING_DAYS = 365  # as the daily schedule (crmstore.schedule.grade_now)


@dataclass(slots=True)
class _Dial:
    """A follow-up call this server originated, until the agent saves what came of it."""

    follow_up_id: int
    agent_id: str
    customer_id: int
    number: str
    started_at: float
    answered_at: float | None = None  # the customer answered (the agent's phone answered before: ringing)
    ended_at: float | None = None


def _id(args: Mapping[str, object], key: str) -> int:
    value = args[key]
    assert isinstance(value, int)  # the schema checked it (Int)
    return value


def _called_fact(call_id: str, placed_at: float, last_seq: int) -> Plan[dict[str, object] | None]:
    """The body of a call's `crm.follow_up_called` fact: the journal has no index by call, so the rows of
    the minute after the call was placed are found along the primary key (crmstore.journal.seq_at)."""
    first = yield from seq_at(placed_at - 1.0, last_seq)
    rows: list[JournalRow] = yield from read_rows_between(placed_at - 1.0, placed_at + _CALLED_WITHIN_S,
                                                          first - 1, 20_000)
    for _seq, _at, kind, row_call, _agent, body in rows:
        if kind == "crm.follow_up_called" and row_call == call_id:
            found = json.loads(body)
            return found if isinstance(found, dict) else None
    return None


def _refusal(e: CrmError) -> Refused:
    if isinstance(e, InvalidField):
        return Refused("invalid_value", str(e), e.field)
    if isinstance(e, CrmNotFound):
        return Refused("not_found", str(e))
    if isinstance(e, CrmPermissionError):
        return Refused("forbidden", str(e))
    if isinstance(e, CrmConflict):
        return Refused("already_closed" if "already closed" in str(e) else "conflict", str(e))
    return Refused("not_saved", str(e))


class CrmConsole:
    def __init__(self, console: ConsoleBackend, bus: EventBus) -> None:
        self.console = console
        self.work = CrmWork(console.crm)
        self._dials: dict[str, _Dial] = {}  # follow-up call id -> its facts so far
        # When each follow-up call's customer answered: the model may say so before the Originate's answer
        # reaches the command that registers the dial (a customer who picks up at once).
        self._answered: dict[str, float] = {}
        bus.subscribe(ce.LegHungUp, self._on_leg_hung_up)
        bus.subscribe(ce.CallConnected, self._on_connected)

    def _viewer(self, who: Principal) -> Viewer:
        return Viewer(who.username, CrmRole(str(who.role)))

    async def command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        handler = getattr(self, "_" + command)
        try:
            return await handler(who, args)
        except CrmError as e:
            raise _refusal(e) from None
        except JournalClosed:
            raise Refused("stopping", "the server is stopping; try again in a moment") from None

    # ------------------------------------------------------------------ the customer

    async def _customer_open(self, who: Principal, args: Mapping[str, object]) -> object:
        return await self.work.customer_file(_id(args, "customer_id"), self._viewer(who))

    async def _customer_save(self, who: Principal, args: Mapping[str, object]) -> object:
        raw = {k: v for k, v in args.items() if k != "customer_id"}
        cid = _id(args, "customer_id") if "customer_id" in args else None
        saved = await self.work.save_customer(cid, raw, self._viewer(who))
        return {"customer_id": saved}

    async def search(self, who: Principal, query: str, limit: int) -> list[dict[str, object]]:
        """Search results as cards with the customer's flags: a blacklisted customer shows in the list."""
        out = []
        for card, flags in await self.work.search(query, self._viewer(who), limit):
            row = to_wire(card)
            assert isinstance(row, dict)
            row["flags"] = to_wire(flags)
            out.append(row)
        return out

    # ------------------------------------------------------------------ tickets

    async def _ticket_open(self, who: Principal, args: Mapping[str, object]) -> object:
        call = str(args.get("call_id", ""))
        note = str(args.get("note", "")) + (f" (call {call})" if call else "")
        tid = await self.work.open_ticket(_id(args, "customer_id"), str(args["subject"]), self._viewer(who),
                                          category=str(args.get("category", "complaint")), note=note.strip())
        return {"ticket_id": tid}

    async def _ticket_update(self, who: Principal, args: Mapping[str, object]) -> object:
        tid = _id(args, "ticket_id")
        days = args.get("follow_up_days")
        fid = await self.work.set_ticket_status(
            tid, TicketStatus(str(args["status"])), self._viewer(who), note=str(args.get("note", "")),
            follow_up_owner=who.agent_id or "", follow_up_days=_id(args, "follow_up_days") if days is not None else None)
        return {"ticket_id": tid, "follow_up_id": fid}

    # ------------------------------------------------------------------ the worklist

    def _agent(self, who: Principal) -> str:
        if not who.agent_id:
            raise Refused("forbidden", "only agents have a worklist")
        return who.agent_id

    async def _follow_up_add(self, who: Principal, args: Mapping[str, object]) -> object:
        agent = self._agent(who)
        try:
            due = datetime.fromisoformat(str(args["due_at"]))
        except ValueError:
            raise Refused("invalid_value", "due_at: not a real date", "due_at") from None
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        fid = await self.work.schedule_follow_up(_id(args, "customer_id"), FollowUpKind(str(args["kind"])), due,
                                                 agent, self._viewer(who), str(args.get("note", "")))
        return {"follow_up_id": fid}

    async def _worklist(self, who: Principal, args: Mapping[str, object]) -> object:
        agent = self._agent(who)
        now = self.console.clock()
        stats = self.console.recorder.projector.stats
        start = stats.start_of_day(now)
        end = stats.start_of_day(start + 36 * 3600)  # the next midnight, whatever the clocks did today
        return await self.work.worklist(agent, start, end)

    async def _follow_up_call(self, who: Principal, args: Mapping[str, object]) -> object:
        agent = self._agent(who)
        fid = _id(args, "follow_up_id")
        item = await self.work.follow_up(fid)
        if item.follow_up.owner != agent:
            raise Refused("not_yours", f"follow-up {fid} is on another agent's worklist")
        if item.follow_up.status is not FollowUpStatus.OPEN:
            raise Refused("invalid_state", f"follow-up {fid} is {item.follow_up.status.value}")
        if not item.phone:
            raise Refused("no_number", f"customer {item.follow_up.customer_id} has no phone number")
        started = self.console.clock()
        call_id = await self.console.click_to_call(who, None, item.phone, leg=f"{legs.FOLLOW_UP}{fid}-",
                                                   ring_timeout_s=FOLLOW_UP_RING_S)
        dial = _Dial(fid, agent, item.follow_up.customer_id, item.phone, started,
                     answered_at=self._answered.pop(call_id, None))
        self._dials[call_id] = dial
        if len(self._dials) > _KEEP_DIALS:
            del self._dials[next(iter(self._dials))]
        self.console.recorder.record(f.FollowUpCalled(fid, call_id, agent, dial.customer_id, item.phone))
        return {"call_id": call_id}

    async def _follow_up_save(self, who: Principal, args: Mapping[str, object]) -> object:
        agent = self._agent(who)
        fid, call_id = _id(args, "follow_up_id"), str(args["call_id"])
        dial = self._dials.get(call_id) or await self._journaled_dial(call_id, agent)
        if dial is None or dial.agent_id != agent:
            raise Refused("not_your_call", f"{call_id} is not a follow-up call of yours")
        if dial.follow_up_id != fid:
            raise Refused("invalid_value", f"{call_id} called follow-up {dial.follow_up_id}, not {fid}",
                          "follow_up_id")
        notes = str(args.get("notes", ""))
        ended = dial.ended_at if dial.ended_at is not None else self.console.clock()
        fact = f.FollowUpCallSaved(fid, call_id, agent, bool(args["reached"]), bool(args["done"]), notes,
                                   dial.answered_at, ended, dial.started_at, dial.number)
        self.console.recorder.record(fact)
        journal = self.console.recorder.journal
        seq = journal.last_seq
        call = FollowUpCall(fid, call_id, agent, dial.number, dial.started_at, dial.answered_at, ended,
                            fact.reached, notes, fact.done)
        audit = Q.audit_row(self._viewer(who), "follow_up_call", dial.customer_id,
                            f"follow-up {fid} by call {call_id}: {'reached' if fact.reached else 'not reached'}"
                            f"{', done' if fact.done else ''}")
        journal.write_also(("follow_up_call", call_id), partial(save_follow_up_call, call, audit))
        try:
            await journal.durable(seq, timeout=_SAVE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - not durable yet: the agent must know; the batch is retried
            why = journal.last_error or "the database does not answer"
            raise Refused("not_saved", f"not saved yet ({why}); it is kept and written as soon as the "
                                       "database answers") from None
        if fact.done:
            self._dials.pop(call_id, None)
        return {"follow_up_id": fid, "call_id": call_id}

    async def _follow_up_close(self, who: Principal, args: Mapping[str, object]) -> object:
        agent = self._agent(who)
        fid = _id(args, "follow_up_id")
        try:
            await self.work.close_follow_up(fid, agent, FollowUpStatus(str(args["status"])), self._viewer(who),
                                            str(args.get("notes", "")))
        except CrmPermissionError as e:
            raise Refused("not_yours", str(e)) from None
        return {"follow_up_id": fid}

    async def _journaled_dial(self, call_id: str, agent: str) -> _Dial | None:
        """A follow-up call this process did not place (the server restarted since): its journaled
        `crm.follow_up_called`. Its times are what the journal knows: placed at the time in its id, the
        answer unknown, the end when the result is saved (a hang-up seen before that was nobody's then)."""
        placed = legs.follow_up_call(call_id)
        if placed is None or placed[2] != agent:
            return None
        journal = self.console.recorder.journal
        body = await self.console.crm.read_plan(_called_fact(call_id, placed[1], journal.last_seq))
        if body is None or body.get("agent_id") != agent:
            return None
        try:
            dial = _Dial(int(str(body["follow_up_id"])), agent, int(str(body["customer_id"])), str(body["number"]),
                         placed[1])
        except (KeyError, ValueError):
            return None
        self._dials[call_id] = dial
        return dial

    def _on_connected(self, e: ce.CallConnected) -> None:
        """The customer answered: the agent's leg (the call's first leg) is bridged with the trunk's."""
        if not e.call_id.startswith(legs.FOLLOW_UP):
            return
        dial = self._dials.get(e.call_id)
        if dial is None:
            self._answered[e.call_id] = self.console.clock()
            if len(self._answered) > _KEEP_DIALS:
                del self._answered[next(iter(self._answered))]
        elif dial.answered_at is None:
            dial.answered_at = self.console.clock()

    def _on_leg_hung_up(self, e: ce.LegHungUp) -> None:
        dial = self._dials.get(e.uniqueid)
        if dial is not None and dial.ended_at is None:
            dial.ended_at = self.console.clock()

    # ------------------------------------------------------------------ supervisors

    async def _churn_list(self, who: Principal, args: Mapping[str, object]) -> object:
        limit = _id(args, "limit") if "limit" in args else 100
        now = datetime.fromtimestamp(self.console.clock(), UTC)
        try:
            report = await run_report(self.console.crm, Query("churn-candidates", now - timedelta(days=1), now),
                                      self.console.config)
        except ReportError as e:
            raise Refused("invalid_value", str(e)) from None
        return {"customers": report.rows[:limit]}

    async def _grade_run(self, who: Principal, args: Mapping[str, object]) -> object:
        started = time.monotonic()
        today = datetime.fromtimestamp(self.console.clock(), UTC).date()
        start, end = period_ending(today + timedelta(days=1), days=GRADING_DAYS)
        report = await self.console.crm.run_grading(start, end, self._viewer(who))
        return {"graded": report.graded, "counts": {g.value: n for g, n in report.counts.items()},
                "changed": len(report.changes), "fast_moves": len(report.fast_moves),
                "seconds": round(time.monotonic() - started, 3)}
