"""Browser phones and availability agree (real websocket consoles against the real app and simulator): the
console gets its own SIP account at login and nobody else's; an agent whose browser phone is not registered
is paused (phone_unregistered) and offered nothing, and becomes available when it registers; supervisors see
each agent's phone state; a report about another agent's phone is refused; a site without softphones is as
before."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctiserver.app import CtiServer
from ctiserver.consoles.devices import PhoneSettings
from ctiserver.consoles.softphone import SoftphoneSettings, sip_password
from pbxsim.sip_ws import SipWsServer
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import AGENT1, AGENT2, PLAIN_CALLER, AppSite, app_site
from tests.pbxsim.ws_phone import WsPhone

SECRET = "phone-presence-tests-secret"
SOFT = PhoneSettings(softphone=SoftphoneSettings(ws_url="wss://pbx.test:8089/ws", secret=SECRET,
                                                 domain="pbx.test"))


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, phones=SOFT) as s:
        yield s


async def console(site: AppSite, name: str) -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    return client


def state(site: AppSite, agent_id: str = AGENT1) -> tuple[str, str | None]:
    v = site.server.projector.router.agent_view(agent_id, site.server.now())
    return v.state, v.pause_reason


def phone_in_grid(agent_id: str, phone: str) -> object:
    def test(m: Msg) -> bool:
        row = m["agents"].get(agent_id) if m["type"] == "agent_grid_delta" else None
        return bool(row) and row.get("phone") == phone
    return test


async def test_each_console_gets_its_own_account_only(site: AppSite) -> None:
    a1, a2 = await console(site, "agent1"), await console(site, "agent2")
    reply = await a1.request("phone_account", extension=AGENT1)
    account = reply["data"]["account"]
    assert account == {"ws_url": "wss://pbx.test:8089/ws", "uri": f"sip:{AGENT1}@pbx.test", "username": AGENT1,
                       "password": sip_password(SECRET, AGENT1), "register_expires_s": 300, "ice_servers": [],
                       "auto_answer": False}
    reply2 = await a2.request("phone_account", extension=AGENT2)
    assert reply2["data"]["account"]["password"] == sip_password(SECRET, AGENT2) != account["password"]
    # agent 1's password went to agent 1's console only
    assert not any(account["password"] in json.dumps(m) for m in a2.seen)
    # the page itself never holds it
    response = await asyncio.to_thread(urllib.request.urlopen, site.http_url + "/agent")
    page = response.read().decode()
    assert account["password"] not in page and SECRET not in page
    # the page may open the PBX's SIP websocket, and only it (one policy header: two would narrow each other)
    policies = response.headers.get_all("Content-Security-Policy")
    assert len(policies) == 1 and "connect-src 'self' wss://pbx.test:8089/ws;" in policies[0], policies
    await a1.close()
    await a2.close()


async def test_unregistered_phone_gets_no_offers_until_it_registers(site: AppSite) -> None:
    boss = await console(site, "super1")
    a = await console(site, "agent1")
    await a.request("phone_account", extension=AGENT1)
    reply = await a.request("agent_login", extension=AGENT1, queues=["sales"])
    assert reply["type"] == "result", reply
    assert state(site) == ("paused", "phone_unregistered")
    await boss.wait_for(phone_in_grid(AGENT1, "unregistered"))
    call_id = await site.add_waiting_call("sales", PLAIN_CALLER)
    assert state(site)[0] == "paused"  # the caller waits: no offer rings a phone that cannot ring
    refused = await a.request("ready")  # nor can the agent make themselves available without a phone
    assert refused["type"] == "error" and refused["reason"] == "invalid_state", refused
    assert state(site) == ("paused", "phone_unregistered")
    assert not [m for m in a.drain() if m["type"] == "offer"]

    assert (await a.request("phone_state", extension=AGENT1, state="registered"))["type"] == "result"
    await a.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == call_id)
    await boss.wait_for(phone_in_grid(AGENT1, "registered"))

    # the phone loses its registration during the call: the pause waits for the call's end
    await site.answer(call_id)
    await a.request("phone_state", extension=AGENT1, state="failed", detail="network")
    await boss.wait_for(phone_in_grid(AGENT1, "failed"))
    assert state(site)[0] == "on_call"
    grid_rows = [m["agents"][AGENT1] for m in boss.seen if m["type"] == "agent_grid_delta" and AGENT1 in m["agents"]]
    assert any(r.get("phone_detail") == "network" for r in grid_rows)
    await a.close()
    await boss.close()


async def test_a_report_about_another_agents_phone_is_refused(site: AppSite) -> None:
    a1 = await console(site, "agent1")
    await a1.request("phone_account", extension=AGENT1)
    await a1.request("agent_login", extension=AGENT1, queues=["sales"])
    reply = await a1.request("phone_state", extension=AGENT2, state="registered")
    assert reply["type"] == "error" and reply["reason"] == "not_yours", reply
    assert state(site) == ("paused", "phone_unregistered")
    # nor can an agent choose the server's reason to pause, or ask for a second phone while logged in
    assert (await a1.request("pause", reason="phone_unregistered"))["type"] == "error"
    supervisor = await console(site, "super1")
    assert (await supervisor.request("phone_account", extension="2001"))["code"] == "forbidden"
    await a1.close()
    await supervisor.close()


async def test_a_site_without_softphones_is_as_before(tmp_path: Path) -> None:
    async with app_site(tmp_path) as site:
        a = await console(site, "agent1")
        assert (await a.request("phone_account", extension=AGENT1))["data"] == {"account": None}
        await a.request("agent_login", extension=AGENT1, queues=["sales"])
        assert state(site) == ("available", None)
        row = site.server.console.views.agent_row(AGENT1)
        assert row["phone"] == ""
        await a.close()


TEMPLATE_ACD = """\
skills: [sales]
pause_reasons: [break]
queues:
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30}
agents:
  - {id: "1001", name: Li Na, skills: {sales: 5}, queues: [sales]}
  - {id: "1002", name: Alice, skills: {sales: 5}, queues: [sales]}
