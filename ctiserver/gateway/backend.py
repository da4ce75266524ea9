"""What the gateway needs from the rest of the server, and the views it pushes to consoles.

The app wiring implements `Backend` (commands and snapshot queries); the gateway calls it with
the authenticated `Principal` after the role check. Pushes go the other way: the app calls
`Gateway.push_*` (see server.py) with the views below. Times are unix seconds (float) so a
console counts time in state locally without a message per second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from ctiserver.gateway.auth import Principal

TargetKind = Literal["agent", "queue", "number"]
SpyMode = Literal["listen", "whisper", "barge"]


class Refused(Exception):
    """The backend will not do it. `reason` is a short stable key the console can translate
    (invalid_state, not_found, not_your_call, no_phone, ...); `message` is for humans."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field  # the client field at fault (bad input), for the console to point at


class WrapUpFailed(Exception):
    """Saving the wrap-up failed and nothing was written (locked database, full disk...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class TransferTarget:
    kind: TargetKind
    value: str  # agent id, queue name or dialable number (already validated: no control characters)


@dataclass(frozen=True, slots=True)
class FollowUpForm:
    kind: Literal["callback", "visit", "satisfaction_call"]
    due_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class WrapUpForm:
    disposition: str
    notes: str = ""
    follow_up: FollowUpForm | None = None


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """Sent in auth_ok: what the console offers in its menus."""

    queues: tuple[str, ...] = ()
    pause_reasons: tuple[str, ...] = ("break", "lunch", "training", "back_office")
    dispositions: tuple[str, ...] = ("resolved", "follow_up", "complaint", "sale", "wrong_number")
    wrap_up_s: float = 30.0


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    state: str  # logged_out, available, reserved, on_call, on_hold, wrap_up, paused, not_responding
    since: float  # unix seconds when this state began
    reason: str | None = None  # pause reason
    extension: str | None = None
    queues: tuple[str, ...] = ()
    name: str = ""
    wrap_up_until: float | None = None  # end of the queue's wrap-up time (wrap_up_s)
    # The wrap-up belongs to its call: which call, whose; with the form open (held) the wrap-up lasts until
    # saved or wrap_up_max_at, the queue's maximum.
    wrap_call_id: str | None = None
    wrap_caller: str = ""
    wrap_held: bool = False
    wrap_up_max_at: float | None = None
    drafts: tuple[Mapping[str, object], ...] = ()  # wrap-ups left unsaved, kept as drafts on their calls
    wrap_draft: Mapping[str, str] | None = None  # what the open form last sent ({disposition, notes}): a reload keeps it
    auto_answer: bool = False  # the agent's phone answers offers by itself
    answer_at_console: bool = False  # ... and is dialled only when the agent clicks Answer
    phone: str = ""  # the browser phone's registration ("" a desk phone) and why it is not registered:
    phone_detail: str = ""  # the console's word (network, no_microphone...) or the PBX's (pbx_unreachable...)


@dataclass(frozen=True, slots=True)
class CallView:
    call_id: str
    agent_id: str  # the agent this call belongs to (the gateway refuses other agents' commands on it)
    # ringing, talking, held, consulting, ended; an outbound call before it connects: dialling_agent,
    # agent_answered, dialling_customer, customer_ringing
    state: str
    since: float
    caller: str = ""
    caller_name: str = ""
    queue: str = ""
    direction: Literal["inbound", "outbound"] = "inbound"
    talk_since: float | None = None  # for the talk-time counter
    consult_target: str | None = None
    caller_display: str = ""  # the number as people read it
    outcome: str = ""  # an outbound call's: answered, busy, no_answer, failed, agent_no_answer, cancelled


@dataclass(frozen=True, slots=True)
class OfferView:
    """An offer with its screen pop. `offer_id` identifies the pop: a console shows each one once."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    caller: str
    offered_at: float
    ring_timeout_s: float
    caller_name: str = ""
    ivr_path: tuple[str, ...] = ()
    ivr_said: tuple[str, ...] = ()  # what the caller said to the IVR (speech recognition results)
    priority: int = 0
    pop: object = None  # crmstore.model.ScreenPop (any dataclass/mapping serialisable by schema.to_wire)
    caller_display: str = ""  # the number as people read it (+86 134 5323 3942)
    agent_names: Mapping[str, str] = field(default_factory=dict)  # agent ids of the pop's history -> names
    ivr_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # node -> {language: label}
    # A callback's turn (docs/callbacks.md): {callback_id, source, name, topic, attempts}; None for a caller
    callback: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert per (queue, metric, subject): a newer one replaces it, level "cleared" removes it."""

    alert_id: str
    queue: str  # "" when the alert is not about one queue
    metric: str  # waiting, longest_wait_s, service_level, abandon_rate ..., prompt_missing
    value: float
    threshold: float
    level: Literal["warning", "critical", "cleared"]
    at: float
    text: str = ""
    subject: str = ""  # what the alert is about beyond the queue (prompt_missing: the prompt's name)


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent: AgentView
    calls: tuple[CallView, ...] = ()
    offers: tuple[OfferView, ...] = ()  # offers still ringing


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """Seed of the gateway's monitor mirror. Rows are the same field maps the deltas carry."""

    wallboard: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    agents: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    calls: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    alerts: tuple[AlertView, ...] = ()


