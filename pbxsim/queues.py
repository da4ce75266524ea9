"""app_queue as capture 08 shows it: dynamic members (QueueAdd/Pause/Penalty/Remove), Queue() callers on
music, ringall to Local members, AgentCalled/AgentConnect/AgentComplete, abandon, QueueStatus/QueueSummary.

The CTI's own ACD does not use app_queue (architecture.md); this exists so the capture replays and so a
site that still runs Queue() can be simulated. One queue, ``support`` (queues.conf of the captures).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pbxsim import wire
from pbxsim.channels import HUNGUP, Channel
from pbxsim.dialplan import split_args
from pbxsim.world import World

POLL = 1.0  # app_queue re-checks for a free member once a second (capture 08: ring 1 s after unpause)
STATUS_NOT_INUSE = 1
STATUS_INUSE = 2


@dataclass(slots=True)
class Member:
    interface: str
    name: str
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    calls: int = 0
    last_call: int = 0
    last_pause: int = 0
    login: int = 0
    in_call: bool = False
    status: int = STATUS_NOT_INUSE

    def pairs(self, queue: str, *, listing: bool = False) -> wire.Pairs:
        head = [("Queue", queue), ("Name", self.name), ("Location", self.interface)] if listing else [
            ("Queue", queue), ("MemberName", self.name), ("Interface", self.interface)]
        body = [("StateInterface", self.interface), ("Membership", "dynamic"), ("Penalty", str(self.penalty)),
                ("CallsTaken", str(self.calls)), ("LastCall", str(self.last_call)),
                ("LastPause", str(self.last_pause)), ("LoginTime", str(self.login)),
                ("InCall", "1" if self.in_call else "0"), ("Status", str(self.status)),
                ("Paused", "1" if self.paused else "0"), ("PausedReason", self.reason)]
        tail = [("Wrapuptime", "0")] if listing else [("Ringinuse", "0"), ("Wrapuptime", "0")]
        return head + body + tail


@dataclass(slots=True)
class Entry:
    caller: Channel
    joined: float
    position: int


@dataclass
class CallQueue:
    name: str
    strategy: str = "ringall"
    members: dict[str, Member] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0

    def params(self) -> wire.Pairs:
        return [("Queue", self.name), ("Max", "0"), ("Strategy", self.strategy), ("Calls", str(len(self.entries))),
                ("Holdtime", str(self.holdtime)), ("TalkTime", str(self.talktime)),
                ("Completed", str(self.completed)), ("Abandoned", str(self.abandoned)), ("ServiceLevel", "0"),
                ("ServicelevelPerf", "0.0"), ("ServicelevelPerf2", "0.0"), ("Weight", "0")]

    def variables(self) -> list[tuple[str, str]]:
        """setqueuevar=yes: QUEUENAME ... QUEUESRVLEVELPERF, in app_queue's order."""
        return [("QUEUENAME", self.name), ("QUEUEMAX", "0"), ("QUEUESTRATEGY", self.strategy),
                ("QUEUECALLS", str(len(self.entries))), ("QUEUEHOLDTIME", str(self.holdtime)),
                ("QUEUETALKTIME", str(self.talktime)), ("QUEUECOMPLETED", str(self.completed)),
                ("QUEUEABANDONED", str(self.abandoned)), ("QUEUESRVLEVEL", "0"), ("QUEUESRVLEVELPERF", "0.0")]


