"""A campaign call in real headless Chromium, in English and in Chinese: the dialer puts an answered customer
through to the agent, whose console pops the customer's CRM card with the campaign's name and script and
shows the call (talking, then its wrap-up); the wrap-up offers exactly the campaign's dispositions, and the
one the agent saves (a call back at a time, do-not-call) lands on the campaign's attempt."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import AfterDisposition, DialingMode, Disposition
from crmstore.model import Flag, NewCustomer
from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.dialer.harness import LONG_PERSON, campaign
from tests.gateway.gw_harness import AGENT1, AppSite

pytestmark = pytest.mark.browser

SCRIPT = "Good morning, this is Example Co. calling about your new car."
TEXTS = {
    "en": {"talking": "Talking", "wrap_up": "Wrap-up", "available": "Available", "campaign": "Campaign",
           "call_back": "Call back (give the time)", "do_not_call": "Do not call again", "sale": "Sale"},
    "zh": {"talking": "通话中", "wrap_up": "话后处理", "available": "空闲", "campaign": "外呼活动",
           "call_back": "约定回呼（请填写时间）", "do_not_call": "勿再致电", "sale": "成交"},
}
CAMPAIGN_CODES = ["", "sale", "not_interested", "not_home", "call_back", "wrong_number", "do_not_call"]


@pytest.fixture
def site(campaign_site: AppSite) -> AppSite:
    return campaign_site


@pytest.mark.parametrize(("lang", "disposition"), [("en", "call_back"), ("zh", "do_not_call")])
async def test_a_campaign_call_pops_its_card_and_script_and_its_wrap_up_settles_the_attempt(
        browser: Browser, site: AppSite, lang: str, disposition: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    text = TEXTS[lang]
    server: Any = site.server
    customer = await server.crm.create_customer(NewCustomer(name="Ann Lee", company="Lee Motors",
                                                            phones=(LONG_PERSON,)))
    await server.crm.set_flag(customer, Flag.VIP, "bought two cars")
    problems: list[str] = []
    page = await open_page(browser, site.http_url + "/agent", problems, lang=lang)
    await login(page, site, "agent1")
    await page.fill("#phone-ext", AGENT1)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_have_text(text["available"])

    # The campaign starts once the agent is at work: the dialer gives the first answered person to them.
    store = CampaignStore(server.crm)
    await store.save(campaign("newcar", DialingMode.PROGRESSIVE, queue="sales", script=SCRIPT, wrap_up_s=120,
                              dispositions=("sale", "not_interested", "not_home"),
                              disposition_rules=(Disposition("not_home", right_party=False,
                                                             then=AfterDisposition.CALL_BACK),)))
    csv = site.db.parent / "newcar.csv"
    csv.write_text(f"phone,name,timezone\n{LONG_PERSON},Ann,Etc/UTC\n", encoding="utf-8")
    assert (await store.import_list("newcar", csv)).added == 1
    await store.resume("newcar")

    # The pop: the customer's card as an inbound pop shows it, the campaign's name and script, the call talking.
    await expect(page.locator("#pop")).to_be_visible(timeout=20_000)
    await expect(page.locator("#pop-name")).to_contain_text("Ann Lee")
    await expect(page.locator("#pop-company")).to_have_text("Lee Motors")
    await expect(page.locator("#pop-flags")).to_contain_text("VIP")
    await expect(page.locator("#pop-reason")).to_have_text(f"{text['campaign']}: newcar")
    await expect(page.locator("#campaign-panel")).to_be_visible()
    await expect(page.locator("#campaign-panel h2")).to_contain_text(f"{text['campaign']} newcar")
    await expect(page.locator("#campaign-script")).to_have_text(SCRIPT)
    await expect(page.locator("#call-state")).to_have_text(text["talking"], timeout=10_000)
    await expect(page.locator("#call-caller")).to_contain_text("Ann Lee")
    call_id = await page.locator("#pop").get_attribute("data-call-id")
    assert call_id and call_id.startswith("dial-")
    await page.screenshot(path=str(ARTIFACTS / f"campaign_pop_talking_{lang}.png"), full_page=True)

    # The customer hangs up: the agent's wrap-up, with exactly the campaign's dispositions.
    await expect(page.locator("#state-badge")).to_have_text(text["wrap_up"], timeout=20_000)
    await expect(page.locator("#wrapup-panel")).to_be_visible()
    await expect(page.locator("#wrapup-panel")).to_have_attribute("data-call-id", call_id)
    await expect(page.locator("#wrapup-panel")).to_have_attribute("data-campaign", "newcar")
    codes = await page.locator("#wrapup-disposition option").evaluate_all("(os) => os.map((o) => o.value)")
    assert codes == CAMPAIGN_CODES  # none of the site's own (resolved, complaint...)
    await expect(page.locator("#wrapup-disposition option[value=sale]")).to_have_text(text["sale"])
    await expect(page.locator("#campaign-panel")).to_be_visible()  # the script stays in sight while wrapping up

    await page.select_option("#wrapup-disposition", disposition)
    await expect(page.locator(f"#wrapup-disposition option[value={disposition}]")).to_have_text(text[disposition])
    due_epoch = None
    if disposition == "call_back":  # the form asks when: the follow-up's time, as a call back
        await expect(page.locator("#fu-fields")).to_be_visible()
        await expect(page.locator("#fu-kind")).to_have_value("callback")
        due = (datetime.now() + timedelta(hours=3)).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")
        await page.fill("#fu-due", due)
        due_epoch = await page.evaluate(f"new Date({due!r}).getTime() / 1000")
    await page.fill("#wrapup-notes", "asked us about the spring offer")
    await page.screenshot(path=str(ARTIFACTS / f"campaign_wrapup_{lang}.png"), full_page=True)
    await page.click("#wrapup-form button[type=submit]")
    await expect(page.locator("#wrapup-panel")).to_be_hidden(timeout=10_000)
    await expect(page.locator("#campaign-panel")).to_be_hidden()
    await expect(page.locator("#state-badge")).to_have_text(text["available"], timeout=10_000)
    await page.screenshot(path=str(ARTIFACTS / f"campaign_saved_{lang}.png"), full_page=True)

    # The disposition landed on the campaign's attempt, and on the contact.
    rows = site.crm_rows("SELECT call_id, outcome, disposition, agent FROM campaign_attempts")
    assert [tuple(r) for r in rows] == [(call_id, "connected", disposition, AGENT1)]
    [contact] = await store.contacts("newcar")
    if disposition == "call_back":
        assert (contact.status.value, contact.next_at) == ("retry", due_epoch)
    else:
        assert contact.status.value == "excluded"
        assert [tuple(r) for r in site.crm_rows("SELECT number FROM do_not_call")] == [(LONG_PERSON,)]
    assert problems == []
