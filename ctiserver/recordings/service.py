"""The recordings capability: decides when a call is recorded, paused and played, and what the voicemail
inbox shows. I/O through what it is given (the calls' PBX links, the CRM store, the journal).

* At the bridge (a CallConnected fact) a call whose queue records `always` gets a MixMonitor on the
  caller's channel, to `<pbx dir>/<call id>.wav`; `on_demand` queues start when the agent asks.
* Pause/resume (card payments) is MixMonitorMute on both directions; the file keeps the time as silence.
* Playback: the agent who took the call (any part of it) or a supervisor; every playback is written to
  the CRM's audit log before the console gets its ticket. Ids come from the console, never paths.
* Voicemails are the IVR's recordings of calls whose outcome is voicemail; a supervisor assigns them, the
  agent (or a supervisor) marks them done. Agents see and play only those given to them.
* Retention: a sweep deletes recordings older than `retention_days`, and audits what it deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acd.config import RecordingPolicy
from crmstore import queries as crm_q
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from ctiserver.ami.errors import AmiActionError, AmiError
from ctiserver.gateway.auth import Principal, Role
from ctiserver.gateway.backend import Refused
from ctiserver.journal import facts as f

from . import queries as Q
from .files import RecordingFiles, inside, sweep, wav_seconds
from .media import media_url
from .state import IllegalMove, RecState, next_state
from .tickets import MediaKind, Tickets

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    files: RecordingFiles
    voicemail_dir: Path  # where the IVR's record nodes write (ivr.recordings_dir)
    retention_days: int = 90  # 0: kept for ever
    sweep_every_s: float = 3600.0
    ticket_ttl_s: float = 300.0


@dataclass(slots=True)
class LiveRecording:
    call_id: str
    channel: str
    state: RecState
    agent_id: str


class RecordingService:
    def __init__(self, settings: RecordingSettings, *, calls: Any, recorder: Any, crm: Any, bus: Any,
                 clock: Callable[[], float], policy_of: Callable[[str], RecordingPolicy],
                 has_agent: Callable[[str], bool],
                 push: Callable[[str, str, dict[str, object]], None] = lambda agent, kind, fields: None) -> None:
        self.settings = settings
        self.calls = calls  # CallsService: pbx_of, caller_channel
        self.recorder = recorder  # journal + projections (call records)
        self.crm = crm
        self.clock = clock
        self.policy_of = policy_of  # a queue's recording policy
        self.has_agent = has_agent
        self.push = push  # (agent id, message type, fields) to the agent's consoles
        self.tickets = Tickets(settings.ticket_ttl_s)
        self.live: dict[str, LiveRecording] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        bus.subscribe(f.CallConnected, self._on_connected)
        bus.subscribe(f.CallEnded, self._on_ended)

    # ------------------------------------------------------------------ the bridge

    def _record_of(self, call_id: str) -> Any:
        return self.recorder.projector.records.get(call_id)

    def _agent_on(self, call_id: str) -> str:
        rec = self._record_of(call_id)
        part = rec.current if rec is not None else None
        return part.agent_id if part is not None else ""

    def policy(self, call_id: str) -> RecordingPolicy:
        rec = self._record_of(call_id)
        return self.policy_of(rec.queue) if rec is not None and rec.queue else "never"

    def _on_connected(self, e: f.CallConnected) -> None:
        if self.policy(e.call_id) != "always" or e.call_id in self.live:
            return
        task = asyncio.get_running_loop().create_task(self._auto_start(e.call_id), name=f"record {e.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_start(self, call_id: str) -> None:
        try:
            await self.move(call_id, "start", by=None)
        except (Refused, IllegalMove) as exc:
            log.warning("call %s not recorded: %s", call_id, exc)
        except Exception:
            log.exception("call %s not recorded", call_id)

    def _on_ended(self, e: f.CallEnded) -> None:
        gone = self.live.pop(e.call_id, None)
        if gone is not None and gone.agent_id:
            self.push(gone.agent_id, "recording_state", {"call_id": e.call_id, "state": "ended"})

    # ------------------------------------------------------------------ start, pause, resume, stop

    async def move(self, call_id: str, move: str, by: Principal | None) -> RecState:
        """Make one move on a live call's recording (by a console, or None: the queue's policy)."""
        live = self.live.get(call_id)
        if move == "start" and live is None and by is not None and self.policy(call_id) == "never":
            raise Refused("not_recorded", "calls of this queue are not recorded")
        try:
            new = next_state(move, live.state if live else None)
        except IllegalMove as exc:
            raise Refused("invalid_state", str(exc)) from None
        pbx = self.calls.pbx_of(call_id)
        channel = self.calls.caller_channel(call_id)
        if pbx is None or channel is None:
            raise Refused("invalid_state", "the call is not connected")
        files = self.settings.files
        try:
            if move == "start":
                # A restart after a stop appends (option a) to the same file: one file per call.
                await pbx.control.start_recording(channel, files.pbx_path(call_id), options="ab" if live else "b")
            elif move == "stop":
                await pbx.control.stop_recording(channel)
            else:
                await pbx.control.mute_recording(channel, move == "pause")
        except AmiActionError as exc:
            raise Refused("pbx_refused", f"the PBX refused: {exc}") from None
        except AmiError as exc:
            raise Refused("pbx_unavailable", f"the PBX did not answer: {exc}") from None
        agent = self._agent_on(call_id) or (by.agent_id if by is not None and by.agent_id else "")
        if live is None:
            live = self.live[call_id] = LiveRecording(call_id, channel, new, agent)
            self.recorder.record(f.RecordingStarted(call_id, str(files.path(call_id))))
        live.state, live.agent_id = new, agent or live.agent_id
        if by is not None:
            await self._audit(by, f"recording_{move}", self._customer(call_id), f"call {call_id}")
        if live.agent_id:
            self.push(live.agent_id, "recording_state", {"call_id": call_id, "state": new.value})
        return new

    def state_of(self, call_id: str) -> str:
        live = self.live.get(call_id)
        return live.state.value if live else "none"

    def _customer(self, call_id: str) -> int | None:
        rec = self._record_of(call_id)
        return rec.customer_id if rec is not None else None

    # ------------------------------------------------------------------ playback

    async def list_recordings(self, who: Principal, limit: int) -> list[dict[str, object]]:
        agent = None if who.role is not Role.AGENT else who.agent_id or who.username
        rows = await self.crm.read_plan(Q.recorded_calls(agent, limit))
        return [{"call_id": r.call_id, "started_at": r.started_at, "caller": r.caller,
                 "customer_id": r.customer_id, "customer_name": r.customer_name, "agents": list(r.agents),
                 "queue": r.queue, "talk_s": round(r.talk_s, 1),
                 "available": self.settings.files.path(r.call_id).is_file()} for r in rows]

    async def play_recording(self, who: Principal, call_id: str) -> dict[str, object]:
        row = await self.crm.read_plan(Q.recorded_call(call_id))
        live_part = who.agent_id is not None and self._took_part_live(call_id, who.agent_id)
        if who.role is Role.AGENT and not (live_part or (row is not None and who.agent_id in row.agents)):
            raise Refused("not_your_call", "you did not take that call")
        path = self.settings.files.path(call_id)
        if not inside(path, self.settings.files.local):
            raise Refused("no_recording", "that call has no recording (or it was deleted)")
        customer = row.customer_id if row is not None else self._customer(call_id)
        return await self._grant(who, "recording", call_id, path, customer)

    def _took_part_live(self, call_id: str, agent_id: str) -> bool:
        return bool(self.recorder.projector.records.took_part(call_id, agent_id))

    async def _grant(self, who: Principal, kind: MediaKind, call_id: str, path: Path,
                     customer_id: int | None) -> dict[str, object]:
        await self._audit(who, f"{kind}_play", customer_id, f"call {call_id}")  # durable before it plays
        seconds = await asyncio.to_thread(_seconds, path)
        ticket = self.tickets.issue(kind, call_id, path, who, self.clock())
        return {"call_id": call_id, "url": media_url(kind, ticket), "seconds": seconds,
                "expires_in_s": int(self.tickets.ttl_s)}

    async def _audit(self, who: Principal, action: str, customer_id: int | None, detail: str) -> None:
        viewer = Viewer(who.username, CrmRole(who.role.value))
        await self.crm.write_plan(Q.audit(crm_q.audit_row(viewer, action, customer_id, detail)))

    # ------------------------------------------------------------------ voicemail inbox

    async def list_voicemails(self, who: Principal, limit: int) -> list[dict[str, object]]:
        mine = who.agent_id or who.username if who.role is Role.AGENT else None
        rows = await self.crm.read_plan(Q.voicemails(mine, limit))
        out = []
        for v in rows:
            customer_id, name = v.customer_id, v.customer_name
            if customer_id is None and v.caller:  # not identified in the IVR: the CRM may know the number now
                ident = await self.crm.identify_by_phone(v.caller)
                if ident is not None:
                    customer_id, name = ident.customer_id, ident.name
            out.append({"call_id": v.call_id, "left_at": v.left_at, "caller": v.caller,
                        "customer_id": customer_id, "customer_name": name, "status": v.status,
                        "assigned_to": v.assigned_to, "done_by": v.done_by, "done_at": v.done_at,
                        "available": self._voicemail_file(v) is not None})
        return out

    def _voicemail_file(self, v: Q.Voicemail) -> Path | None:
        path = Path(v.file)
        return path if inside(path, self.settings.voicemail_dir) else None

    async def _voicemail_for(self, who: Principal, call_id: str) -> Q.Voicemail:
        v = await self.crm.read_plan(Q.voicemail(call_id))
        if v is None:
            raise Refused("no_voicemail", "no such voicemail")
        if who.role is Role.AGENT and v.assigned_to != (who.agent_id or who.username):
            raise Refused("not_yours", "that voicemail is not assigned to you")
        return v

    async def play_voicemail(self, who: Principal, call_id: str) -> dict[str, object]:
        v = await self._voicemail_for(who, call_id)
        path = self._voicemail_file(v)
        if path is None:
            raise Refused("no_recording", "the voicemail's file is gone")
        return await self._grant(who, "voicemail", call_id, path, v.customer_id)

    async def assign_voicemail(self, who: Principal, call_id: str, agent_id: str) -> dict[str, object]:
        if not self.has_agent(agent_id):
            raise Refused("unknown_agent", f"no agent {agent_id!r}")
        v = await self._voicemail_for(who, call_id)
        viewer = Viewer(who.username, CrmRole(who.role.value))
        row = crm_q.audit_row(viewer, "voicemail_assign", v.customer_id, f"call {call_id} to {agent_id}")
        try:
            await self.crm.write_plan(Q.assign_voicemail(call_id, agent_id, who.username, time.time(), row))
        except Q.InboxConflict as exc:
            raise Refused("already_done", str(exc)) from None
        self.push(agent_id, "voicemail_assigned", {"call_id": call_id})
        return {"call_id": call_id, "status": "assigned", "assigned_to": agent_id}

    async def finish_voicemail(self, who: Principal, call_id: str) -> dict[str, object]:
        v = await self._voicemail_for(who, call_id)
        viewer = Viewer(who.username, CrmRole(who.role.value))
        row = crm_q.audit_row(viewer, "voicemail_done", v.customer_id, f"call {call_id}")
        try:
            await self.crm.write_plan(Q.finish_voicemail(call_id, who.username, time.time(), row))
        except Q.InboxConflict as exc:
            raise Refused("already_done", str(exc)) from None
        return {"call_id": call_id, "status": "done"}

    # ------------------------------------------------------------------ retention

    async def sweep_once(self) -> list[str]:
        days = self.settings.retention_days
        if days <= 0:
            return []
        gone = await asyncio.to_thread(sweep, self.settings.files.local, time.time() - days * 86400)
        if gone:
            system = Viewer("system", CrmRole.ADMIN)
            await self.crm.write_plan(Q.audit(crm_q.audit_row(
                system, "recording_retention", None, f"{len(gone)} deleted after {days} days: "
                + ", ".join(gone[:20]) + (" ..." if len(gone) > 20 else ""))))
            log.info("retention: %d recordings older than %d days deleted", len(gone), days)
        return gone

    async def run_retention(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("recording retention sweep failed")
            await asyncio.sleep(self.settings.sweep_every_s)


def _seconds(path: Path) -> float | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    seconds = wav_seconds(head)
    return round(seconds, 2) if seconds is not None else None