class Queues:
    def __init__(self, world: World, names: tuple[str, ...] = ("support",)) -> None:
        self.world = world
        self.queues = {n: CallQueue(n) for n in names}

    # ---------------------------------------------------------------- member management (AMI)
    def _member_event(self, name: str, queue: CallQueue, member: Member) -> None:
        self.world.emit(wire.event(name, member.pairs(queue.name)))

    def add(self, qname: str, interface: str, name: str, penalty: int, paused: bool) -> str | None:
        q = self.queues.get(qname)
        if q is None:
            return "Unable to add interface: No such queue"
        if interface in q.members:
            return "Unable to add interface: Already there"
        m = Member(interface, name or interface, penalty, paused, login=int(self.world.vnow()))
        q.members[interface] = m
        w = self.world
        w.device_state(f"Queue:{qname}_pause_{interface}", "INUSE" if paused else "NOT_INUSE")
        self._member_event("QueueMemberAdded", q, m)
        w.device_state(f"Queue:{qname}_avail", "INUSE" if paused else "NOT_INUSE")
        return None

    def pause(self, qname: str | None, interface: str, paused: bool, reason: str) -> bool:
        found = False
        for q in self.queues.values():
            m = q.members.get(interface)
            if m is None or (qname and q.name != qname):
                continue
            found = True
            m.paused, m.reason = paused, reason if paused else ""
            m.last_pause = int(self.world.vnow()) if paused else m.last_pause
            self.world.device_state(f"Queue:{q.name}_pause_{interface}", "INUSE" if paused else "NOT_INUSE")
            self.world.device_state(f"Queue:{q.name}_avail", "INUSE" if paused else "NOT_INUSE")
            self._member_event("QueueMemberPause", q, m)
            for e in q.entries:
                e.caller.wake()
        return found

    def penalty(self, qname: str | None, interface: str, penalty: int) -> bool:
        found = False
        for q in self.queues.values():
            m = q.members.get(interface)
            if m is None or (qname and q.name != qname):
                continue
            found = True
            m.penalty = penalty
            self._member_event("QueueMemberPenalty", q, m)
        return found

    def remove(self, qname: str, interface: str) -> str | None:
        q = self.queues.get(qname)
        if q is None or interface not in q.members:
            return "Unable to remove interface: Not there"
        m = q.members.pop(interface)
        self._member_event("QueueMemberRemoved", q, m)
        self.world.device_state(f"Queue:{qname}_pause_{interface}", "NOT_INUSE")
        return None

    # ---------------------------------------------------------------- list actions
    def status_items(self, qname: str | None, action_id: str | None) -> list[wire.Pairs]:
        now = self.world.vnow()
        items: list[wire.Pairs] = []
        for q in self.queues.values():
            if qname and q.name != qname:
                continue
            items.append([("Event", "QueueParams"), *q.params()])
            items += [[("Event", "QueueMember"), *m.pairs(q.name, listing=True)] for m in q.members.values()]
            for e in q.entries:
                c = e.caller
                items.append([("Event", "QueueEntry"), ("Queue", q.name), ("Position", str(e.position)),
                              ("Channel", c.name), ("Uniqueid", c.uniqueid), ("CallerIDNum", c.cid_num),
                              ("CallerIDName", c.cid_name), ("ConnectedLineNum", c.conn_num),
                              ("ConnectedLineName", c.conn_name), ("Wait", str(int(now - e.joined))),
                              ("Priority", "0")])
        return [i + ([("ActionID", action_id)] if action_id is not None else []) for i in items]

    def summary_items(self, qname: str | None, action_id: str | None) -> list[wire.Pairs]:
        now = self.world.vnow()
        items: list[wire.Pairs] = []
        for q in self.queues.values():
            if qname and q.name != qname:
                continue
            available = sum(1 for m in q.members.values() if not m.paused and not m.in_call)
            longest = max((int(now - e.joined) for e in q.entries), default=0)
            item: wire.Pairs = [("Event", "QueueSummary"), ("Queue", q.name), ("LoggedIn", str(len(q.members))),
                                ("Available", str(available)), ("Callers", str(len(q.entries))),
                                ("HoldTime", str(q.holdtime)), ("TalkTime", str(q.talktime)),
                                ("LongestHoldTime", str(longest))]
            if action_id is not None:
                item.append(("ActionID", action_id))
            items.append(item)
        return items

    # ---------------------------------------------------------------- Queue() application
    async def run(self, chan: Channel, data: str) -> str | None:
        w = self.world
        args = split_args(data)
        q = self.queues.get(args[0].strip())
        if q is None:
            w.set_var(chan, "QUEUESTATUS", "JOINUNAVAIL")
            return None
        limit = float(args[4]) if len(args) > 4 and args[4].strip() else None
        for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"):
            w.set_var(chan, var, "")
        entry = Entry(chan, w.vnow(), len(q.entries) + 1)
        q.entries.append(entry)
        w.device_state(f"Queue:{q.name}", "RINGING")
        w.chan_event("QueueCallerJoin", chan, ("Queue", q.name), ("Position", str(entry.position)),
                     ("Count", str(len(q.entries))))
        chan.moh = "default"
        w.chan_event("MusicOnHoldStart", chan, ("Class", "default"))
        while True:
            member = self._free_member(q) if q.entries and q.entries[0] is entry else None
            if member is not None:
                outcome = await self._ring(q, entry, member)
                if outcome is not None:
                    return outcome
                continue
            waited = w.vnow() - entry.joined
            if limit is not None and waited >= limit:
                self._leave(q, entry)
                w.set_var(chan, "QUEUESTATUS", "TIMEOUT")
                return None
            r = await chan.wait_for(POLL)
            if r == HUNGUP:
                self._abandon(q, entry)
                return "hangup"

    def _free_member(self, q: CallQueue) -> Member | None:
        return next((m for m in q.members.values() if not m.paused and not m.in_call), None)

    def _leave(self, q: CallQueue, entry: Entry) -> None:
        w = self.world
        if entry in q.entries:
            q.entries.remove(entry)
        for i, e in enumerate(q.entries, 1):
            e.position = i
        if not q.entries:
            w.device_state(f"Queue:{q.name}", "NOT_INUSE")
        w.chan_event("QueueCallerLeave", entry.caller, ("Queue", q.name), ("Position", str(entry.position)),
                     ("Count", str(len(q.entries))))
        w.set_var(entry.caller, "QUEUEPOSITION", str(entry.position))

    def _stop_moh(self, chan: Channel) -> None:
        if chan.moh is not None:
            chan.moh = None
            self.world.chan_event("MusicOnHoldStop", chan)

    def _abandon(self, q: CallQueue, entry: Entry) -> None:
        w, chan = self.world, entry.caller
        self._stop_moh(chan)
        held = int(w.vnow() - entry.joined)
        for var, value in (("QUEUEWAIT", str(held)), ("QUEUEWAIT_MS", str(held * 1000)), ("DIALEDTIME", str(held)),
                           ("DIALEDTIME_MS", str(held * 1000)), ("ANSWEREDTIME", "0"), ("ANSWEREDTIME_MS", "0"),
                           ("ABANDONED", "TRUE")):
            w.set_var(chan, var, value)
        for var, value in q.variables():
            w.set_var(chan, var, value)
        w.chan_event("QueueCallerAbandon", chan, ("Queue", q.name), ("Position", str(entry.position)),
                     ("OriginalPosition", str(entry.position)), ("HoldTime", str(held)))
        q.abandoned += 1
        for var, value in q.variables():
            w.set_var(chan, var, value)
        self._leave(q, entry)

    async def _ring(self, q: CallQueue, entry: Entry, member: Member) -> str | None:
        """Ring one member (ringall with one free member); None means try again later."""
        w, chan = self.world, entry.caller
        exten, _, ctx = member.interface.partition("/")[2].partition("@")
        if not w.dialplan.exists(ctx, exten):
            return None
        one, two = w.new_local_pair(exten, ctx, linkedid=chan.linkedid)
        one.held_by_app = True  # app_queue, not the Local pair, tears this leg down
        one.no_cdr = True
        w.chan_event("Newchannel", one)
        w.chan_event("Newchannel", two)
        one.cid_num, one.cid_name = chan.cid_num, chan.cid_name
        one.app, one.appdata = "AppQueue", "(Outgoing Line)"
        w.emit(wire.event("Newexten", one.snapshot(), [
            ("Extension", one.exten), ("Application", "AppQueue"), ("AppData", "(Outgoing Line)")]))
        w.chan_event("NewCallerid", one, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
        dialed = f"{exten}@{ctx}"
        w.set_var(one, "DIALEDPEERNUMBER", dialed)
        w.set_var(two, "DIALEDPEERNUMBER", dialed)
        one.exten = chan.exten  # the member leg shows the caller's number from here on (08)
        w.set_callerid(two, chan.cid_name, chan.cid_num)
        w.set_connected(two, chan.cid_name, chan.cid_num)
        w.emit(wire.event("LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), [
            ("Context", ctx), ("Exten", exten), ("LocalOptimization", "Yes")]))
        called = [("Queue", q.name), ("Interface", member.interface), ("MemberName", member.name)]
        w.emit(wire.event("AgentCalled", chan.snapshot(), one.snapshot("Dest"), called))
        w.emit(wire.event("DialBegin", chan.snapshot(), one.snapshot("Dest"), [("DialString", dialed)]))
        started = w.vnow()
        w.start_pbx(two)
        if not await self._until(chan, one, lambda: one.state in (5, 6)):
            return self._ring_failed(q, entry, one)
        w.emit(wire.event("Newexten", one.snapshot(), [
            ("Extension", one.exten), ("Application", "AppQueue"), ("AppData", "(Outgoing Line)")]))
        w.set_connected(one, chan.cid_name, chan.cid_num)
        w.emit(wire.event("DialState", chan.snapshot(), one.snapshot("Dest"), [("DialStatus", "RINGING")]))
        member.status = STATUS_INUSE
        self._member_event("QueueMemberStatus", q, member)
        w.device_state(f"Queue:{q.name}_avail", "INUSE")
        w.device_state(member.interface, "INUSE")
        rang_at = w.vnow()
        if not await self._until(chan, one, lambda: one.state == 6):
            return self._ring_failed(q, entry, one)
        w.emit(wire.event("DialEnd", chan.snapshot(), one.snapshot("Dest"), [("DialStatus", "ANSWER")]))
        self._stop_moh(chan)
        held = int(w.vnow() - entry.joined)
        q.holdtime = held
        member_vars = [("MEMBERINTERFACE", member.interface), ("MEMBERNAME", member.name),
                       ("MEMBERCALLS", str(member.calls)), ("MEMBERLASTCALL", str(member.last_call)),
                       ("MEMBERPENALTY", str(member.penalty)), ("MEMBERDYNAMIC", "1"), ("MEMBERREALTIME", "0")]
        for target in (chan, one):
            for var, value in member_vars:
                w.set_var(target, var, value)
        for target in (chan, one):
            w.set_var(target, "QEHOLDTIME", str(held))
            w.set_var(target, "QEORIGINALPOS", str(entry.position))
        for target in (chan, one):
            for var, value in q.variables():
                w.set_var(target, var, value)
        self._leave(q, entry)
        w.set_var(chan, "QUEUEWAIT", str(held))
        w.set_var(chan, "QUEUEWAIT_MS", str(held * 1000))
        member.in_call = True
        w.emit(wire.event("AgentConnect", chan.snapshot(), one.snapshot("Dest"), called + [
            ("HoldTime", str(held)), ("RingTime", str(int(w.vnow() - rang_at)))]))
        bridge = w.create_bridge()
        w.enter_bridge(bridge, one)
        w.device_state(member.interface, "INUSE")
        w.device_state(member.interface, "INUSE")
        w.enter_bridge(bridge, chan)
        w.set_bridgepeers(bridge)
        answered = w.vnow()
        await self._until(chan, one, lambda: one.hungup or chan.hungup, timeout=None)
        talked = int(w.vnow() - answered)
        q.talktime = talked
        q.completed += 1
        reason = "agent" if one.hungup else "caller"
        w.emit(wire.event("AgentComplete", chan.snapshot(), one.snapshot("Dest"), called + [
            ("HoldTime", str(held)), ("TalkTime", str(talked)), ("Reason", reason)]))
        member.in_call = False
        member.status = STATUS_NOT_INUSE
        member.calls += 1
        member.last_call = int(w.vnow())
        one.held_by_app = False
        one.hungup = True
        if one.hangup_cause is None:
            one.hangup_cause = 16
        destroy = w.spawn(w.destroy(one))
        await asyncio.sleep(0)
        self._member_event("QueueMemberStatus", q, member)
        if not member.paused:
            w.device_state(f"Queue:{q.name}_avail", "NOT_INUSE")
        await destroy
        if chan.bridge is not None:
            w.leave_bridge(chan, hangup=True)
        for var, value in q.variables():
            w.set_var(chan, var, value)
        now = w.vnow()
        for var, value in (("ANSWEREDTIME", str(int(now - answered))), ("ANSWEREDTIME_MS", str(int((now - answered) * 1000))),
                           ("DIALEDTIME", str(int(now - started))), ("DIALEDTIME_MS", str(int((now - started) * 1000)))):
            w.set_var(chan, var, value)
        for var, value in q.variables():
            w.set_var(chan, var, value)
        if chan.hangup_cause is None:
            chan.hangup_cause = 16
        return "hangup"  # the caller is done once the member hangs up (no 'c' option)

    def _ring_failed(self, q: CallQueue, entry: Entry, one: Channel) -> str | None:
        w = self.world
        one.held_by_app = False
        if not one.dead:
            w.queue_hangup(one, 16)
            w.spawn(w.destroy(one))
        if entry.caller.hungup:
            self._abandon(q, entry)
            return "hangup"
        return None

    async def _until(self, chan: Channel, leg: Channel, done: object, timeout: float | None = 15.0) -> bool:
        """Wait until ``done()`` (or the caller or the member leg goes away); False if it never came."""
        w = self.world
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout * w.time_scale
        check = done  # a zero-argument callable
        while True:
            if check():  # type: ignore[operator]
                return True
            if chan.hungup or leg.dead or (leg.hungup and timeout is not None):
                return False
            for c in (chan, leg):
                c._signal.clear()
            waits = [asyncio.ensure_future(c._signal.wait()) for c in (chan, leg)]
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                finished, _ = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in waits:
                    t.cancel()
            if not finished:
                return False
