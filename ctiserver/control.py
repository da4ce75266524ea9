"""Call control: the AMI actions the ACD, the console and the supervisor monitor use, over one AmiLink.

Every value that can come from a caller or an agent (caller ID, digits typed in the console, channel names
echoed back by a browser) is checked twice before it reaches the wire:
* here, semantically: channel names match a safe pattern, numbers are digits, contexts and variable names
  are identifiers, display names carry no quote or angle bracket (they would rewrite the ``CallerID``), no
  comma where Asterisk splits on commas (ChanSpy's ``Data``, Originate's ``Variable``);
* in ``ami.protocol.encode_action``, which refuses CR, LF and every other control character (UnsafeValue).
So AMI header injection is impossible, and a refused value raises before a single byte is sent.

Action shapes follow the captures: Redirect/dual Redirect (05 A, 07 A), async Originate into
``cti-agent-ready`` with ChannelId (05 B/D), Bridge with ``Tone: no`` (05 B), BlindTransfer (06 B), Atxfer
with digits only (06 C: the extension is sent as DTMF; ``agent-long`` failed silently), MixMonitor /
StopMixMonitor (07 B), MixMonitorMute (20 B), ChanSpy originates (07 C/D).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from acd.devices import DIAL_STRING

from .ami.protocol import HeaderValue, Message, UnsafeValue, check_value


class InvalidValue(ValueError):
    """A value is free of control characters but not what this field accepts (a letter in a number ...)."""

    def __init__(self, field: str, value: str, expected: str) -> None:
        super().__init__(f"refused {field}={value[:60]!r}: expected {expected}")
        self.field = field
        self.value = value


class AmiActions(Protocol):
    """What CallControl needs from an AmiLink (AmiLink satisfies it)."""

    async def action(
        self, action: str, headers: Mapping[str, HeaderValue] | None = None, *, timeout: float | None = None
    ) -> Message: ...

    async def originate(
        self, headers: Mapping[str, HeaderValue], *, event_timeout: float, timeout: float | None = None
    ) -> Message: ...


# ---------------------------------------------------------------------------------------------- validation

# "PJSIP/1001-0000000a", "Local/5553000@from-pstn-00000000;2", "PJSIP/1001@trunk". No spaces, commas,
# pipes, quotes or parentheses: channel names end up inside application data (ChanSpy) and dial strings.
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9@._:;+#*~/=-]{1,200}")
_CONTEXT = re.compile(r"[A-Za-z0-9_-]{1,79}")
_EXTEN = re.compile(
    r"[A-Za-z0-9_+*#.-]{1,79}"
)  # dialplan targets we name ourselves ("s", "caller", "5551000")
_DIGITS = re.compile(r"[0-9]{1,32}")  # numbers an agent types; Atxfer sends them as DTMF (capture 06 C)
_CALLER_NUM = re.compile(r"[A-Za-z0-9+*#._-]{0,40}")  # "5551234", "+8210...", "anonymous"
_VAR_NAME = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]{0,63}(\([A-Za-z0-9_,-]{0,64}\))?"
)  # "ACCOUNT", "CALLERID(num)"
_FILE = re.compile(r"[A-Za-z0-9_./-]{1,200}")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # Originate ChannelId (becomes the Uniqueid, capture 05 D)


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field, repr(value), "a string")
    check_value(field, value)  # UnsafeValue on CR, LF, NUL, DEL ... (encode_action checks again)
    # C1 controls (NEL ...) and Unicode line/paragraph separators can't split an AMI header, but they
    # are still control characters and would break the console's display and the CRM notes.
    if not value.isascii() and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise UnsafeValue(field, value)
    return value


def _match(field: str, value: object, pattern: re.Pattern[str], expected: str) -> str:
    text = _text(field, value)
    if not pattern.fullmatch(text):
        raise InvalidValue(field, text, expected)
    return text


def check_channel(value: object, field: str = "channel") -> str:
    return _match(field, value, _CHANNEL, "a channel name like PJSIP/1001-00000001")


def check_endpoint(value: object, field: str = "endpoint") -> str:
    """A dial string (acd.devices): stricter than a channel name, no ``;`` (Local's ``;1``/``;2`` are names)."""
    return _match(field, value, DIAL_STRING, "a dial string like PJSIP/1001 or Local/1001@agent-phones/n")


def check_context(value: object, field: str = "context") -> str:
    return _match(field, value, _CONTEXT, "a dialplan context name")


def check_exten(value: object, field: str = "exten") -> str:
    return _match(field, value, _EXTEN, "a dialplan extension")


def check_number(value: object, field: str = "number") -> str:
    return _match(field, value, _DIGITS, "1 to 32 digits")


def check_caller_num(value: object, field: str = "caller_id_num") -> str:
    return _match(field, value, _CALLER_NUM, "a caller number (digits, +, *, #)")


def check_display_name(value: object, field: str = "caller_id_name") -> str:
    text = _text(field, value)
    if len(text) > 80 or any(c in text for c in '"<>\\'):
        raise InvalidValue(field, text, 'a name of at most 80 characters without " < > \\')
    return text


def clean_display_name(value: str) -> str:
    """What to pass for a caller's name taken from the wire: control characters and CallerID syntax removed
    (use when losing a quote beats failing the agent leg)."""
    return "".join(c for c in value if c >= " " and c != "\x7f" and c not in '"<>\\')[:80]


def check_var_name(value: object, field: str = "variable") -> str:
    return _match(field, value, _VAR_NAME, "a variable name like ACCOUNT or CALLERID(num)")


# Asterisk's placeholder when a caller ID part is not set (Newchannel in every capture).
_UNKNOWN = "<unknown>"


def _caller_id(name: str, num: str, *, from_wire: bool = False) -> str:
    """``"name" <num>``. ``from_wire``: the name is the inbound caller's (the ACD's agent leg), so CallerID
    syntax characters are stripped instead of failing the offer; control characters are refused anyway."""
    if num == _UNKNOWN:
        num = ""
    if name == _UNKNOWN:
        name = ""
    if from_wire:
        _text("caller_id_name", name)
        name = clean_display_name(name)
    return f'"{check_display_name(name)}" <{check_caller_num(num)}>'


def _variables(variables: Mapping[str, str] | None) -> list[str] | None:
    if not variables:
        return None
    out = []
    for name, value in variables.items():
        text = _text(f"variable {name}", value)
        # Originate splits Variable values on commas (astman_get_variables): a comma would smuggle a variable.
        if "," in text:
            raise InvalidValue(f"variable {name}", text, "a value without commas")
        out.append(f"{check_var_name(name)}={text}")
    return out


# ---------------------------------------------------------------------------------------------- results


class OriginateOutcome(enum.Enum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


# OriginateResponse Reason codes seen in capture 05 C: 4 answered, 3 ring timeout, 5 busy, 0 failure.
# Asterisk also defines 1 (hung up while ringing) and 8 (congestion): both are failures for the ACD.
_REASONS = {4: OriginateOutcome.ANSWERED, 3: OriginateOutcome.NO_ANSWER, 5: OriginateOutcome.BUSY}


@dataclass(frozen=True, slots=True)
class OriginateResult:
    success: bool
    outcome: OriginateOutcome
    reason: int  # the raw Reason code
    uniqueid: str | None  # None on failure ("<unknown>" on the wire)
    channel: str  # the new channel on success; the dial string on failure (capture 05 C)
    action_id: str

    @classmethod
    def from_event(cls, event: Message) -> OriginateResult:
        try:
            reason = int(event.get("Reason", "0"))
        except ValueError:
            reason = 0
        success = event.get("Response") == "Success"
        outcome = _REASONS.get(reason, OriginateOutcome.FAILED)
        if success:
            outcome = OriginateOutcome.ANSWERED
        elif outcome is OriginateOutcome.ANSWERED:
            outcome = OriginateOutcome.FAILED
        uniqueid = event.get("Uniqueid")
        return cls(
            success=success,
            outcome=outcome,
            reason=reason,
            uniqueid=None if uniqueid in (None, "", "<unknown>") else uniqueid,
            channel=event.get("Channel", ""),
            action_id=event.get("ActionID", ""),
        )


class SpyMode(enum.Enum):
    """ChanSpy option letters (Asterisk 22 ChanSpy docs): q = no beep/name announcement, b = only channels
    in a bridge, E = leave when the spied-on channel hangs up, w = whisper to the spied-on channel (the
    agent), B = barge: talk to both parties of the call."""

    LISTEN = "qbE"
    WHISPER = "qbwE"
    BARGE = "qBE"


# ---------------------------------------------------------------------------------------------- control


class CallControl:
    """Call-control verbs over one AMI link. Methods raise UnsafeValue/InvalidValue for refused input (nothing
    sent), AmiActionError when Asterisk says ``Response: Error``, ActionTimeout, LinkDown."""

    def __init__(
        self,
        link: AmiActions,
        *,
        hold_context: str = "cti-hold",
        agent_ready_context: str = "cti-agent-ready",
        dial_context: str = "cti-dial",
        outbound_context: str = "cti-outbound",
        originate_margin_s: float = 10.0,
    ) -> None:
        self.link = link
        self.hold_context = check_context(hold_context)
        self.agent_ready_context = check_context(agent_ready_context)
        self.dial_context = check_context(dial_context)
        self.outbound_context = check_context(outbound_context)
        self.originate_margin_s = originate_margin_s

    async def redirect(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        *,
        extra_channel: str | None = None,
        extra_context: str | None = None,
        extra_exten: str | None = None,
        extra_priority: int | None = None,
    ) -> Message:
        headers: dict[str, HeaderValue] = {
            "Channel": check_channel(channel),
            "Context": check_context(context),
            "Exten": check_exten(exten),
            "Priority": _priority(priority),
        }
        if extra_channel is not None:
            headers["ExtraChannel"] = check_channel(extra_channel, "extra_channel")
            headers["ExtraContext"] = check_context(extra_context or context, "extra_context")
            headers["ExtraExten"] = check_exten(extra_exten or exten, "extra_exten")
            headers["ExtraPriority"] = _priority(extra_priority if extra_priority is not None else priority)
        return await self.link.action("Redirect", headers)

    async def originate_agent_leg(
        self,
        endpoint: str,
        *,
        channel_id: str,
        caller_id_name: str,
        caller_id_num: str,
        ring_timeout_s: float,
        context: str | None = None,
        exten: str = "s",
        variables: Mapping[str, str] | None = None,
        other_channel_id: str | None = None,
    ) -> OriginateResult:
        """Ring an agent's phone; answered, it waits in ``[cti-agent-ready]`` for the Bridge (capture 05 B).
        Returns when the OriginateResponse arrives (answered, or Reason 3/5/0 ...). The caller's name is the
        inbound caller's: ``"<>\\`` are stripped from it (a quote must not cost the caller the offer), control
        characters raise UnsafeValue, ``<unknown>`` becomes empty."""
        headers: dict[str, HeaderValue] = {
            "Channel": check_endpoint(endpoint),
            "Context": check_context(context or self.agent_ready_context),
            "Exten": check_exten(exten),
            "Priority": "1",
            "Timeout": _timeout_ms(ring_timeout_s),
            "CallerID": _caller_id(caller_id_name, caller_id_num, from_wire=True),
            "ChannelId": _match("channel_id", channel_id, _ID, "an id of letters, digits, . _ -"),
        }
        if other_channel_id is not None:
            headers["OtherChannelId"] = _match("other_channel_id", other_channel_id, _ID, "an id")
        vars_ = _variables(variables)
        if vars_:
            headers["Variable"] = vars_
        event = await self.link.originate(headers, event_timeout=ring_timeout_s + self.originate_margin_s)
        return OriginateResult.from_event(event)

    async def originate_outbound(
        self,
        agent_endpoint: str,
        number: str,
        *,
        caller_id_name: str = "",
        caller_id_num: str = "",
        ring_timeout_s: float = 30.0,
        channel_id: str | None = None,
        context: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> OriginateResult:
        """Click-to-call: ring the agent's phone, then dial ``number`` through ``[cti-outbound]``."""
        headers: dict[str, HeaderValue] = {
            "Channel": check_endpoint(agent_endpoint, "agent_endpoint"),
            "Context": check_context(context or self.outbound_context),
            "Exten": check_number(number),
            "Priority": "1",
            "Timeout": _timeout_ms(ring_timeout_s),
            "CallerID": _caller_id(caller_id_name, caller_id_num or number),
        }
        if channel_id is not None:
            headers["ChannelId"] = _match("channel_id", channel_id, _ID, "an id of letters, digits, . _ -")
        vars_ = _variables(variables)
        if vars_:
            headers["Variable"] = vars_
        event = await self.link.originate(headers, event_timeout=ring_timeout_s + self.originate_margin_s)
        return OriginateResult.from_event(event)

    async def bridge(self, channel1: str, channel2: str, *, tone: bool = False) -> Message:
        return await self.link.action(
            "Bridge",
            {
                "Channel1": check_channel(channel1, "channel1"),
                "Channel2": check_channel(channel2, "channel2"),
                "Tone": "yes" if tone else "no",
            },
        )

    async def blind_transfer(self, channel: str, exten: str, context: str | None = None) -> Message:
        """AMI BlindTransfer of the party bridged with ``channel`` (the agent's leg) to ``exten``."""
        return await self.link.action(
            "BlindTransfer",
            {
                "Channel": check_channel(channel),
                "Context": check_context(context or self.dial_context),
                "Exten": check_number(exten, "exten"),
            },
        )

    async def attended_transfer(self, channel: str, exten: str, context: str | None = None) -> Message:
        """AMI Atxfer from the agent's ``channel``. Digits only: Asterisk plays the extension as DTMF into the
        transfer prompt, so a name silently fails (capture 06 C, ``agent-long``)."""
        return await self.link.action(
            "Atxfer",
            {
                "Channel": check_channel(channel),
                "Exten": check_number(exten, "exten"),
                "Context": check_context(context or self.dial_context),
            },
        )

    async def hold(self, caller_channel: str, agent_channel: str) -> Message:
        """CTI hold: dual Redirect, the caller to music, the agent's leg to a silent wait (capture 07 A)."""
        return await self.redirect(
            caller_channel,
            self.hold_context,
            "caller",
            1,
            extra_channel=agent_channel,
            extra_context=self.hold_context,
            extra_exten="agent",
            extra_priority=1,
        )

    async def unhold(self, caller_channel: str, agent_channel: str) -> Message:
        """Un-hold: bridge the two legs again (capture 07 A: Channel1 is the agent's leg)."""
        return await self.bridge(agent_channel, caller_channel)

    async def hangup(self, channel: str, cause: int | None = None) -> Message:
        headers: dict[str, HeaderValue] = {"Channel": check_channel(channel)}
        if cause is not None:
            if not isinstance(cause, int) or not 0 <= cause <= 127:
                raise InvalidValue("cause", repr(cause), "a Q.850 cause code 0-127")
            headers["Cause"] = str(cause)
        return await self.link.action("Hangup", headers)

    async def start_recording(self, channel: str, file: str, *, options: str = "b") -> Message:
        if ".." in file.split("/"):
            raise InvalidValue("file", file, "a path without '..'")
        return await self.link.action(
            "MixMonitor",
            {
                "Channel": check_channel(channel),
                "File": _match("file", file, _FILE, "a file path of letters, digits, _ . / -"),
                "Options": _match(
                    "options", options, re.compile(r"[A-Za-z]{0,8}"), "MixMonitor option letters"
                ),
            },
        )

    async def stop_recording(self, channel: str) -> Message:
        return await self.link.action("StopMixMonitor", {"Channel": check_channel(channel)})

    async def mute_recording(self, channel: str, muted: bool) -> Message:
        """Pause (muted) or resume a MixMonitor: both directions. The file keeps the paused time as
        silence (capture 20 B); an Error answer when nothing records the channel (20 C)."""
        return await self.link.action("MixMonitorMute", {"Channel": check_channel(channel), "Direction": "both",
                                                        "State": "1" if muted else "0"})

    async def spy(
        self,
        supervisor_endpoint: str,
        target_channel: str,
        mode: SpyMode | str = SpyMode.LISTEN,
        *,
        caller_id_name: str = "Supervisor",
        caller_id_num: str = "",
        ring_timeout_s: float = 30.0,
        channel_id: str | None = None,
    ) -> OriginateResult:
        """Ring the supervisor's phone; answered, it runs ``ChanSpy(<target>,<options>)`` (capture 07 C/D).
        ``channel_id`` names the spy's channel (its Uniqueid): the caller can follow and end it."""
        spy_mode = mode if isinstance(mode, SpyMode) else SpyMode[str(mode).upper()]
        target = check_channel(target_channel, "target_channel")
        headers: dict[str, HeaderValue] = {
            "Channel": check_endpoint(supervisor_endpoint, "supervisor_endpoint"),
            "Application": "ChanSpy",
            "Data": f"{target},{spy_mode.value}",
            "Timeout": _timeout_ms(ring_timeout_s),
            "CallerID": _caller_id(caller_id_name, caller_id_num),
        }
        if channel_id is not None:
            headers["ChannelId"] = _match("channel_id", channel_id, _ID, "an id of letters, digits, . _ -")
        event = await self.link.originate(headers, event_timeout=ring_timeout_s + self.originate_margin_s)
        return OriginateResult.from_event(event)

    async def set_var(self, channel: str, name: str, value: str) -> Message:
        return await self.link.action(
            "Setvar",
            {
                "Channel": check_channel(channel),
                "Variable": check_var_name(name),
                "Value": _text("value", value),
            },
        )

    async def get_var(self, channel: str, name: str) -> str | None:
        """The variable's value; None when Asterisk returns no ``Value`` header."""
        resp = await self.link.action(
            "Getvar",
            {
                "Channel": check_channel(channel),
                "Variable": check_var_name(name),
            },
        )
        return resp.get("Value")


def _priority(value: int) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100000:
        raise InvalidValue("priority", repr(value), "an integer priority >= 1")
    return str(value)


def _timeout_ms(seconds: float) -> str:
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= 86400:
        raise InvalidValue("ring_timeout_s", repr(seconds), "seconds between 0 and 86400")
    return str(int(seconds * 1000))


__all__ = [
    "CallControl",
    "InvalidValue",
    "OriginateOutcome",
    "OriginateResult",
    "SpyMode",
    "UnsafeValue",
    "check_channel",
    "check_number",
    "clean_display_name",
]
