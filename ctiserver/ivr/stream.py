"""A speech menu's ear: the caller's voice streamed to the server while the menu listens (capture 32).

AMI Originate of ``Local/s@cti-listen``: its ;2 runs ``ChanSpy(<caller's channel>,qouE)``, hearing only what
the caller says, and its ;1 runs ``AudioSocket(<uuid>,<our listener>)``. The ChannelId ``cti-listen-<uuid>``
makes both halves ours (calls.legs): never a call of the centre's, never offered, never in queue_log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping

from ..audiosocket.server import AudioSocketServer, AudioStream
from ..calls.legs import LISTEN

# On a real PBX the stream is on the line ~3 ms after the Originate (capture 32 A); past this bound the menu
# listens to a recording file instead.
STREAM_ARRIVAL_SECONDS = 1.0

AmiAction = Callable[[str, Mapping[str, str]], Awaitable[object]]


async def open_stream(listener: AudioSocketServer, action: AmiAction, channel: str,
                      *, bound: float = STREAM_ARRIVAL_SECONDS) -> AudioStream:
    """Ask the PBX for the caller's voice on ``channel``; returns once the stream is connected. Raises when
    the Originate is refused or the stream does not arrive within ``bound``."""
    call_uuid = str(uuid.uuid4())
    stream = listener.expect(call_uuid)
    try:
        async with asyncio.timeout(bound):
            answer = await action("Originate", {
                "Channel": "Local/s@cti-listen", "Application": "AudioSocket",
                "Data": f"{call_uuid},{listener.address}", "Variable": f"CTI_LISTEN_CHANNEL={channel}",
                "Async": "true", "ChannelId": f"{LISTEN}{call_uuid}", "OtherChannelId": f"{LISTEN}{call_uuid}-2"})
            get = getattr(answer, "get", None)
            if get is not None and get("Response") == "Error":
                raise RuntimeError(f"Originate of the listening channel refused: {get('Message')}")
            await stream.connected.wait()
    except TimeoutError:
        stream.close()
        raise TimeoutError(f"the PBX did not connect the audio stream within {bound:.1f} s") from None
    except BaseException:
        stream.close()
        raise
    return stream
