"""Every node type, run by the real FastAGI server against the PBX simulator's FastAGI client.

The caller is the simulator's scripted person (pbxsim.people): each entry of ``keys`` is pressed at
the next input request (a prompt with escape digits, GET DATA, WAIT FOR DIGIT); ``utterance`` is spoken into
RECORD FILE. The flow is tests/ivr_sim/flows/service_line.yaml.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmstore.model import Outcome
from ivr_flows.steps import Hangup, QueueFigures, QueueHandoff, Transfer, VoicemailDone
from pbxsim.people import CallerBehaviour

from .conftest import ACCOUNT, KNOWN_NUMBER, UNKNOWN_NUMBER, VIP_NUMBER, pcm_of, synthesize
from .rig import HOLIDAY, NIGHT, IvrRig, events

LINE = "8000"
POST_CALL = "8001"


async def test_play_say_set_goto_and_hangup(rig: IvrRig) -> None:
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=("1", "5", "9")))
    result = await call.result()
    await call.ended()
    assert result.outcome == Hangup("flow")
    known = await rig.crm.identify_by_phone(KNOWN_NUMBER)
    assert known is not None
    assert result.variables["name"] == known.name and result.variables["customer_id"] == str(known.customer_id)
    balance = result.variables["balance"]
    assert balance.isdigit()
    noon = int(datetime(2025, 6, 3, 12, tzinfo=UTC).timestamp())
    assert call.sent == [
        'STREAM FILE custom/welcome ""',  # play, no barge-in
        "STREAM FILE custom/main-menu 1234509",
        f'SAY NUMBER {balance} ""',
        f'SAY DIGITS {known.customer_id} ""',
        "STREAM FILE custom/main-menu 1234509",
        f'SAY DATE {noon} ""',  # set today=2025-06-03, then say date
        "STREAM FILE custom/main-menu 1234509",
        'STREAM FILE vm-goodbye ""',
        "HANGUP",
    ]
    ev = events(result)
    assert [e for e in ev if e[1] == "key"] == [("main_menu", "key", k) for k in "159"]
    assert ("identify.by_number", "lookup", f"found {known.customer_id}") in ev
    assert ("hours", "branch", "default -> identify") in ev  # Tuesday 11:00 in Shanghai: open
    assert result.variables["today"] == "2025-06-03" and result.variables["choice"] == "9"
    # What the caller heard on the simulator, in order
    assert call.witness.prompts == ["custom/welcome", "custom/main-menu", "custom/main-menu",
                                    "custom/main-menu", "vm-goodbye"]


async def test_vip_is_identified_by_number_and_fast_laned(rig: IvrRig) -> None:
    call = rig.call(LINE, VIP_NUMBER)
    result = await call.result()
    assert result.outcome == QueueHandoff("vip", ("english",), 50)
    assert result.variables["vip"] == "true" and ("vip", "branch", "case 1 -> vip_queue") in events(result)
    assert call.record is not None and call.record.vip
    assert call.ivr is not None and (call.ivr.queue, call.ivr.priority, call.ivr.skills) == ("vip", 50, ("english",))
    assert not any(s.startswith("STREAM FILE custom/main-menu") for s in call.sent)


async def test_unknown_caller_collect_invalid_then_valid_account(rig: IvrRig) -> None:
    # silence, a number failing the Luhn check, the right one; then 9 = goodbye
    call = rig.call(LINE, UNKNOWN_NUMBER, CallerBehaviour(keys=("", "79927398710#", f"{ACCOUNT}#", "9")))
    result = await call.result()
    assert result.outcome == Hangup("flow")
    ev = events(result)
    known = await rig.crm.identify_by_account(ACCOUNT)
    assert known is not None
    assert [e for e in ev if e[0].startswith("identify.")] == [
        ("identify.by_number", "node", "lookup"), ("identify.by_number", "lookup", "not found"),
        ("identify.ask", "node", "collect"), ("identify.ask", "no_input", ""),
        ("identify.ask", "no_match", "*******8710"),  # card-like numbers are masked in the path
        ("identify.ask", "collected", "*******8713"),
        ("identify.by_account", "node", "lookup"), ("identify.by_account", "lookup", f"found {known.customer_id}"),
        ("identify.done", "node", "return"),
    ]
    assert result.variables["account"] == ACCOUNT and result.variables["name"] == known.name
    get_data = [s for s in call.sent if s.startswith("GET DATA")]
    assert get_data == ["GET DATA custom/enter-account 3000 12"] * 3
    assert 'STREAM FILE custom/no-input ""' in call.sent and 'STREAM FILE custom/invalid ""' in call.sent


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (None, QueueHandoff("sales", ("english", "sales"), 5)),
        (QueueFigures(waiting=2, available_agents=0, estimated_wait=60.0), QueueHandoff("support", ("english",), 2)),
        (QueueFigures(waiting=12, available_agents=4, estimated_wait=90.0), QueueHandoff("support", ("english",), 2)),
    ],
)
async def test_queue_handoff_follows_queue_figures(rig: IvrRig, figures: QueueFigures | None,
                                                   expected: QueueHandoff) -> None:
    if figures is not None:
        rig.figures.table["sales"] = figures
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=("2",)))
    result = await call.result()
    assert result.outcome == expected
    assert call.ivr is not None
    assert (call.ivr.queue, call.ivr.priority, call.ivr.skills) == (expected.queue, expected.priority, expected.skills)
    await call.ended()
    assert call.session is not None and call.session.done_marked  # IVR_DONE=1: the dialplan did not fall back


async def test_long_wait_offers_callback_stored_in_crm(rig: IvrRig) -> None:
    rig.figures.table["sales"] = QueueFigures(waiting=40, available_agents=1, estimated_wait=900.0)
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=("2",)))
    result = await call.result()
    assert result.outcome == Hangup("flow")
    ev = events(result)
    assert ("sales", "branch", "case 1 -> offer_callback") in ev
    assert ("callback", "note", "callback requested") in ev
    known = await rig.crm.identify_by_phone(KNOWN_NUMBER)
    assert known is not None
    due = await rig.crm.due_follow_ups("sales", datetime.now(UTC) + timedelta(hours=1))
    ours = [f for f in due if f.note == f"IVR callback request from {KNOWN_NUMBER}"]
    assert [(f.customer_id, f.kind.value) for f in ours] == [(known.customer_id, "callback")]
    assert call.record is not None and call.record.outcome == "callback"


async def test_record_set_goto_survey(rig: IvrRig, voice_dir: Path) -> None:
    wav = synthesize("I would like to talk about my invoice", voice_dir, voice="en")
    behaviour = CallerBehaviour(keys=("3", "8", "4"), utterance=wav)
    call = rig.call(LINE, KNOWN_NUMBER, behaviour)
    result = await call.result()
    assert result.outcome == Hangup("flow")
    recording = Path(result.variables["message"])
    assert recording == rig.spool / f"ivr-{call.chan.uniqueid.replace('.', '-')}-record_msg-1.wav"
    assert pcm_of(wav) in pcm_of(recording)  # the caller's words reached the shared spool, as they spoke
    assert any(s.startswith(f"RECORD FILE {recording.with_suffix('')} wav # 30000 0") for s in call.sent)
    assert call.witness.recordings == 1
    ev = events(result)
    recorded = [float(v.removesuffix("s")) for n, e, v in ev if e == "recorded"]
    assert len(recorded) == 1 and 1.0 < recorded[0] < 30.0  # the voice, cut by 2 s of silence
    assert result.variables["note"] == f"message {recording}"
    assert ("goto_survey", "node", "goto") in ev and ("survey", "node", "survey") in ev
    assert ("survey", "no_match", "8") in ev and ("survey", "survey", "overall=4") in ev
    assert result.variables["score"] == "4"
    interaction = await rig.history(call)
    assert interaction is not None and interaction.survey_score == 4


async def test_post_call_survey_after_no_input(rig: IvrRig) -> None:
    rig.flow_by_did[POST_CALL] = "service_line"
    rig.extra_variables[POST_CALL] = {"post_call": "yes"}
    call = rig.call(POST_CALL, KNOWN_NUMBER, CallerBehaviour(keys=("", "5")))
    result = await call.result()
    assert result.outcome == Hangup("flow")
    ev = events(result)
    assert ev[:3] == [("entry", "node", "branch"), ("entry", "branch", "case 1 -> survey"), ("survey", "node", "survey")]
    assert ("survey", "no_input", "") in ev and ("survey", "survey", "overall=5") in ev
    assert sum(s.startswith("GET DATA custom/survey") for s in call.sent) == 2
    interaction = await rig.history(call)
    assert interaction is not None and interaction.survey_score == 5


@pytest.mark.parametrize(("now", "case"), [(NIGHT, "case 2 -> closed"), (HOLIDAY, "case 1 -> closed")])
async def test_after_hours_and_holidays_go_to_voicemail(rig: IvrRig, voice_dir: Path, now: datetime,
                                                       case: str) -> None:
    rig.clock = now
    wav = synthesize("please call me back tomorrow", voice_dir, voice="en")
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(utterance=wav))
    result = await call.result()
    await call.ended()
    assert isinstance(result.outcome, VoicemailDone) and result.outcome.mailbox == "sales"
    assert ("hours", "branch", case) in events(result)
    audio = Path(result.outcome.audio_path)
    assert audio.parent == rig.spool and pcm_of(wav) in pcm_of(audio)
    assert any(s.startswith(f"RECORD FILE {audio.with_suffix('')} wav # 60000 0 BEEP s=2") for s in call.sent)
    assert call.sent[-2:] == ['STREAM FILE vm-goodbye ""', "HANGUP"]
    assert call.witness.prompts[-3:] == ["custom/leave-message", "beep", "vm-goodbye"]
    interaction = await rig.history(call)
    assert interaction is not None and interaction.recording_ref == str(audio)
    assert interaction.outcome == Outcome.VOICEMAIL


async def test_transfer_to_outside_number_reaches_the_trunk(rig: IvrRig) -> None:
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=("0",), hangup_after_connect=1.0))
    result = await call.result()
    assert result.outcome == Transfer("00442071234567", True)
    await call.ended()
    # EXEC Goto cti-outbound,0044...,1 then Dial(PJSIP/0044...@trunk): the caller talked to the far end
    assert call.sent[-1] == "EXEC Goto cti-outbound,00442071234567,1"
    assert len(call.witness.connected_to) == 1 and call.witness.connected_to[0].startswith("PJSIP/trunk-")
