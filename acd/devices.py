"""Agents' phones as Asterisk dial strings: what an agent leg's Originate ``Channel`` may be.

A device is ``<technology>/<resource>``: ``PJSIP/1001``, ``IAX2/office/1001``, ``Local/1001@agent-phones``,
or a home agent's mobile through the trunk (``PJSIP/13800138000@trunk``, ``Local/13800138000@cti-outbound``).
A device template may hold ``{extension}``: what the agent typed at login.

The pattern is strict on purpose: the string goes into AMI headers and, through Local channels, into the
dialplan. No comma (Originate splits ``Variable`` and Dial its arguments on it), no ``&`` (Dial would ring a
second phone), no ``;``, spaces, quotes, parentheses, ``$`` or braces (dialplan syntax), no control
characters (the AMI encoder refuses CR and LF as well).
"""

from __future__ import annotations

import re

DIAL_STRING = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9@._:+#*~/-]{1,200}")
PLACEHOLDER = "{extension}"
_SAMPLE_EXTENSION = "1001"


def render(template: str, extension: str) -> str:
    """The dial string of ``template`` for the extension an agent typed."""
    return template.replace(PLACEHOLDER, extension)


def uses_extension(template: str) -> bool:
    return PLACEHOLDER in template


def device_problem(template: str) -> str | None:
    """None when ``template`` yields a valid dial string for any extension, else what is wrong (one line)."""
    rendered = render(template, _SAMPLE_EXTENSION)
    if "{" in rendered or "}" in rendered:
        return f"{template!r}: only {PLACEHOLDER} may stand in braces"
    if not DIAL_STRING.fullmatch(rendered):
        return (f"{template!r} is not a dial string: technology/resource (PJSIP/1001, Local/1001@agent-phones, "
                "PJSIP/13800138000@trunk) of letters, digits and @ . _ : + # * ~ / -, without commas, "
                "spaces or control characters")
    return None


def technology(device: str) -> str:
    return device.partition("/")[0]


def is_local(device: str) -> bool:
    return technology(device).lower() == "local"


def without_optimization(device: str) -> str:
    """A Local device with the ``n`` option: Asterisk would otherwise optimize the Local pair away once both
    halves are bridged, and the agent leg the CTI originated (its ChannelId) would hang up mid-call."""
    if not is_local(device):
        return device
    tech, _, rest = device.partition("/")
    dest, _, options = rest.partition("/")  # Local/<exten>@<context>[/<options>]
    if "n" in options:
        return device
    return f"{tech}/{dest}/{options}n"


_DESK_PHONE = re.compile(r"PJSIP/([A-Za-z0-9][A-Za-z0-9_.-]{1,63})")  # [cti-agent-dial] matches 2+ characters


def desk_phone(device: str) -> str | None:
    """The PJSIP endpoint of ``PJSIP/<endpoint>``: a phone that can be told to answer by itself (auto-answer
    is a SIP header, so only a PJSIP endpoint of this PBX qualifies, not a trunk or another technology)."""
    m = _DESK_PHONE.fullmatch(device)
    return m.group(1) if m else None


def label(device: str) -> str:
    """What a console shows as the agent's phone: ``1001`` for PJSIP/1001, Local/1001@agent-phones/n and
    IAX2/office/1001; ``13800138000`` for PJSIP/13800138000@trunk."""
    tech, _, rest = device.partition("/")
    if tech.lower() == "local":
        rest = rest.split("/", 1)[0]
    return rest.rsplit("/", 1)[-1].split("@", 1)[0]
