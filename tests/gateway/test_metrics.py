"""/metrics over real HTTP from the real app, parsed with Prometheus's own parser and held to a known
situation: who waits where, the agents' states, the AMI link, the journal, and the latencies of a real call
offered, popped and answered. Who may scrape is cti.yaml's metrics.allow."""

from __future__ import annotations

import asyncio
import json
import re
from ipaddress import ip_network
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import AGENT1, PLAIN_CALLER, AppSite, app_site

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def http_get(site: AppSite, path: str) -> tuple[int, dict[str, str], str]:
    """One GET on a fresh connection, the way Prometheus scrapes: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", site.gateway.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # the gateway closes after the response
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body.decode()


async def scrape(site: AppSite) -> Samples:
    status, headers, body = await http_get(site, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=")
    out: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_tell_the_centre_as_it_is(site: AppSite) -> None:
    agent = await ConsoleClient.open(site.ws_url)
    await agent.login("agent1", site.passwords["agent1"])
    assert (await agent.request("agent_login", extension=AGENT1, queues=["sales", "vip"]))["type"] == "result"
    assert (await agent.request("pause", reason="lunch"))["type"] == "result"
    call_id = await site.add_waiting_call("sales", PLAIN_CALLER)  # nobody available: the caller waits

    s = await scrape(site)
    assert value(s, "cti_queue_calls_waiting", queue="sales") == 1
    assert value(s, "cti_queue_calls_waiting", queue="support") == 0
    assert 0 < value(s, "cti_queue_longest_wait_seconds", queue="sales") < 60
    assert value(s, "cti_queue_agents", queue="sales", state="paused") == 1
    assert ("cti_queue_agents", (("queue", "support"), ("state", "paused"))) not in s  # agent1 is not in support
    assert value(s, "cti_agents", state="paused") == 1 and value(s, "cti_agents", state="logged_out") == 1
    assert value(s, "cti_queue_offered_total", queue="sales") == 1
    assert value(s, "cti_queue_answered_total", queue="sales") == 0
    assert ("cti_queue_service_level_ratio", (("queue", "sales"),)) not in s  # no call counted yet
    assert value(s, "cti_queue_service_level_target_ratio", queue="sales") == 0.8
    assert value(s, "cti_ami_link_up", pbx="pbx1") == 1
    journal = site.server.journal
    assert 0 < value(s, "cti_journal_durable_seq") <= value(s, "cti_journal_appended_seq") <= journal.last_seq
    assert value(s, "cti_journal_lag_facts") == value(s, "cti_journal_appended_seq") - value(s, "cti_journal_durable_seq")
    assert 0 <= value(s, "cti_journal_seconds_since_commit") < 10
    assert value(s, "cti_journal_write_failures_total") == 0
    assert value(s, "cti_offer_latency_seconds_count") == 0

    # The agent is back: the caller is offered (the pop pushed, the phone rings), then answered.
    assert (await agent.request("ready"))["type"] == "result"
    await agent.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == call_id)
    await site.answer(call_id)
    await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "on_call",
                     "agent1 on the call")
    s = await scrape(site)
    assert value(s, "cti_queue_calls_waiting", queue="sales") == 0
    assert value(s, "cti_queue_answered_total", queue="sales") == 1
    assert value(s, "cti_queue_agents", queue="sales", state="on_call") == 1
    assert value(s, "cti_queue_service_level_ratio", queue="sales") in (0.0, 1.0)
    assert value(s, "cti_queue_wait_seconds_count", queue="sales", outcome="answered") == 1
    assert value(s, "cti_queue_wait_seconds_bucket", queue="sales", outcome="answered", le="+Inf") == 1
    assert value(s, "cti_offer_latency_seconds_count") == 1
    assert 0 < value(s, "cti_offer_latency_seconds_sum") < 5
    assert value(s, "cti_pop_latency_seconds_count") == 1
    assert 0 < value(s, "cti_pop_latency_seconds_sum") < 1
    assert value(s, "cti_queue_occupancy_ratio", queue="sales") > 0


async def test_metrics_are_refused_to_an_address_not_allowed_and_absent_when_off(tmp_path: Path) -> None:
    async with app_site(tmp_path, metrics_allow=(ip_network("10.9.9.0/24"),)) as site:
        status, _, body = await http_get(site, "/metrics")
        assert (status, body) == (403, "not allowed\n")
        assert (await http_get(site, "/healthz"))[0] == 200  # the rest of the site is as before
    (tmp_path / "off").mkdir()
    async with app_site(tmp_path / "off", metrics_allow=None) as site:
        assert (await http_get(site, "/metrics"))[0] == 404


DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_the_docs_and_the_dashboard_name_the_metrics_there_are(site: AppSite) -> None:
    _, _, body = await http_get(site, "/metrics")
    families = {family.name: family.type for family in text_string_to_metric_families(body)}
    assert len(families) > 20
    exposed = {f"{name}_total" if kind == "counter" else name for name, kind in families.items()}
    doc = (DOCS / "metrics.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(cti_[a-z_]+)` \|", doc, re.MULTILINE))
    assert listed == exposed  # every metric served is listed, and nothing else
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    used = {name for expr in exprs for name in re.findall(r"\bcti_[a-z_]+", expr)}
    series = exposed | {f"{name}_{part}" for name, kind in families.items() if kind == "histogram"
                        for part in ("bucket", "sum", "count")}
    assert used and used <= series, used - series
