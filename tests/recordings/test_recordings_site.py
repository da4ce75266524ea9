"""Recordings on the real app: MixMonitor at the bridge by queue policy, pause/resume for card payments,
playback over the gateway's HTTP server with the role and ownership checks, every playback audited."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from ctiserver.recordings.files import file_stem
from tests.gateway.gw_harness import AGENT1, AGENT2, KEY_ACCOUNT_CALLER, PLAIN_CALLER, AppSite
from tests.recordings.rec_site import (
    agent_on_duty,
    console,
    http_get,
    rec_site,
    recorded_row,
    talking,
)


def _recording(site: AppSite, call_id: str) -> bool:
    """Whether the PBX records the call's caller leg now."""
    return site.server.calls.caller_channel(call_id) in site.sim.world.recordings


def _state(call_id: str, state: str):  # type: ignore[no-untyped-def]
    return lambda m: m["type"] == "recording_state" and m["call_id"] == call_id and m["state"] == state


def _audits(site: AppSite, action: str) -> list[tuple[str, str]]:
    return [(r["actor"], r["detail"]) for r in
            site.crm_rows("SELECT actor, detail FROM audit_log WHERE action = ? ORDER BY id", action)]


async def test_always_queue_records_from_the_bridge_pauses_for_payment_and_plays_to_its_agent(
        tmp_path: Path) -> None:
    async with rec_site(tmp_path) as site:
        a1 = await agent_on_duty(site)
        call_id = await talking(site, a1, AGENT1, PLAIN_CALLER, "sales")
        await a1.wait_for(_state(call_id, "recording"))
        caller = site.server.calls.caller_channel(call_id)
        assert caller is not None and _recording(site, call_id)  # MixMonitor on the caller's leg
        assert site.sim.world.recordings[caller].file == str(site.server.recordings.settings.files.path(call_id))

        # Card payment: paused (MixMonitorMute State 1), a second pause is refused, then resumed.
        paused = await a1.request("recording_pause", call_id=call_id)
        assert paused["type"] == "result" and paused["data"] == {"call_id": call_id, "state": "paused"}
        assert site.sim.world.recordings[caller].muted_since is not None
        again = await a1.request("recording_pause", call_id=call_id)
        assert (again["type"], again["reason"]) == ("error", "invalid_state")
        resumed = await a1.request("recording_resume", call_id=call_id)
        assert resumed["data"]["state"] == "recording"
        assert site.sim.world.recordings[caller].muted and site.sim.world.recordings[caller].muted_since is None
        assert [a for a, _ in _audits(site, "recording_pause")] == ["agent1"]

        # The caller hangs up: the PBX closes the file; the call's history row names it.
        site.hang_up_caller(call_id)
        await a1.wait_for(_state(call_id, "ended"))
        await recorded_row(site, call_id)
        path = site.server.recordings.settings.files.path(call_id)
        await site.until(lambda: path.is_file(), "the recording file")

        listed = await a1.request("recordings_list")
        rows = {r["call_id"]: r for r in listed["data"]["recordings"]}
        assert rows[call_id]["agents"] == [AGENT1] and rows[call_id]["available"] is True

        played = await a1.request("recording_play", recording_id=call_id)
        assert played["type"] == "result", played
        assert _audits(site, "recording_play") == [("agent1", f"call {call_id}")]  # before the audio
        status, headers, body = await http_get(site.http_url + played["data"]["url"])
        assert status == 200 and headers["Content-Type"] == "audio/wav" and headers["Accept-Ranges"] == "bytes"
        with wave.open(io.BytesIO(body)) as w:
            seconds = w.getnframes() / w.getframerate()
        assert seconds > 0 and abs(seconds - played["data"]["seconds"]) < 0.01
        status, headers, part = await http_get(site.http_url + played["data"]["url"], {"Range": "bytes=0-99"})
        assert (status, headers["Content-Range"], part) == (206, f"bytes 0-99/{len(body)}", body[:100])
        status, _, _ = await http_get(site.http_url + played["data"]["url"], {"Range": f"bytes={len(body)}-"})
        assert status == 416

        # Another agent may not hear it, a supervisor may; neither refusal plays nor audits.
        a2 = await console(site, "agent2")
        refused = await a2.request("recording_play", recording_id=call_id)
        assert (refused["type"], refused["reason"]) == ("error", "not_your_call")
        boss = await console(site, "super1")
        heard = await boss.request("recording_play", recording_id=call_id)
        assert heard["type"] == "result"
        assert [a for a, _ in _audits(site, "recording_play")] == ["agent1", "super1"]
        listed = await boss.request("recordings_list")
        assert call_id in {r["call_id"] for r in listed["data"]["recordings"]}
        assert call_id not in {r["call_id"] for r in (await a2.request("recordings_list"))["data"]["recordings"]}

        # The ticket is the only key, for its own kind; it dies with the session.
        status, _, _ = await http_get(site.http_url + played["data"]["url"].replace("/recording/", "/voicemail/"))
        assert status == 404
        status, _, _ = await http_get(site.http_url + "/media/recording/" + "A" * 32)
        assert status == 404
        assert (await a1.request("logout"))["type"] == "result"
        status, _, text = await http_get(site.http_url + played["data"]["url"])
        assert status == 403 and b"session" in text


