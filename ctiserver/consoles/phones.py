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
ContactStatus only tells changes: when its AMI link (re)connects, the CTI reads the PBX's whole list
(PJSIPShowContacts, capture 33). A phone with no contact in it is unregistered ("pbx_no_contact"), one with
a contact registered, also for the agents a restarted CTI found logged in from its journal, before their
consoles are back.

What the PBX says about an endpoint no logged-in agent's browser phone uses (a desk phone, an agent logged
out), or with a URI that is not a SIP URI, changes nobody's state: one log line, and the contact is kept
only if its URI is one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from acd import decisions as d
from acd import events as ev
from acd.config import PHONE_UNREGISTERED
from acd.router import Router

from ..bus import EventBus
from ..callmodel.events import PbxContactChanged, PbxContactsListed
from ..queueing.service import QueueingService, Refused

log = logging.getLogger(__name__)

PHONE_STATES = ("registered", "unregistered", "failed")
CONTACT_GONE = {"Removed": "pbx_removed", "Unreachable": "pbx_unreachable"}  # ContactStatus -> the detail shown
NO_CONTACT = "pbx_no_contact"  # the PBX's list, read when the AMI link connects, has no contact for the phone
PBX_DETAILS = frozenset({*CONTACT_GONE.values(), NO_CONTACT})  # the phone was taken away by the PBX's word
_WORKING = frozenset({"available", "reserved", "on_call", "on_hold", "wrap_up"})

Change = tuple[str, tuple[str, str]]  # (agent, (state, detail))


# A contact URI as res_pjsip reports one: sip:user@host:port;params (capture 33:
# sip:1002@127.0.0.1:41742;transport=WS;x-ast-orig-host=60b35c3fd3d1.invalid:0). Anything else is not trusted.
_SIP_URI = re.compile(r"sips?:(?:[\w.!~*'()&=+$,;?/%-]+@)?(?:[\w.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?(?:;[\w.!~*'()%+-]+(?:=[\w.!~*'()%+:\[\]-]*)?)*",
                      re.IGNORECASE)


def sip_uri(uri: str) -> bool:
    return len(uri) <= 512 and _SIP_URI.fullmatch(uri) is not None


@dataclass(frozen=True, slots=True)
class PhoneStateChanged:
    """A browser phone's registration as its console reported it ("" state: the agent has no browser phone)."""

    agent_id: str
    state: str
    detail: str = ""


class PhoneRegistrations:
    """Which agents' phones are browsers, what their consoles last said, and the contacts the PBX has for
    each endpoint (the one copy of the PBX's view of them). Pure."""

    def __init__(self) -> None:
        self.endpoint: dict[str, str] = {}  # agent -> the endpoint their console registers as
        self.state: dict[str, str] = {}
        self.detail: dict[str, str] = {}
        self.contacts: dict[str, dict[str, str]] = {}  # endpoint -> {contact URI: the PBX that has it}

    def holder(self, endpoint: str) -> str | None:
        """The agent whose console was given ``endpoint``'s account (until they log out)."""
        return next((a for a, e in self.endpoint.items() if e == endpoint), None)

    def uses_browser(self, agent_id: str) -> bool:
        return agent_id in self.endpoint

    def registered(self, agent_id: str) -> bool:
        return self.state.get(agent_id) == "registered"

    def contact_changed(self, endpoint: str, uri: str, status: str, pbx: str = "") -> Change | None:
        """The PBX reported a contact of ``endpoint``: the (agent, (state, detail)) it changes, or None.

        Only the agent's last contact going takes the phone away (remove_existing replaces a contact with
        its successor, in either order); the phone comes back from the PBX only if the PBX took it away
        (a console that reported a failure of its own knows better than a contact that still exists)."""
        contacts = self.contacts.setdefault(endpoint, {})
        if status in CONTACT_GONE:
            contacts.pop(uri, None)
        else:  # NonQualified (just registered), Reachable, Created, Updated, Unknown
            contacts[uri] = pbx
        agent_id = self.holder(endpoint)
        if agent_id is None:
            return None
        return self._judge(agent_id, endpoint, CONTACT_GONE.get(status))

    def contacts_listed(self, pbx: str, listed: Iterable[tuple[str, str, str]]) -> list[Change]:
        """The PBX's whole list of (endpoint, uri, status): it replaces what that PBX said before, and every
        browser phone is judged again, the ones with no contact on any PBX unregistered."""
        for contacts in self.contacts.values():
            for uri in [u for u, p in contacts.items() if p == pbx]:
                del contacts[uri]
        unreachable: set[str] = set()
        for endpoint, uri, status in listed:
            if status in CONTACT_GONE:  # listed, but Unreachable: no use for a call
                unreachable.add(endpoint)
            else:
                self.contacts.setdefault(endpoint, {})[uri] = pbx
        changes = []
        for agent_id, endpoint in sorted(self.endpoint.items()):
            gone = CONTACT_GONE["Unreachable"] if endpoint in unreachable else NO_CONTACT
            change = self._judge(agent_id, endpoint, gone)
            if change is not None:
                changes.append(change)
        return changes

    def _judge(self, agent_id: str, endpoint: str, gone: str | None) -> Change | None:
        """``gone``: the detail to give if the phone has no contact left (None: this news took none away).
        A phone whose state nobody told this process yet (a restart) takes the PBX's word either way."""
        state, detail = self.state.get(agent_id), self.detail.get(agent_id, "")
        has_contact = bool(self.contacts.get(endpoint))
        if not has_contact and gone is not None and state in (None, "registered"):
            return agent_id, ("unregistered", gone)
        if has_contact and (state is None or (state == "unregistered" and detail in PBX_DETAILS)):
            return agent_id, ("registered", "")
        return None

    def shown(self, agent_id: str) -> str:
        """The grid's value: "" for a desk phone."""
        return self.state.get(agent_id, "unregistered") if agent_id in self.endpoint else ""

    def shown_detail(self, agent_id: str) -> str:
        """Why the phone is not registered, as the consoles put it in words ("" when it is)."""
        return self.detail.get(agent_id, "") if agent_id in self.endpoint and not self.registered(agent_id) else ""