class Backend(Protocol):
    """Implemented by the app wiring. Every command may raise `Refused`; anything else is a bug
    (the console gets `internal`). Each call is awaited with the gateway's command timeout."""

    def console_config(self, who: Principal) -> ConsoleConfig: ...

    def owns(self, agent_id: str, call_id: str) -> bool:
        """May this agent send commands about this call (ringing for them, theirs now, or theirs to wrap
        up)? Read from the one owner of who has which call; the gateway keeps no copy."""
        ...

    def session_ended(self, who: Principal) -> None:
        """A console session was ended by logout (it must stay ended after a restart)."""
        ...

    def user_logged_out(self, username: str) -> None:
        """A supervisor ended every session of an account."""
        ...

    def console_presence(self, agent_id: str, connected: bool) -> None:
        """The agent's first console connected, or their last one went away (closed, or dropped by the
        keepalive when its network is gone). Told on each change, from the gateway's connections."""
        ...

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot: ...

    async def monitor_snapshot(self) -> MonitorSnapshot: ...

    # agents (who.agent_id is set; the gateway has checked the call belongs to them)
    async def agent_login(self, who: Principal, extension: str, queues: tuple[str, ...]) -> None: ...

    async def agent_logout(self, who: Principal) -> None: ...

    async def phone_account(self, who: Principal, extension: str) -> dict[str, object] | None:
        """The agent's browser phone account (None: a desk phone)."""

    async def phone_state(self, who: Principal, extension: str, state: str, detail: str) -> None: ...

    async def agent_ready(self, who: Principal) -> None: ...

    async def agent_pause(self, who: Principal, reason: str) -> None: ...

    async def answer_offer(self, who: Principal, offer_id: str) -> None:
        """Answer the agent's own ringing offer from the console (answer: console): dial the phone now."""
        ...

    async def hold(self, who: Principal, call_id: str) -> None: ...

    async def unhold(self, who: Principal, call_id: str) -> None: ...

    async def blind_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None: ...

    async def attended_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None: ...

    async def complete_transfer(self, who: Principal, call_id: str) -> None: ...

    async def cancel_transfer(self, who: Principal, call_id: str) -> None: ...

    async def hangup(self, who: Principal, call_id: str) -> None: ...

    async def save_wrapup(self, who: Principal, call_id: str, form: WrapUpForm) -> None:
        """Return only once durable; raise WrapUpFailed if nothing was written."""
        ...

    async def save_wrapup_draft(self, who: Principal, call_id: str, disposition: str, notes: str) -> float | None:
        """Keep what the open wrap-up form holds; the wrap-up now lasts until saved or the queue's maximum
        (returned, unix seconds)."""
        ...

    async def agent_today(self, who: Principal) -> Mapping[str, object]:
        """The idle screen: the agent's figures today, callers waiting in their queues, due follow-ups
        and callbacks, wrap-ups kept as drafts."""
        ...

    async def search_customers(self, who: Principal, query: str, limit: int) -> Sequence[object]: ...

    async def click_to_call(self, who: Principal, customer_id: int | None, number: str | None) -> str:
        """Originate the agent's phone then the customer; returns the new call id."""
        ...

    async def crm_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        """The CRM work messages (schema.CRM_MESSAGES), role-checked by the gateway: the reply's data."""
        ...

    # supervisors and admins
    async def spy(self, who: Principal, extension: str, agent_id: str, mode: SpyMode) -> None:
        """Ring the supervisor's phone into a listen/whisper/barge on the agent's call; a second spy of
        the same supervisor ends the first."""
        ...

    async def spy_stop(self, who: Principal) -> bool:
        """End the supervisor's spy call; False when there was none."""
        ...

    async def force_pause(self, who: Principal, agent_id: str, reason: str) -> None: ...

    async def force_logout(self, who: Principal, agent_id: str) -> None: ...

    async def move_call(self, who: Principal, call_id: str, queue: str | None, to_head: bool) -> None: ...

    async def callback_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        """The callback messages (schema.CALLBACK_MESSAGES): book, cancel, list. The reply's data."""
        ...
