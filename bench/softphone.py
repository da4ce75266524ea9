"""The agent console as the phone, at the size of a team: 20 agent pages in headless Chromium (fake audio
devices), each registered over SIP/WebSocket to the PBX simulator, answering by itself; callers arrive through
the IVR and the ACD, a call every 0.5 s, and every call is answered in a browser, with real WebRTC audio both
ways (aiortc on the PBX side, in the simulator's media process). Each call talks 1.5 s after its first packet
from the browser and the caller hangs up, so a few calls talk at once (calls_talking_max), as a team's calls
overlap; all twenty on one 2-core machine would measure twenty agents' computers crammed into one, not the
console.

ring_ms: from the ACD's offer decision (the router's Offer event, on the CTI's bus) to the browser's 180
Ringing at the PBX (JsSIP sends it when its session is created: the page is ringing), for every INVITE that
rang, matched by the offer's leg id (the agent leg's uniqueid); target p99 under 200 ms. Its parts (p50):
offer_to_invite (the CTI's Originate through AMI to the INVITE leaving the PBX), invite_to_180 (the
websocket to the page, JsSIP, the 180 back).
answer_audio_ms: from the browser's 200 OK at the PBX to the first RTP packet from the browser at the PBX
(ICE, DTLS and SRTP on both sides).
audio_both_ways: every call had RTP both ways (the browser's getStats inbound and outbound packets, the PBX
side's received packets).
console_memory_mb_per_page: the pages' JavaScript heap (performance.memory), mean and max;
console_renderer_pss_mb_per_page: the proportional memory of the pages' renderer processes.

--quick runs one round of 20 calls instead of three: the same measurement, fewer samples.
--trace prints each INVITE's parts to stderr (one JSON line a call) and the event loop's lag is reported.

Prints one JSON object:
    python bench/softphone.py [--quick] [--trace]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from acd import decisions as acd_d
from pbxsim.channels import Channel
from pbxsim.sip_ws import BrowserCall
from tests.browser.softphone_site import CHROMIUM_ARGS, PhoneSite, phone_site, start_work
from tests.gateway.gw_harness import PLAIN_CALLER, _hash

PAGES = 20
# Chromium's audio service opens at most 16 input streams at once (media/audio: kDefaultMaxInputStreams): a
# 17th page's getUserMedia fails and JsSIP answers 480. Agents each have their own browser; two Chromiums of
# ten pages stand for them.
PAGES_PER_BROWSER = 10
CALL_GAP_S = 0.5  # two calls a second for the team: each is set up while others talk
TALK_S = 1.5  # each call talks this long after its first packet from the browser, then the caller hangs up
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

# --trace: when the page's JsSIP saw the INVITE and sent its 180 (wall clock, as time.time())
TRACE_HOOK = """() => {
  window.__rings = [];
  const now = () => (performance.timeOrigin + performance.now()) / 1000;
  window.__softphone.ua.on("newRTCSession", (e) => {
    if (e.originator !== "remote") return;
    const r = { callId: e.request.call_id, invite: now() };
    window.__rings.push(r);
    e.session.on("progress", () => { r.progress = now(); });
    e.session.on("failed", (f) => { r.failed = `${f.originator} ${f.cause}`; });
  });
}"""


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def descendants() -> list[int]:
    """Every process started under this one (Playwright's driver, the Chromiums and their children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    out, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def share_priority() -> int:
    """Give the Chromiums the bench's own scheduling group priority. Playwright starts each browser in a
    session of its own, so it falls in an autogroup of its own at nice 0: on a shared machine the pages (the
    agents' phones, half of what is measured) would wait behind everyone else while the CTI ran at the
    bench's priority. Returns how many sessions were given it."""
    try:
        nice = int(Path("/proc/self/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0
    ours, done = os.getsid(0), set()
    for pid in descendants():
        try:
            sid = os.getsid(pid)
            if sid != ours and sid not in done:
                Path(f"/proc/{sid}/autogroup").write_text(str(nice))
                done.add(sid)
        except OSError:
            continue
    return len(done)


def renderer_pss_mb() -> list[float]:
    """PSS of every Chromium renderer started under this process (the pages; PSS shares what they share)."""
    out = []
    for pid in descendants():
        try:
            if b"--type=renderer" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            pss = next(line for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                       if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        out.append(int(pss.split()[1]) / 1024)
    return out


async def loop_lag(lags: list[float]) -> None:
    """How late the CTI's and the simulator's event loop wakes up (they share it in the bench)."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append((time.monotonic() - t - 0.01) * 1000)


class Bench:
    def __init__(self, ps: PhoneSite, trace: bool) -> None:
        self.ps, self.trace = ps, trace
        self.offered: dict[str, float] = {}  # leg id -> when the router decided the offer
        self.pages: dict[str, Page] = {}
        self.ring_ms: list[float] = []
        self.to_invite_ms: list[float] = []
        self.invite_to_180_ms: list[float] = []
        self.answer_audio_ms: list[float] = []
        self.both_ways: list[bool] = []
        self.unanswered = 0
        self.talking = self.talking_max = 0  # calls talking at once
        self.wall = time.time() - time.monotonic()
        ps.site.server.bus.subscribe(acd_d.Offer, lambda e: self.offered.__setitem__(e.leg_id, time.monotonic()))

    async def open_console(self, browser: Browser, i: int, agent: str) -> None:
        context = await browser.new_context(locale="zh-CN")
        page = await context.new_page()
        await page.goto(self.ps.site.http_url + "/agent")
        await start_work(page, self.ps.site, f"bench{i}", agent, "sales", "空闲")
        self.pages[agent] = page
        if self.trace:
            await page.evaluate(TRACE_HOOK)

    async def round(self, last: bool) -> None:
        """Twenty callers, one every CALL_GAP_S; each call talks TALK_S after its first packet from the
        browser, has its audio judged on both sides, and the caller hangs up. So a few calls talk at once, as
        a team's calls overlap, and every page has rung while the others were registered and busy."""
        site, pbx = self.ps.site, self.ps.pbx
        first = len(pbx.calls)
        talks = []
        for _ in AGENTS:
            caller = site.call(PLAIN_CALLER, "sales")
            talks.append(asyncio.create_task(self.talk(caller)))
            await asyncio.sleep(CALL_GAP_S)
        judged = await asyncio.gather(*talks)
        calls = pbx.calls[first:]
        if self.trace:
            await self.print_trace(calls)
        for call in calls:
            offered = self.offered.get(call.chan.uniqueid)
            if call.ringing_at is not None and offered is not None:
                self.ring_ms.append((call.ringing_at - offered) * 1000)
                self.to_invite_ms.append((call.invite_sent_at - offered) * 1000)
                self.invite_to_180_ms.append((call.ringing_at - call.invite_sent_at) * 1000)
            if not call.answered:
                self.unanswered += 1  # rung and not answered (re-offered elsewhere): not a call's audio
        self.both_ways.extend(judged)  # a caller whose call never connected counts as False
        if not last:
            await self.back_to_available()

    async def talk(self, caller: Channel) -> bool:
        """One caller's call: wait for the browser leg it is bridged to, answered with RTP from the browser,
        let it talk, judge its audio both ways, hang up. False when it never connected."""
        pbx = self.ps.pbx
        deadline = time.monotonic() + 120  # a loaded machine sets calls up slowly: wait, then judge

        def connected() -> BrowserCall | None:
            bridge = caller.bridge
            if bridge is None:
                return None
            return next((c for c in pbx.calls if c.answered and c.chan.bridge is bridge and c.peer is not None
                         and c.peer.first_rtp_at is not None), None)
        call = connected()
        while call is None and time.monotonic() < deadline and not caller.dead:
            await asyncio.sleep(0.05)
            call = connected()
        if call is None:
            self.hang_up(caller)
            return False
        self.talking += 1
        self.talking_max = max(self.talking_max, self.talking)
        await asyncio.sleep(TALK_S)
        ok = await self.judge_audio(call)
        self.talking -= 1
        self.hang_up(caller)
        return ok

    def hang_up(self, caller: Channel) -> None:
        for run in self.ps.site.sim.callers:
            if run.chan is caller:
                run.hang_up()

    async def judge_audio(self, call: BrowserCall) -> bool:
        first_rtp = call.peer.first_rtp_at if call.peer is not None else None
        if call.answered_at is not None and first_rtp is not None:
            self.answer_audio_ms.append((first_rtp - call.answered_at) * 1000)
        page = self.pages[call.extension]
        await page.evaluate("window.__softphone.measure()")
        browser_side = await page.evaluate("window.__softphone.stats")
        peer = await call.peer.stats() if call.peer is not None else {}
        ok = (browser_side["packetsReceived"] > 0 and browser_side["packetsSent"] > 0
              and peer.get("packets_received", 0) > 0)
        if not ok:
            print(f"call to {call.extension}: browser {browser_side}, PBX side {peer}", file=sys.stderr)
        return ok

    async def back_to_available(self) -> None:
        site = self.ps.site
        await asyncio.sleep(1.0)
        for page in self.pages.values():
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

    async def print_trace(self, calls: list[BrowserCall]) -> None:
        rings: dict[str, dict[str, Any]] = {}
        for page in self.pages.values():
            for r in await page.evaluate("window.__rings"):
                rings[r["callId"]] = r

        def ms(a: float | None, b: float | None) -> int | None:
            return None if a is None or b is None else round((b - a) * 1000)
        for call in calls:
            offered = self.offered.get(call.chan.uniqueid)
            r = rings.get(call.call_id, {})
            in_page = r["invite"] - self.wall if "invite" in r else None
            sent_180 = r["progress"] - self.wall if "progress" in r else None
            print(json.dumps({
                "agent": call.extension, "final": call.final_status, "answered": call.answered,
                "offer_to_pbx": ms(offered, call.rung_at), "pbx_sdp": ms(call.rung_at, call.offer_ready_at),
                "to_page": ms(call.invite_sent_at, in_page), "in_page": ms(in_page, sent_180),
                "180_to_pbx": ms(sent_180, call.ringing_at), "ring": ms(offered, call.ringing_at),
                "failed": r.get("failed")}), file=sys.stderr)


async def run(rounds: int, trace: bool = False) -> dict[str, object]:
    started = time.monotonic()
    lags: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with phone_site(Path(tmp), acd_yaml=ACD, accounts=ACCOUNTS) as ps:
            ps.site.passwords = dict(PASSWORDS)
            bench = Bench(ps, trace)
            async with async_playwright() as p:
                browsers = await asyncio.gather(*(
                    p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    for _ in range(0, PAGES, PAGES_PER_BROWSER)))
                share_priority()
                await asyncio.gather(*(bench.open_console(browsers[i // PAGES_PER_BROWSER], i, a)
                                       for i, a in enumerate(AGENTS)))
                registered = sum(ps.pbx.registered(a) for a in AGENTS)
                setup_s = time.monotonic() - started
                lagger = asyncio.create_task(loop_lag(lags))
                for n in range(rounds):
                    await bench.round(last=n == rounds - 1)
                lagger.cancel()
                heaps = [await page.evaluate("performance.memory.usedJSHeapSize") / 2**20
                         for page in bench.pages.values()]
                pss = renderer_pss_mb()
                for browser in browsers:
                    await browser.close()
    return {
        "pages": PAGES,
        "registered": registered,
        "calls": len(bench.both_ways),
        "invites_not_answered": bench.unanswered,
        "ring_p50_ms": pct(bench.ring_ms, 50),
        "ring_p99_ms": pct(bench.ring_ms, 99),
        "ring_max_ms": round(max(bench.ring_ms), 1) if bench.ring_ms else None,
        "offer_to_invite_p50_ms": pct(bench.to_invite_ms, 50),
        "invite_to_180_p50_ms": pct(bench.invite_to_180_ms, 50),
        "answer_audio_ms": pct(bench.answer_audio_ms, 50),
        "answer_audio_p99_ms": pct(bench.answer_audio_ms, 99),
        "audio_both_ways": bool(bench.both_ways) and all(bench.both_ways),
        "calls_talking_max": bench.talking_max,
        "console_memory_mb_per_page": round(statistics.mean(heaps), 1),
        "console_memory_mb_max": round(max(heaps), 1),
        "console_renderer_pss_mb_per_page": round(statistics.mean(pss), 1) if pss else None,
        "loop_lag_p99_ms": pct(lags, 99),
        "setup_s": round(setup_s, 1),
        "elapsed_s": round(time.monotonic() - started, 1),
        # the machine's load while it ran (2 cores shared: figures under load > 2 are not the console's)
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 20 calls instead of three")
    parser.add_argument("--trace", action="store_true", help="each INVITE's parts on stderr")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(1 if args.quick else 3, args.trace))))


if __name__ == "__main__":
    main()