class PhonePresence:
    def __init__(self, queueing: QueueingService, bus: EventBus, clock: Callable[[], float],
                 browser_endpoint: Callable[[str], str | None] = lambda device: None) -> None:
        self.queueing = queueing
        self.bus = bus
        self.clock = clock
        self.browser_endpoint = browser_endpoint  # an agent's device -> the endpoint of their browser phone
        self.phones = PhoneRegistrations()
        bus.subscribe(d.AgentStateChanged, self._on_agent_state)
        bus.subscribe(PbxContactChanged, self._on_contact)
        bus.subscribe(PbxContactsListed, self._on_contacts_listed)

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
        endpoint = self.phones.endpoint.get(agent_id) or self._adopt(agent_id)
        if endpoint is None or endpoint != extension:
            raise ValueError(f"phone {extension} is not the browser phone of agent {agent_id}")
        self._set(agent_id, extension, state, detail)

    def _adopt(self, agent_id: str) -> str | None:
        """After a restart the journal has the agent logged in on their browser phone, but nobody has told
        this process which endpoint it is: the device they logged in with says."""
        if agent_id in self.phones.endpoint or not self.router.config.has_agent(agent_id):
            return self.phones.endpoint.get(agent_id)
        view = self.router.agent_view(agent_id, self.clock())
        endpoint = self.browser_endpoint(view.endpoint) if view.state != "logged_out" else None
        if endpoint is None or self.phones.holder(endpoint) is not None:
            return None
        self.phones.endpoint[agent_id] = endpoint
        return endpoint

    def _on_contact(self, e: PbxContactChanged) -> None:
        if not self._usable(e):
            return
        change = self.phones.contact_changed(e.endpoint, e.uri, e.status, e.pbx)
        if change is None and self.phones.holder(e.endpoint) is None:
            log.info("PBX %s: contact %s of %s %s: not a logged-in agent's browser phone", e.pbx, e.uri,
                     e.endpoint, e.status)
        if change is not None:
            agent_id, (state, detail) = change
            self._set(agent_id, e.endpoint, state, detail)

    def _on_contacts_listed(self, e: PbxContactsListed) -> None:
        for agent_id in self.router.agent_ids():
            self._adopt(agent_id)
        listed = [(c.endpoint, c.uri, c.status) for c in e.contacts if self._usable(c)]
        held = set(self.phones.endpoint.values())
        log.info("PBX %s lists %d contacts, %d of them of logged-in agents' browser phones", e.pbx, len(listed),
                 sum(1 for endpoint, _, _ in listed if endpoint in held))
        for agent_id, (state, detail) in self.phones.contacts_listed(e.pbx, listed):
            self._set(agent_id, self.phones.endpoint[agent_id], state, detail)

    @staticmethod
    def _usable(c: PbxContactChanged) -> bool:
        if c.endpoint and sip_uri(c.uri) and c.status:
            return True
        log.warning("PBX %s: contact report ignored (endpoint %r, URI %r, status %r)", c.pbx, c.endpoint[:40],
                    c.uri[:120], c.status[:20])
        return False

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
