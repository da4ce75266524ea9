"""A site whose queues record: sales always, support on demand, complaints never; helpers to take a call,
leave a voicemail and fetch audio over the gateway's real HTTP server."""

from __future__ import annotations

import asyncio
import math
import urllib.error
import urllib.request
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pbxsim.people import CallerBehaviour
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import ACD_YAML, AGENT1, DID, AppSite, app_site

REC_ACD_YAML = (ACD_YAML
                .replace("{name: sales, skills: {sales: 1},", "{name: sales, skills: {sales: 1}, recording: always,")
                .replace("{name: support, skills: {support: 1},",
                         "{name: support, skills: {support: 1}, recording: on_demand,")
                .replace("{name: complaints, skills: {complaints: 1},",
                         "{name: complaints, skills: {complaints: 1}, recording: never,"))
assert REC_ACD_YAML.count("recording:") == 3


@asynccontextmanager
async def rec_site(tmp: Path, **settings: Any) -> AsyncIterator[AppSite]:
    async with app_site(tmp, acd_yaml=REC_ACD_YAML, **settings) as site:
        yield site


async def console(site: AppSite, name: str) -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    return client


async def agent_on_duty(site: AppSite, name: str = "agent1", extension: str = AGENT1,
                        queues: tuple[str, ...] = ("sales", "support", "complaints")) -> ConsoleClient:
    client = await console(site, name)
    reply = await client.request("agent_login", extension=extension, queues=list(queues))
    assert reply["type"] == "result", reply
    await client.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    return client


async def talking(site: AppSite, client: ConsoleClient, agent_id: str, caller: str, queue: str) -> str:
    _, call_id = await site.ring_agent(agent_id, caller, queue)
    await site.answer(call_id)
    await client.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "talking"
                          and m["call"]["call_id"] == call_id)
    return call_id


async def recorded_row(site: AppSite, call_id: str) -> None:
    await site.until(lambda: site.crm_rows("SELECT 1 FROM interactions WHERE root_call_id = ? AND "
                                           "recording_ref != '' AND outcome = 'answered'", call_id),
                     f"the interaction row of {call_id}")


def message_wav(path: Path, seconds: float = 2.5) -> Path:
    """What the caller says: a falling tone, 8 kHz mono like the PBX's recordings."""
    rate = 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(int(6000 * math.sin(2 * math.pi * (440 - 100 * n / rate / seconds) * n / rate))
                               .to_bytes(2, "little", signed=True) for n in range(int(seconds * rate))))
    return path


def leave_voicemail(site: AppSite, caller: str, message: Path) -> None:
    """The caller presses 9 in the demo menu and speaks `message` after the tone (the simulator writes it
    as the recording) until the IVR's silence detection ends it."""
    site.sim.place_call(DID, caller, "", CallerBehaviour(keys=("9",), press_on_prompt=False, utterance=message))


async def voicemail_row(site: AppSite, caller: str) -> str:
    rows = await site.until(lambda: site.crm_rows(
        "SELECT call_id FROM interactions WHERE outcome = 'voicemail' AND caller = ? AND recording_ref != ''",
        caller), f"a voicemail from {caller}")
    return str(rows[0]["call_id"])


async def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET over a real socket (in a thread: urllib blocks)."""
    def fetch() -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()
    return await asyncio.to_thread(fetch)
