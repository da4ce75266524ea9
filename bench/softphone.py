"""The agent console as the phone, at the size of a team: 20 agent pages in one headless Chromium (fake audio
devices), each registered over SIP/WebSocket to the PBX simulator, answering by itself; callers arrive through
the IVR and the ACD and every call is answered in a browser, with real WebRTC audio both ways (aiortc on the
PBX side).

ring_ms: from the ACD's offer decision (the router's Offer event) to the browser's 180 Ringing at the PBX
(JsSIP sends it when its session is created: the page is ringing); target p99 under 200 ms.
answer_audio_ms: from the browser's 200 OK at the PBX to the first RTP packet from the browser at the PBX.
audio_both_ways: every call had RTP both ways (the browser's getStats inbound and outbound packets, the PBX
side's received packets).
console_memory_mb_per_page: the pages' JavaScript heap (performance.memory), mean and max.

Prints one JSON object:
    python bench/softphone.py [--quick]      (--quick: one round of 20 calls, under a minute; same keys)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from acd import decisions as acd_d
from tests.browser.softphone_site import CHROMIUM_ARGS, phone_site, start_work
from tests.gateway.gw_harness import PLAIN_CALLER, _hash

PAGES = 20
# Chromium's audio service opens at most 16 input streams at once (media/audio: kDefaultMaxInputStreams): a
# 17th page's getUserMedia fails and JsSIP answers 480. Agents each have their own browser; two Chromiums of
# ten pages stand for them.
PAGES_PER_BROWSER = 10
CALL_GAP_S = 0.5  # two calls a second for the team: each is set up while others talk
AGENTS = [f"{2101 + i}" for i in range(PAGES)]
PASSWORDS = {f"bench{i}": f"bench-pass-{i}" for i in range(PAGES)}
ACD = "\n".join([
    "skills: [sales]",
    "pause_reasons: [break]",
    "queues:",  # the demo flow's queues (it routes to them); the callers pick sales
    *(f"  - {{name: {q}, skills: {{sales: 1}}, ring_timeout_s: 600, wrap_up_s: 1}}"
      for q in ("sales", "vip", "support", "complaints", "general")),
    "agents:",
    *(f'  - {{id: "{a}", name: Bench {a}, skills: {{sales: 5}}, queues: [sales, vip, support, complaints, general], endpoint: PJSIP/{a}, '
      f"auto_answer: true}}" for a in AGENTS),
]) + "\n"
ACCOUNTS = tuple({"username": f"bench{i}", "role": "agent", "agent_id": a, "display_name": f"Bench {a}",
                  "password_hash": _hash(PASSWORDS[f"bench{i}"])} for i, a in enumerate(AGENTS))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


HOOK = """() => {
  window.__rings = [];
  const now = () => performance.timeOrigin + performance.now();
  window.__softphone.ua.on("newRTCSession", (e) => {
    if (e.originator !== "remote") return;
    const r = { callId: e.request.call_id, invite: now() };
    window.__rings.push(r);
    e.session.on("progress", () => { r.progress = now(); });
    e.session.on("accepted", () => { r.accepted = now(); });
    e.session.on("failed", (f) => { r.failed = `${f.originator} ${f.cause} ${f.message ? f.message.status_code || "" : ""}`; r.failedAt = now(); });
  });
}"""


async def loop_lag(lags: list[float]) -> None:
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append((time.monotonic() - t - 0.01) * 1000)


async def run(rounds: int, trace: bool = False) -> dict[str, object]:
    started = time.monotonic()
    wall = time.time() - time.monotonic()
    lags: list[float] = []
    offered: dict[str, float] = {}  # agent id -> when the router decided the offer
    ring_ms: list[float] = []
    answer_audio_ms: list[float] = []
    both_ways: list[bool] = []
    unanswered = 0
    to_invite_ms: list[float] = []  # the part of ring_ms spent before the INVITE leaves the PBX
    with tempfile.TemporaryDirectory() as tmp:
        async with phone_site(Path(tmp), acd_yaml=ACD, accounts=ACCOUNTS) as ps:
            site = ps.site
            site.passwords = dict(PASSWORDS)
            site.server.bus.subscribe(acd_d.Offer, lambda e: offered.__setitem__(e.agent_id, time.monotonic()))
            async with async_playwright() as p:
                browsers = await asyncio.gather(*(
                    p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    for _ in range(0, PAGES, PAGES_PER_BROWSER)))
                pages: dict[str, Page] = {}

                async def open_console(i: int, agent: str) -> None:
                    context = await browsers[i // PAGES_PER_BROWSER].new_context(locale="zh-CN")
                    page = await context.new_page()
                    await page.goto(site.http_url + "/agent")
                    await start_work(page, site, f"bench{i}", agent, "sales", "空闲")
                    pages[agent] = page
                    if trace:
                        await page.evaluate(HOOK)
                await asyncio.gather(*(open_console(i, a) for i, a in enumerate(AGENTS)))
                registered = sum(ps.pbx.registered(a) for a in AGENTS)
                setup_s = time.monotonic() - started
                if trace:
                    print(f"setup {setup_s:.1f} s", file=sys.stderr)

                lagger = asyncio.create_task(loop_lag(lags))
                for _ in range(rounds):
                    first = len(ps.pbx.calls)
                    for _ in AGENTS:
                        site.call(PLAIN_CALLER, "sales")
                        await asyncio.sleep(CALL_GAP_S)
                    deadline = time.monotonic() + 120  # a loaded machine sets calls up slowly: wait, then judge
                    while time.monotonic() < deadline:
                        calls = ps.pbx.calls[first:]
                        if len(calls) >= PAGES and all(c.answered and c.peer is not None
                                                       and c.peer.rtp_in > 0 for c in calls):  # type: ignore[attr-defined]
                            break
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(1.5)  # a little talk: RTP both ways on every call
                    calls = ps.pbx.calls[first:]
                    if trace:
                        rings = {}
                        for page in pages.values():
                            for r in await page.evaluate("window.__rings"):
                                rings[r["callId"]] = r
                        for call in calls:
                            o = offered.get(call.extension)
                            r = rings.get(call.call_id, {})
                            ms = lambda a, b: None if a is None or b is None else round((b - a) * 1000)
                            print(json.dumps({
                                "ext": call.extension, "final": call.final_status,
                                "offer_rung": ms(o, call.rung_at), "rung_sdp": ms(call.rung_at, call.offer_ready_at),
                                "sdp_sent": ms(call.offer_ready_at, call.invite_sent_at),
                                "sent_browser": ms(call.invite_sent_at + wall, r.get("invite", 0) / 1000 or None),
                                "browser_180": ms(r.get("invite", 0) / 1000 or None, r.get("progress", 0) / 1000 or None),
                                "180_pbx": ms(r.get("progress", 0) / 1000 or None,
                                              None if call.ringing_at is None else call.ringing_at + wall),
                                "ring": ms(o, call.ringing_at), "failed": r.get("failed"),
                                "failed_after": ms(r.get("invite", 0) / 1000 or None, r.get("failedAt", 0) / 1000 or None)}),
                                  file=sys.stderr)
                    for call in calls:
                        if not call.answered:
                            unanswered += 1  # rung and not answered (re-offered elsewhere): not a call's audio
                            continue
                        if call.ringing_at is not None and call.extension in offered:
                            ring_ms.append((call.ringing_at - offered[call.extension]) * 1000)
                            to_invite_ms.append((call.invite_sent_at - offered[call.extension]) * 1000)
                        first_rtp = getattr(call.peer, "first_rtp_at", None)
                        if call.answered_at is not None and first_rtp is not None:
                            answer_audio_ms.append((first_rtp - call.answered_at) * 1000)
                        page = pages[call.extension]
                        await page.evaluate("window.__softphone.measure()")
                        browser_side = await page.evaluate("window.__softphone.stats")
                        peer = await call.peer.stats() if call.peer is not None else {}  # type: ignore[attr-defined]
                        ok = (browser_side["packetsReceived"] > 0 and browser_side["packetsSent"] > 0
                              and peer.get("packets_received", 0) > 0)
                        if not ok:
                            print(f"call to {call.extension}: browser {browser_side}, PBX side {peer}", file=sys.stderr)
                        both_ways.append(ok)
                    answered = sum(c.answered for c in calls)
                    both_ways.extend(False for _ in range(PAGES - answered))  # a caller never connected
                    for run_ in site.sim.callers:
                        run_.hang_up()
                    await asyncio.sleep(1.0)
                    for page in pages.values():
                        try:  # a wrap-up held open by its form (a page whose wrap-up ended has none)
                            if await page.locator("#wrapup-panel").is_visible():
                                await page.select_option("#wrapup-disposition", "resolved", timeout=2000)
                                await page.click("#btn-save-wrapup", timeout=2000)
                        except PlaywrightError:
                            pass
                    for _ in range(100):
                        views = [site.server.projector.router.agent_view(a, site.server.now()).state for a in AGENTS]
                        if all(v == "available" for v in views):
                            break
                        await asyncio.sleep(0.1)
                    offered.clear()

                lagger.cancel()
                heaps = [await page.evaluate("performance.memory.usedJSHeapSize") / 2**20 for page in pages.values()]
                for browser in browsers:
                    await browser.close()
    return {
        "pages": PAGES,
        "registered": registered,
        "calls": len(both_ways),
        "invites_not_answered": unanswered,
        "ring_p50_ms": pct(ring_ms, 50),
        "ring_p99_ms": pct(ring_ms, 99),
        "ring_max_ms": round(max(ring_ms), 1) if ring_ms else None,
        "offer_to_invite_p50_ms": pct(to_invite_ms, 50),
        "answer_audio_ms": pct(answer_audio_ms, 50),
        "answer_audio_p99_ms": pct(answer_audio_ms, 99),
        "audio_both_ways": bool(both_ways) and all(both_ways),
        "console_memory_mb_per_page": round(statistics.mean(heaps), 1),
        "console_memory_mb_max": round(max(heaps), 1),
        "setup_s": round(setup_s, 1),
        "elapsed_s": round(time.monotonic() - started, 1),
        # the machine's load while it ran (2 cores shared: figures under load > 2 are not the console's)
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "loop_lag_p50_ms": pct(lags, 50), "loop_lag_p99_ms": pct(lags, 99), "loop_lag_max_ms": round(max(lags), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 20 calls (under a minute)")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(1 if args.quick else 3, args.trace))))


if __name__ == "__main__":
    main()
