"""What the gateway needs from the recordings capability (ctiserver.recordings.service satisfies it), and
the console commands that reach it. Kept beside the gateway so the gateway imports no capability."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ctiserver.gateway.auth import Principal
from ctiserver.gateway.schema import Command, ErrorCode, error_reply, server_message


class RecordingDesk(Protocol):
    async def move(self, call_id: str, move: str, by: Principal | None) -> Any: ...

    async def list_recordings(self, who: Principal, limit: int) -> list[dict[str, object]]: ...

    async def play_recording(self, who: Principal, call_id: str) -> dict[str, object]: ...

    async def list_voicemails(self, who: Principal, limit: int) -> list[dict[str, object]]: ...

    async def play_voicemail(self, who: Principal, call_id: str) -> dict[str, object]: ...

    async def assign_voicemail(self, who: Principal, call_id: str, agent_id: str) -> dict[str, object]: ...

    async def finish_voicemail(self, who: Principal, call_id: str) -> dict[str, object]: ...


DeskHandler = Callable[[Principal, Command], Awaitable[dict[str, object]]]
MOVES = ("recording_start", "recording_pause", "recording_resume", "recording_stop")
COMMANDS = (*MOVES, "recordings_list", "recording_play", "voicemail_list", "voicemail_play", "voicemail_assign",
            "voicemail_done")


def _ok(cmd: Command, data: object) -> dict[str, object]:
    return server_message("result", re=cmd.id, data=data)


def desk_handlers(desk: RecordingDesk | None) -> dict[str, DeskHandler]:
    """The recording commands: the gateway has checked the session, the role, and (for `call_id`) that an
    agent's call is theirs; the desk checks the rest (who took a past call, whose a voicemail is)."""
    if desk is None:
        async def not_served(who: Principal, cmd: Command) -> dict[str, object]:
            return error_reply(ErrorCode.UNAVAILABLE, "recordings are not served here", cmd.id)
        return dict.fromkeys(COMMANDS, not_served)

    async def move(who: Principal, cmd: Command) -> dict[str, object]:
        call_id = str(cmd.args["call_id"])
        state = await desk.move(call_id, cmd.type.removeprefix("recording_"), who)
        return _ok(cmd, {"call_id": call_id, "state": str(state)})

    def limit(cmd: Command) -> int:
        return int(cmd.args.get("limit", 50))  # type: ignore[call-overload]

    async def recordings_list(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, {"recordings": await desk.list_recordings(who, limit(cmd))})

    async def recording_play(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, await desk.play_recording(who, str(cmd.args["recording_id"])))

    async def voicemail_list(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, {"voicemails": await desk.list_voicemails(who, limit(cmd))})

    async def voicemail_play(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, await desk.play_voicemail(who, str(cmd.args["voicemail_id"])))

    async def voicemail_assign(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, await desk.assign_voicemail(who, str(cmd.args["voicemail_id"]), str(cmd.args["agent_id"])))

    async def voicemail_done(who: Principal, cmd: Command) -> dict[str, object]:
        return _ok(cmd, await desk.finish_voicemail(who, str(cmd.args["voicemail_id"])))

    return {**dict.fromkeys(MOVES, move), "recordings_list": recordings_list, "recording_play": recording_play,
            "voicemail_list": voicemail_list, "voicemail_play": voicemail_play,
            "voicemail_assign": voicemail_assign, "voicemail_done": voicemail_done}
