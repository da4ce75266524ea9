"""The agent's screen pop of a campaign call, through the console's websocket against a real server and the
PBX simulator: when the dialer gives an answered person to the agent (progressive and predictive), the
agent's console gets the customer's CRM card as an inbound pop has it, the campaign's name, script and its
own dispositions, and the call's state (connecting while their phone rings, then talking)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmstore.campaigns import AfterDisposition, DialingMode, Disposition
from crmstore.model import Flag, NewCustomer
from tests.dialer.harness import PERSON, campaign, dialer_stack
from tests.e2e.stack import PASSWORD
from tests.gateway.gw_client import ConsoleClient

SCRIPT = "Good morning, this is Example Co. about your new car."


@pytest.mark.parametrize("mode", [DialingMode.PROGRESSIVE, DialingMode.PREDICTIVE])
async def test_a_connected_campaign_call_pops_the_card_the_script_and_the_campaigns_dispositions(
        tmp_path: Path, mode: DialingMode) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as s:
        crm = s.server.crm
        ann = await crm.create_customer(NewCustomer(name="Ann Lee", company="Lee Motors", phones=(PERSON,)))
        await crm.set_flag(ann, Flag.VIP, "bought two cars")
        console = await ConsoleClient.open(s.server.gateway.ws_url)
        try:
            await console.login("agent1001", PASSWORD)
            assert (await console.request("agent_login", extension="1001", queues=["outbound"]))["type"] == "result"
            await s.add_campaign(campaign("followup", mode, script=SCRIPT, dispositions=("sale", "not_interested", "not_home"),
                                          disposition_rules=(Disposition("not_home", right_party=False,
                                                                         then=AfterDisposition.CALL_BACK),)),
                                 [(PERSON, "Ann", "Etc/UTC")])
            popped = await console.wait_for("campaign_call", timeout=20)
            talking = await console.wait_for(lambda m: m["type"] == "campaign_call" and m["state"] == "talking",
                                             timeout=20)
        finally:
            await console.close()
        [connect] = s.steps("connect")
        [connected] = s.steps("connected")
        # The card came when the pacer gave the line to the agent: their phone was ringing, nobody had spoken.
        assert popped["state"] == "connecting"
        assert popped["call_id"] == talking["call_id"] == connect.call_id == connected.call_id
        assert (popped["campaign"], popped["number"], popped["name"], popped["script"]) == (
            "followup", PERSON, "Ann Lee", SCRIPT)
        card = popped["pop"]["customer"]
        assert (card["id"], card["name"], card["company"]) == (ann, "Ann Lee", "Lee Motors")
        assert [flag["flag"] for flag in popped["pop"]["flags"]] == ["vip"]
        # Exactly the campaign's dispositions (its own, then the built-in ones), with what each does.
        assert [(d["name"], d["then"]) for d in popped["dispositions"]] == [
            ("sale", "done"), ("not_interested", "done"), ("not_home", "call_back"), ("call_back", "call_back"),
            ("wrong_number", "wrong_number"), ("do_not_call", "do_not_call")]
        assert talking["dispositions"] == popped["dispositions"]
        assert s.server.campaign_pops is not None


async def test_a_preview_line_pops_the_card_once_the_customer_answers(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as s:
        ann = await s.server.crm.create_customer(NewCustomer(name="Ann Lee", phones=(PERSON,)))
        console = await ConsoleClient.open(s.server.gateway.ws_url)
        try:
            await console.login("agent1001", PASSWORD)
            assert (await console.request("agent_login", extension="1001", queues=["outbound"]))["type"] == "result"
            await s.add_campaign(campaign("followup", DialingMode.PREVIEW, script=SCRIPT, dispositions=("sale",)),
                                 [(PERSON, "Ann", "Etc/UTC")])
            await console.wait_for("preview_card", timeout=10)
            reply = await console.request("preview_dial")
            call_id = reply["data"]["call_id"]
            popped = await console.wait_for("campaign_call", timeout=20)
        finally:
            await console.close()
        [connected] = s.steps("connected")
        assert (popped["state"], popped["call_id"], connected.call_id) == ("talking", call_id, call_id)
        assert (popped["pop"]["customer"]["id"], popped["script"]) == (ann, SCRIPT)
        assert [d["name"] for d in popped["dispositions"]] == ["sale", "call_back", "wrong_number", "do_not_call"]