async def test_refusals_wrong_role_wrong_agent_paths_and_never_queues(tmp_path: Path) -> None:
    async with rec_site(tmp_path) as site:
        a1 = await agent_on_duty(site)
        a2 = await console(site, "agent2")
        boss = await console(site, "super1")
        call_id = await talking(site, a1, AGENT1, PLAIN_CALLER, "support")  # on demand: not recorded yet
        assert site.server.calls.caller_channel(call_id) not in site.sim.world.recordings
        wrong_agent = await a2.request("recording_start", call_id=call_id)
        assert (wrong_agent["type"], wrong_agent["code"]) == ("error", "not_your_call")
        wrong_role = await boss.request("recording_pause", call_id=call_id)
        assert (wrong_role["type"], wrong_role["code"]) == ("error", "forbidden")
        assert not _recording(site, call_id)
        started = await a1.request("recording_start", call_id=call_id)
        assert started["data"]["state"] == "recording" and _recording(site, call_id)
        stopped = await a1.request("recording_stop", call_id=call_id)
        assert stopped["data"]["state"] == "stopped" and not _recording(site, call_id)
        restarted = await a1.request("recording_start", call_id=call_id)  # appends to the same file
        assert restarted["data"]["state"] == "recording" and _recording(site, call_id)
        site.hang_up_caller(call_id)
        await a1.wait_for(_state(call_id, "ended"))
        await a1.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "wrap_up")
        saved = await a1.request("wrapup", call_id=call_id, disposition="resolved")
        assert saved["type"] == "wrapup_saved"

        # A queue that never records refuses, and nothing reaches the PBX.
        call2 = await talking(site, a1, AGENT1, KEY_ACCOUNT_CALLER, "complaints")
        never = await a1.request("recording_start", call_id=call2)
        assert (never["type"], never["reason"]) == ("error", "not_recorded")
        assert not _recording(site, call2) and not site.server.recordings.settings.files.path(call2).exists()

        # Ids, never paths: the schema refuses anything else; an id of no recorded call is refused.
        for bad in ("../../etc/passwd", "/var/spool/asterisk/monitor/x.wav", "a b"):
            reply = await boss.request("recording_play", recording_id=bad)
            assert (reply["type"], reply["code"], reply["field"]) == ("error", "bad_field", "recording_id")
        nothing = await boss.request("recording_play", recording_id="1795389470.999")
        assert (nothing["type"], nothing["reason"]) == ("error", "no_recording")
        assert file_stem("x:y@z") != "x:y@z" and "/" not in file_stem("../x")
        # An agent's own list shows only its calls; the supervisor's commands stay the supervisor's.
        assign = await a1.request("voicemail_assign", voicemail_id=call_id, agent_id=AGENT2)
        assert (assign["type"], assign["code"]) == ("error", "forbidden")
        assert _audits(site, "recording_play") == []
