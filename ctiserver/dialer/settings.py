"""The dialer's settings: how a campaign line is placed and what its answered calls hear.

The campaign itself (mode, queue, windows, retries, abandonment cap) is the CRM's (crmstore/campaigns.py,
`ctiserver campaign save`); what is here is the PBX side, the same for every campaign unless a campaign
names its own messages and caller ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.pacing import MACHINE_ACTIONS, MachineAction


@dataclass(frozen=True, slots=True)
class CampaignLines:
    """One campaign's messages and caller ID (the recorded messages are prompts on the PBX)."""

    abandon_message: str = "abandoned-call"  # the seller's name and number: FTC TSR and Ofcom
    machine_action: MachineAction = "hang_up"  # "hang_up": the campaign's answering_machine retry rule applies
    machine_message: str = "machine-message"
    caller_id_name: str = ""
    caller_id_num: str = ""

    def __post_init__(self) -> None:
        if self.machine_action not in MACHINE_ACTIONS:
            raise ValueError(f"machine_action: {self.machine_action!r} is not one of {', '.join(MACHINE_ACTIONS)}")


@dataclass(frozen=True, slots=True)
class DialerSettings:
    trunk: str = "PJSIP/{number}@trunk"  # the customer's dial string; {number} is the contact's E.164 number
    context: str = "cti-dialer"  # asterisk-config/extensions.conf: AMD(), then the line waits for us
    pbx: str = ""  # the PBX that places the lines ("" the first one)
    ring_timeout_s: float = 25.0  # FTC: at least 15 s before giving up on an unanswered line
    agent_ring_s: float = 10.0  # an agent's phone for an answered line (auto-answer phones take no time)
    wrap_up_s: float = 15.0  # after a campaign call, before the agent's next one
    poll_s: float = 5.0  # campaigns paused or resumed, lists refilled, agents re-read
    lines: CampaignLines = field(default_factory=CampaignLines)  # every campaign's unless named below
    campaigns: Mapping[str, CampaignLines] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "{number}" not in self.trunk:
            raise ValueError(f"trunk: {self.trunk!r} has no {{number}} for the customer's number")
        if self.ring_timeout_s < 15:
            raise ValueError(f"ring_timeout_s: {self.ring_timeout_s} is under the 15 s a line must ring (FTC)")
        for name in ("agent_ring_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: {getattr(self, name)} must be above 0")
        if self.wrap_up_s < 0:
            raise ValueError(f"wrap_up_s: {self.wrap_up_s} must not be negative")

    def lines_of(self, campaign: str) -> CampaignLines:
        return self.campaigns.get(campaign, self.lines)

    def dial_string(self, number: str) -> str:
        return self.trunk.replace("{number}", number)


class BadDialerSetting(ValueError):
    """One line naming the field of cti.yaml's `dialer:` section that is wrong, and why."""


_SECONDS = ("ring_timeout_s", "agent_ring_s", "wrap_up_s", "poll_s")
_TEXT = ("trunk", "context", "pbx")
_LINES = ("abandon_message", "machine_action", "machine_message", "caller_id_name", "caller_id_num")


def _lines_from(raw: object, where: str, base: CampaignLines) -> CampaignLines:
    if not isinstance(raw, dict):
        raise BadDialerSetting(f"{where}: must be a mapping ({', '.join(_LINES)})")
    unknown = [str(k) for k in raw if k not in _LINES]
    if unknown:
        raise BadDialerSetting(f"{where}.{unknown[0]}: unknown setting ({', '.join(_LINES)})")
    for key, value in raw.items():
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise BadDialerSetting(f"{where}.{key}: must be text, not {value!r}")
    try:
        return CampaignLines(**{**{k: getattr(base, k) for k in _LINES}, **{k: str(v) for k, v in raw.items()}})
    except ValueError as e:
        raise BadDialerSetting(f"{where}.{e}") from None


def dialer_settings_from(raw: object, where: str = "dialer") -> DialerSettings:
    """cti.yaml's `dialer:` section, checked as a whole: a ValueError naming the first bad field."""
    if not isinstance(raw, dict):
        raise BadDialerSetting(f"{where}: must be a mapping (trunk, ring_timeout_s, wrap_up_s, lines, campaigns ...)")
    known = (*_SECONDS, *_TEXT, "lines", "campaigns")
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key not in known:
            raise BadDialerSetting(f"{where}.{key}: unknown setting ({', '.join(known)})")
        if key in _SECONDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
                raise BadDialerSetting(f"{where}.{key}: must be a number of seconds from 0 to 86400, not {value!r}")
            values[key] = float(value)
        elif key in _TEXT:
            if not isinstance(value, str) or not value.strip():
                raise BadDialerSetting(f"{where}.{key}: must be text, not {value!r}")
            values[key] = value.strip()
    lines = _lines_from(raw["lines"], f"{where}.lines", CampaignLines()) if "lines" in raw else CampaignLines()
    campaigns = raw.get("campaigns") or {}
    if not isinstance(campaigns, dict):
        raise BadDialerSetting(f"{where}.campaigns: must map a campaign's name to its lines settings")
    try:
        return DialerSettings(**values, lines=lines,  # type: ignore[arg-type]
                              campaigns={str(name): _lines_from(v, f"{where}.campaigns.{name}", lines)
                                         for name, v in campaigns.items()})
    except ValueError as e:
        message = str(e)
        raise BadDialerSetting(message if message.startswith(where) else f"{where}.{message}") from None
