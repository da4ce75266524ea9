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

from ctiserver.consoles.devices import PhoneSettings
from ctiserver.consoles.softphone import SoftphoneSettings, sip_password
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import AGENT1, AGENT2, PLAIN_CALLER, AppSite, app_site

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