"""


async def test_another_agents_extension_is_not_handed_out(tmp_path: Path) -> None:
    """With the site's template (PJSIP/{extension}), the extension is typed at login: a console asking for a
    phone another agent's console holds gets no account (it would carry that agent's SIP password)."""
    async with app_site(tmp_path, phones=SOFT, acd_yaml=TEMPLATE_ACD) as site:
        a1, a2 = await console(site, "agent1"), await console(site, "agent2")
        assert (await a1.request("phone_account", extension="3001"))["data"]["account"]["username"] == "3001"
        stolen = await a2.request("phone_account", extension="3001")
        assert stolen["type"] == "error" and stolen["reason"] == "not_yours", stolen
        assert sip_password(SECRET, "3001") not in json.dumps(a2.seen)
        assert (await a2.request("phone_account", extension="3002"))["data"]["account"]["username"] == "3002"
        # once agent 1 has logged in and out again, the phone is free
        await a1.request("agent_login", extension="3001", queues=["sales"])
        await a1.request("agent_logout")
        await asyncio.sleep(0.1)
        assert (await a2.request("phone_account", extension="3001"))["type"] == "result"
        await a1.close()
        await a2.close()


# ------------------------------------------------------------------ the PBX's own view (AMI ContactStatus)

def test_contact_status_of_capture_30_takes_the_phone_away_when_the_last_contact_goes() -> None:
    """Replayed from a real Asterisk 22.10.1: a browser registered (NonQualified, Reachable), unregistered
    (Removed), registered again, then was killed without unregistering (Removed)."""
    from ctiserver.callmodel.events import PbxContactChanged
    from ctiserver.consoles.phones import PhoneRegistrations
    from tests.callmodel.replay import replay

    changes = replay("30").of(PbxContactChanged)
    assert [(c.endpoint, c.status) for c in changes] == [
        ("1002", "NonQualified"), ("1002", "Reachable"), ("1002", "Removed"),
        ("1002", "NonQualified"), ("1002", "Reachable"), ("1002", "Removed")]
    assert changes[0].uri.startswith("sip:") and ";transport=ws;x-ast-orig-host=" in changes[0].uri
    phones = PhoneRegistrations()
    phones.endpoint["agent-b"] = "1002"
    phones.state["agent-b"] = "registered"  # as the console reported it
    said = [phones.contact_changed(c.endpoint, c.uri, c.status) for c in changes]
    # the first Removed: the console unregistered itself (its own report says so too; nothing changes here
    # once the console has said "unregistered")
    assert said[:2] == [None, None] and said[2] == ("agent-b", ("unregistered", "pbx_removed"))
    phones.state["agent-b"], phones.detail["agent-b"] = "unregistered", "pbx_removed"
    # registered again: the PBX gives back what the PBX took away
    assert said[3] is None  # (computed before the state above was applied: registered then)
    assert phones.contact_changed("1002", changes[3].uri, "NonQualified") == ("agent-b", ("registered", ""))
    phones.state["agent-b"], phones.detail["agent-b"] = "registered", ""
    # the browser killed: Removed, and nobody to unregister
    assert phones.contact_changed("1002", changes[5].uri, "Removed") == ("agent-b", ("unregistered", "pbx_removed"))


def test_contact_status_keeps_the_phone_while_another_contact_remains_and_ignores_others() -> None:
    from ctiserver.consoles.phones import PhoneRegistrations

    phones = PhoneRegistrations()
    phones.endpoint["a"] = "1002"
    phones.state["a"] = "registered"
    # remove_existing: the new contact may be reported before the old one's removal
    assert phones.contact_changed("1002", "sip:new@127.0.0.1:2;transport=ws", "NonQualified") is None
    assert phones.contact_changed("1002", "sip:old@127.0.0.1:1;transport=ws", "Removed") is None
    assert phones.contact_changed("1002", "sip:new@127.0.0.1:2;transport=ws", "Unreachable") == \
        ("a", ("unregistered", "pbx_unreachable"))
    # a console that reported a failure of its own is not overruled by a contact that exists
    phones.state["a"], phones.detail["a"] = "failed", "no_microphone"
    assert phones.contact_changed("1002", "sip:new@127.0.0.1:2;transport=ws", "Reachable") is None
    # an endpoint no console holds (a desk phone, an agent logged out) changes nobody
    assert phones.contact_changed("1001", "sip:1001@10.0.0.5:5060", "Removed") is None


async def test_a_browser_phone_gone_without_unregistering_pauses_its_agent(tmp_path: Path) -> None:
    """The console says its phone is registered and stays connected; the phone's own websocket to the PBX
    dies without a word (a crashed browser tab, a network that dropped it): the PBX's ContactStatus Removed
    pauses the agent at once (phone_unregistered) and supervisors see the phone unregistered."""
    from pbxsim.sip_ws import SipWsServer
    from tests.pbxsim.ws_phone import WsPhone

    async with app_site(tmp_path, phones=SOFT) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), media=False)
        await pbx.start()
        boss = await console(site, "super1")
        a = await console(site, "agent1")
        try:
            await a.request("phone_account", extension=AGENT1)
            await a.request("agent_login", extension=AGENT1, queues=["sales"])
            phone = WsPhone(pbx.url, AGENT1, sip_password(SECRET, AGENT1), "pbx.test")
            await phone.open()
            assert (await phone.register()).status == 200
            assert (await a.request("phone_state", extension=AGENT1, state="registered"))["type"] == "result"
            await boss.wait_for(phone_in_grid(AGENT1, "registered"))
            assert state(site) == ("available", None)
            assert phone.ws is not None
            phone.ws.transport.abort()  # no REGISTER Expires 0, no close frame
            await boss.wait_for(phone_in_grid(AGENT1, "unregistered"))
            assert state(site) == ("paused", "phone_unregistered")
            rows = [m["agents"][AGENT1] for m in boss.seen if m["type"] == "agent_grid_delta" and AGENT1 in m["agents"]]
            assert rows[-1].get("phone_detail") == "pbx_removed"
            await phone.close()
            # the console's phone registers again: the PBX's contact gives the agent back
            again = WsPhone(pbx.url, AGENT1, sip_password(SECRET, AGENT1), "pbx.test")
            await again.open()
            assert (await again.register()).status == 200
            await boss.wait_for(phone_in_grid(AGENT1, "registered"))
            for _ in range(100):
                if state(site) == ("available", None):
                    break
                await asyncio.sleep(0.05)
            assert state(site) == ("available", None)
            await again.close()
        finally:
            await a.close()
            await boss.close()
            await pbx.stop()


# ------------------------------------------------------------------ the PBX's list, read when the AMI link connects

async def _restart(site: AppSite) -> None:
    """The CTI stops and starts again on its journal; the PBX (and the browsers registered to it) stay."""
    journal = site.server.recorder.journal
    await journal.durable(journal.last_seq, 10)
    await site.server.stop()
    site.server = CtiServer(site.server.settings)
    await site.server.start()
    site.sim.world.agi_host_override = ("127.0.0.1", site.server.agi_port)
    await next(iter(site.server.pbxes.values())).link.wait_up(10)


async def _at_work_on_a_browser_phone(site: AppSite, pbx: SipWsServer) -> tuple[ConsoleClient, WsPhone]:
    a = await console(site, "agent1")
    await a.request("phone_account", extension=AGENT1)
    await a.request("agent_login", extension=AGENT1, queues=["sales"])
    phone = WsPhone(pbx.url, AGENT1, sip_password(SECRET, AGENT1), "pbx.test")
    await phone.open()
    assert (await phone.register()).status == 200
    assert (await a.request("phone_state", extension=AGENT1, state="registered"))["type"] == "result"
    await site.until(lambda: state(site) == ("available", None), "agent 1 available")
    return a, phone


async def _grid_row(site: AppSite, agent_id: str) -> dict[str, object]:
    boss = await console(site, "super1")
    try:
        snapshot = next(m for m in boss.seen if m["type"] == "snapshot")
        row = snapshot["agents"][agent_id]
        assert isinstance(row, dict)
        return row
    finally:
        await boss.close()


async def test_a_cti_started_after_the_browser_registered_sees_it_registered(tmp_path: Path) -> None:
    """The browser phone registered while the CTI was running; the CTI restarts. Before any console is back,
    the PBX's contact list (PJSIPShowContacts at the AMI link's connect) says the phone is registered:
    supervisors see it so, the agent stays available, and the console's own report, when it reconnects, is
    taken (the restarted CTI knows the phone from the device the agent logged in with)."""
    async with app_site(tmp_path, phones=SOFT) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), media=False)
        await pbx.start()
        try:
            a, phone = await _at_work_on_a_browser_phone(site, pbx)
            await a.close()
            await _restart(site)
            row = await _grid_row(site, AGENT1)
            assert row["phone"] == "registered" and not row.get("phone_detail")
            assert state(site) == ("available", None)
            a = await console(site, "agent1")
            assert (await a.request("phone_state", extension=AGENT1, state="registered"))["type"] == "result"
            assert state(site) == ("available", None)
            await a.close()
            await phone.close()
        finally:
            await pbx.stop()


async def test_a_cti_started_while_the_browser_phone_was_gone_pauses_its_agent(tmp_path: Path) -> None:
    """The browser dies (no unregistration) while the CTI is down: nobody heard the ContactStatus Removed.
    The restarted CTI reads the PBX's list, finds no contact for the agent's phone and pauses the agent at
    once (phone_unregistered), without waiting for the console rule; supervisors see why (pbx_no_contact).
    The phone registering again gives the agent back."""
    async with app_site(tmp_path, phones=SOFT) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), media=False)
        await pbx.start()
        try:
            a, phone = await _at_work_on_a_browser_phone(site, pbx)
            await a.close()
            journal = site.server.recorder.journal
            await journal.durable(journal.last_seq, 10)
            await site.server.stop()
            assert phone.ws is not None
            phone.ws.transport.abort()  # gone while nobody watched
            await site.until(lambda: not pbx.registered(AGENT1), "the PBX to drop the contact")
            site.server = CtiServer(site.server.settings)
            await site.server.start()
            site.sim.world.agi_host_override = ("127.0.0.1", site.server.agi_port)
            await next(iter(site.server.pbxes.values())).link.wait_up(10)
            assert state(site) == ("paused", "phone_unregistered")
            row = await _grid_row(site, AGENT1)
            assert row["phone"] == "unregistered" and row.get("phone_detail") == "pbx_no_contact"
            again = WsPhone(pbx.url, AGENT1, sip_password(SECRET, AGENT1), "pbx.test")
            await again.open()
            assert (await again.register()).status == 200
            await site.until(lambda: state(site) != ("paused", "phone_unregistered"), "agent 1 given back")
            await again.close()
            await phone.close()
        finally:
            await pbx.stop()


def test_the_contact_list_of_capture_33_is_read_through_the_call_model() -> None:
    """Replayed from a real Asterisk 22.10.1: ContactList says Endpoint/Uri/Status, not ContactStatus's
    names; Reachable keeps a phone registered, Unreachable takes it away, an empty list (the action's
    'No Contacts found' error) leaves no contact."""
    from ctiserver.callmodel.events import PbxContactsListed
    from ctiserver.callmodel.model import CallModel
    from ctiserver.consoles.phones import PhoneRegistrations
    from tests.callmodel.replay import replay

    messages = [m for _, m in replay("33").messages]
    lists: list[list[object]] = []
    for m in messages:
        if m.get("Response") is not None and m.get("ActionID", "").startswith("contacts-"):
            lists.append([])
        elif m.get("Event") == "ContactList":
            lists[-1].append(m)
    assert [len(x) for x in lists] == [0, 1, 1, 0]  # before, registered, unreachable, expired
    model = CallModel("pbx1")
    listed = [model.contacts_listed(x, 1.0)[0] for x in lists]  # type: ignore[arg-type]
    assert all(isinstance(e, PbxContactsListed) for e in listed)
    contact = listed[1].contacts[0]  # type: ignore[attr-defined]
    assert (contact.endpoint, contact.status) == ("1002", "Reachable")
    assert contact.uri.startswith("sip:1002@127.0.0.1:") and ";x-ast-orig-host=" in contact.uri
    assert listed[2].contacts[0].status == "Unreachable"  # type: ignore[attr-defined]

    def judge(phones: PhoneRegistrations, e: object) -> list[tuple[str, tuple[str, str]]]:
        return phones.contacts_listed("pbx1", [(c.endpoint, c.uri, c.status) for c in e.contacts])  # type: ignore[attr-defined]

    phones = PhoneRegistrations()
    phones.endpoint["agent-b"] = "1002"  # a restarted CTI: nothing known of the phone yet
    assert judge(phones, listed[1]) == [("agent-b", ("registered", ""))]
    phones.state["agent-b"] = "registered"
    assert judge(phones, listed[2]) == [("agent-b", ("unregistered", "pbx_unreachable"))]
    phones.state["agent-b"], phones.detail["agent-b"] = "unregistered", "pbx_unreachable"
    assert judge(phones, listed[1]) == [("agent-b", ("registered", ""))]
    phones.state["agent-b"], phones.detail["agent-b"] = "registered", ""
    assert judge(phones, listed[3]) == [("agent-b", ("unregistered", "pbx_no_contact"))]
    # a console's own failure is not overruled by a contact the PBX lists
    phones.state["agent-b"], phones.detail["agent-b"] = "failed", "no_microphone"
    assert judge(phones, listed[1]) == []


async def test_contact_reports_for_unknown_phones_or_bad_uris_change_nobody(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """ContactStatus and ContactList about an endpoint no logged-in agent's browser uses, a URI that is not
    a SIP URI, an empty endpoint, or the phone of an agent logged out: one log line each, no crash, and no
    agent paused. The link stays up and the next good report still counts."""
    import logging

    from pbxsim import wire

    async with app_site(tmp_path, phones=SOFT) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), media=False)
        await pbx.start()
        try:
            a, phone = await _at_work_on_a_browser_phone(site, pbx)
            caplog.set_level(logging.INFO, logger="ctiserver.consoles.phones")
            caplog.clear()
            bad = [("sip:9999@10.0.0.9:5060", "Removed", "9999"),  # nobody's phone
                   ("not a uri", "Removed", AGENT1),  # malformed
                   ("sip:1001@10.0.0.1:5060\x01", "Unreachable", AGENT1),  # a control character
                   ("sip:x@10.0.0.1:1;transport=ws", "Removed", ""),  # no endpoint
                   ("sip:1002@10.0.0.2:5060", "Removed", AGENT2)]  # agent 2 is not logged in
            for uri, status, endpoint in bad:
                site.sim.world.emit(wire.event("ContactStatus", [
                    ("URI", uri), ("ContactStatus", status), ("AOR", endpoint), ("EndpointName", endpoint),
                    ("RoundtripUsec", "0")]))
            await site.until(lambda: len([r for r in caplog.records if "contact" in r.getMessage()]) >= len(bad),
                             "a log line per bad report")
            lines = [r.getMessage() for r in caplog.records if "contact" in r.getMessage()]
            assert len(lines) == len(bad), lines
            assert state(site) == ("available", None)
            assert state(site, AGENT2)[0] == "logged_out"
            assert site.server.console.phone_presence.phones.state[AGENT1] == "registered"
            # the link read all of it and goes on: the real contact's end still pauses agent 1
            assert phone.ws is not None
            phone.ws.transport.abort()
            await site.until(lambda: state(site) == ("paused", "phone_unregistered"), "agent 1 paused")
            await a.close()
            await phone.close()
        finally:
            await pbx.stop()


async def test_a_registration_the_browser_did_not_refresh_pauses_its_agent_when_it_expires(tmp_path: Path) -> None:
    """The console says its phone is registered, but the phone never refreshes its registration (a page
    whose timers stopped): at the PBX's expiration check the contact is Removed and the agent paused
    (pbx_removed), though the phone's websocket is still open and it still answers the qualify."""
    async with app_site(tmp_path, phones=SOFT) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), media=False,
                          expiration_check_s=0.5, minimum_expiration_s=1)
        await pbx.start()
        boss = await console(site, "super1")
        a = await console(site, "agent1")
        try:
            await a.request("phone_account", extension=AGENT1)
            await a.request("agent_login", extension=AGENT1, queues=["sales"])
            phone = WsPhone(pbx.url, AGENT1, sip_password(SECRET, AGENT1), "pbx.test")
            await phone.open()
            assert (await phone.register(expires=2)).status == 200
            assert (await a.request("phone_state", extension=AGENT1, state="registered"))["type"] == "result"
            await site.until(lambda: state(site) == ("available", None), "agent 1 available")
            await site.until(lambda: state(site) == ("paused", "phone_unregistered"), "agent 1 paused")
            assert not pbx.registered(AGENT1) and phone.qualified >= 1
            await boss.wait_for(lambda m: m["type"] == "agent_grid_delta" and AGENT1 in m["agents"]
                                and (m["agents"][AGENT1] or {}).get("phone_detail") == "pbx_removed")
            await phone.close()
        finally:
            await a.close()
            await boss.close()
            await pbx.stop()
