"""Browser phones' registration and the agent's availability agree: an agent whose console is their phone
(agents.softphone) and whose phone is not registered to the PBX is paused ("phone_unregistered"), so no offer
rings a phone that cannot ring; the phone registered again makes them available again, if that pause is still
the one in force. Supervisors see each agent's phone state in the agents grid.

The console reports its phone's registration (registered, unregistered, failed, with a reason such as
no_microphone or auth_failed): it is the agent's own phone, on the agent's own authenticated websocket, and a
report for an extension that is not the agent's is refused. A phone whose console is gone is the console
presence rule's (console_lost).

The PBX has its own view, which the console cannot give when it is the one that failed: AMI ContactStatus
(capture 30). When the last contact of an agent's browser phone is Removed (its websocket closed: a browser
that crashed or lost its network without unregistering) or Unreachable (the qualify got no answer), the phone
is unregistered ("pbx_removed", "pbx_unreachable") and the agent paused at once, without waiting for the
console rule; a contact registering again makes it registered, when it was the PBX that said it was not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from acd import decisions as d
from acd import events as ev
from acd.config import PHONE_UNREGISTERED
from acd.router import Router

from ..bus import EventBus
from ..callmodel.events import PbxContactChanged
from ..queueing.service import QueueingService, Refused

log = logging.getLogger(__name__)

PHONE_STATES = ("registered", "unregistered", "failed")
CONTACT_GONE = {"Removed": "pbx_removed", "Unreachable": "pbx_unreachable"}  # ContactStatus -> the detail shown
_WORKING = frozenset({"available", "reserved", "on_call", "on_hold", "wrap_up"})


@dataclass(frozen=True, slots=True)
class PhoneStateChanged:
    """A browser phone's registration as its console reported it ("" state: the agent has no browser phone)."""

    agent_id: str
    state: str
    detail: str = ""


class PhoneRegistrations:
    """Which agents' phones are browsers, and what their consoles last said. Pure."""

    def __init__(self) -> None:
        self.endpoint: dict[str, str] = {}  # agent -> the endpoint their console registers as
        self.state: dict[str, str] = {}
        self.detail: dict[str, str] = {}
        self.contacts: dict[str, set[str]] = {}  # endpoint -> the contact URIs the PBX has for it

    def holder(self, endpoint: str) -> str | None:
        """The agent whose console was given ``endpoint``'s account (until they log out)."""
        return next((a for a, e in self.endpoint.items() if e == endpoint), None)

    def uses_browser(self, agent_id: str) -> bool:
        return agent_id in self.endpoint

    def registered(self, agent_id: str) -> bool:
        return self.state.get(agent_id) == "registered"

    def contact_changed(self, endpoint: str, uri: str, status: str) -> tuple[str, tuple[str, str]] | None:
        """The PBX reported a contact of ``endpoint``: the (agent, (state, detail)) it changes, or None.

        Only the agent's last contact going takes the phone away (remove_existing replaces a contact with
        its successor, in either order); the phone comes back from the PBX only if the PBX took it away
        (a console that reported a failure of its own knows better than a contact that still exists)."""
        contacts = self.contacts.setdefault(endpoint, set())
        if status in CONTACT_GONE:
            contacts.discard(uri)
        else:  # NonQualified (just registered), Reachable, Created, Updated, Unknown
            contacts.add(uri)
        agent_id = self.holder(endpoint)
        if agent_id is None:
            return None
        state, detail = self.state.get(agent_id), self.detail.get(agent_id, "")
        if not contacts and status in CONTACT_GONE and state == "registered":
            return agent_id, ("unregistered", CONTACT_GONE[status])
        if contacts and state == "unregistered" and detail in CONTACT_GONE.values():
            return agent_id, ("registered", "")
        return None

    def shown(self, agent_id: str) -> str:
        """The grid's value: "" for a desk phone."""
        return self.state.get(agent_id, "unregistered") if agent_id in self.endpoint else ""


