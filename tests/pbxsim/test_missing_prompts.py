"""The simulator held to capture 14: a prompt that is not installed fails at once with result=-1 while the
channel stays up, and only the HANGUP line / 511 on the next command means a hang-up."""

from __future__ import annotations

from pathlib import Path

from pbxsim.prompts import CORE_SOUNDS, Sounds, product_sounds
from pbxsim.simulator import PRODUCT_DIALPLAN
from tests.pbxsim.pbxsim_replay import agi_shape, compare, replay

CAPTURE14_PHONES = Path(__file__).parent / "capture14.conf"


async def test_capture_14_replays_byte_for_byte() -> None:
    # Capture 14 ran the product's own dialplan; its Asterisk had made one Local channel before (the
    # first call is -00000001) and sent no Cdr events on AMI (none in the transcript).
    expected, got, records, agi = await replay("14", dialplan_paths=[PRODUCT_DIALPLAN, CAPTURE14_PHONES],
                                               ami_users={"acc": "accsecret"}, local_channels_before=1)
    frames = [f for f in got["AMI1"] if f.get("Event") != "Cdr"]
    assert compare(expected["AMI1"], frames) == []
    assert len(frames) == len(expected["AMI1"])
    want = {s: [r.payload for r in records if r.stream == s and r.direction == "<<<"] for s in ("AGI1", "AGI2")}
    # The first call's channel stays up: every reply is the capture's, byte for byte (the env block aside).
    assert agi["AGI1"][1:] == want["AGI1"][1:]
    assert agi["AGI1"][1:7] == [b"200 result=-1 endpos=0\n", b"200 result=6\n", b"200 result=0 endpos=3404\n",
                                b"200 result=-1\n", b"200 result=-1 endpos=-1\n", b"200 result=-1 endpos=0\n"]
    # The second caller hangs up during an existing prompt: result=-1 with the samples played, then HANGUP
    # and 511s. endpos counts real time, so only its presence is compared.
    assert agi_shape(agi["AGI2"]) == agi_shape(want["AGI2"])
    assert agi["AGI2"][2] == b"HANGUP\n"


def test_the_product_pbx_has_core_sounds_and_the_product_prompts() -> None:
    sounds = Sounds.product(PRODUCT_DIALPLAN.parent)
    for name in ("beep", "queue-thereare", "digits/7", "cti/hold-music", "cti/callback-confirmed",
                 "demo/welcome", "cs/zh/main-menu", "cs/en/order-shipped"):
        assert sounds.exists(name), name
    assert not sounds.exists("cti/no-such-prompt")
    assert not sounds.exists("custom/welcome")  # the captures' own prompts are not the product's
    assert sounds.file_exists("/var/lib/asterisk/sounds/en/cti/hold-music.wav")
    assert sounds.file_exists("/var/lib/asterisk/sounds/cs/zh/welcome.wav")
    assert not sounds.file_exists("/var/lib/asterisk/sounds/en/cti/no-such-prompt.wav")
    assert not sounds.file_exists("/etc/passwd")
    sounds.remove("cti/hold-music")
    assert not sounds.exists("cti/hold-music")
    assert product_sounds(PRODUCT_DIALPLAN.parent).isdisjoint(CORE_SOUNDS)