class PhonePresence:
    def __init__(self, queueing: QueueingService, bus: EventBus, clock: Callable[[], float]) -> None:
        self.queueing = queueing
        self.bus = bus
        self.clock = clock
        self.phones = PhoneRegistrations()
        bus.subscribe(d.AgentStateChanged, self._on_agent_state)
        bus.subscribe(PbxContactChanged, self._on_contact)

    @property
    def router(self) -> Router:
        return self.queueing.router

    def agent_logged_in(self, agent_id: str, endpoint: str | None) -> None:
        """After the ACD's login: a browser phone that is not registered yet pauses the agent at once."""
        if endpoint is None:
            if self.phones.endpoint.pop(agent_id, None) is not None:
                self.phones.state.pop(agent_id, None)
                self._publish(agent_id)
            return
        if self.phones.endpoint.get(agent_id) != endpoint:
            self.phones.endpoint[agent_id] = endpoint
            self.phones.state.pop(agent_id, None)
        self._publish(agent_id)
        if not self.phones.registered(agent_id):
            self._pause(agent_id)

    def expect(self, agent_id: str, endpoint: str) -> None:
        """The console was given the account of ``endpoint`` (before the agent logs in with it)."""
        if self.phones.endpoint.get(agent_id) != endpoint:
            self.phones.endpoint[agent_id] = endpoint
            self.phones.state.pop(agent_id, None)

    def phone_state(self, agent_id: str, extension: str, state: str, detail: str) -> None:
        """The console's report. Raises ValueError for a phone that is not this agent's."""
        endpoint = self.phones.endpoint.get(agent_id)
        if endpoint is None or endpoint != extension:
            raise ValueError(f"phone {extension} is not the browser phone of agent {agent_id}")
        self._set(agent_id, extension, state, detail)

    def _on_contact(self, e: PbxContactChanged) -> None:
        change = self.phones.contact_changed(e.endpoint, e.uri, e.status)
        if change is not None:
            agent_id, (state, detail) = change
            self._set(agent_id, e.endpoint, state, detail)

    def _set(self, agent_id: str, extension: str, state: str, detail: str) -> None:
        before = (self.phones.state.get(agent_id), self.phones.detail.get(agent_id, ""))
        self.phones.state[agent_id] = state
        self.phones.detail[agent_id] = detail
        if before != (state, detail):
            log.info("agent %s: browser phone %s %s%s", agent_id, extension, state, f" ({detail})" if detail else "")
            self._publish(agent_id)
        if state == "registered":
            self._resume(agent_id)
        else:
            self._pause(agent_id)

    def _publish(self, agent_id: str) -> None:
        self.bus.publish(PhoneStateChanged(agent_id, self.phones.shown(agent_id),
                                           self.phones.detail.get(agent_id, "")))

    def _pause(self, agent_id: str) -> None:
        view = self.router.agent_view(agent_id, self.clock())
        if view.state not in _WORKING or view.pending_pause is not None:
            return
        log.warning("agent %s: browser phone not registered: paused (%s)%s", agent_id, PHONE_UNREGISTERED,
                    " after the call" if view.state != "available" else "")
        self._command(ev.AgentPaused(agent_id, PHONE_UNREGISTERED))

    def _resume(self, agent_id: str) -> None:
        if not self.router.config.has_agent(agent_id):
            return
        view = self.router.agent_view(agent_id, self.clock())
        if view.state == "paused" and view.pause_reason == PHONE_UNREGISTERED:
            log.info("agent %s: browser phone registered: available", agent_id)
            self._command(ev.AgentReady(agent_id))

    def _on_agent_state(self, e: d.AgentStateChanged) -> None:
        if e.new == "logged_out" and self.phones.endpoint.pop(e.agent_id, None) is not None:
            self.phones.state.pop(e.agent_id, None)
            self.phones.detail.pop(e.agent_id, None)
            asyncio.get_running_loop().call_soon(self._publish, e.agent_id)
        # A pause deferred during a call lands after the wrap-up: a phone registered meanwhile resumes it
        # (on the next turn of the loop, not inside the router's decision).
        if e.new == "paused" and e.reason == PHONE_UNREGISTERED and self.phones.registered(e.agent_id):
            asyncio.get_running_loop().call_soon(self._resume, e.agent_id)

    def _command(self, event: ev.Event) -> None:
        try:
            self.queueing.command(event)
        except Refused as e:
            log.info("phone presence: %s refused: %s", type(event).__name__, e)
