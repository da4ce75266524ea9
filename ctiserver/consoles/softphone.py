"""The browser phone's SIP account: where it registers and with which credentials.

An agent's console is their phone when cti.yaml has ``agents: {softphone: {ws_url: ..., secret: ...}}``. Each
agent's SIP password is derived from that site secret (HMAC-SHA256 of the extension), so nothing per agent
has to be stored on the CTI, and the server hands it to the agent's console over the authenticated websocket
at login: it is never in the page source. The PBX needs the same password in the agent's pjsip.conf auth
section: ``ctiserver softphone-auth --config cti.yaml 1002 1003`` prints those sections, and changing the
secret means pasting them again (asterisk-config/README.md, "Browser phones").

Pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

MIN_SECRET = 16


@dataclass(frozen=True, slots=True)
class SoftphoneSettings:
    """cti.yaml ``agents: {softphone: {...}}``."""

    ws_url: str  # the PBX's SIP websocket, as the agents' browsers reach it: wss://pbx.example.com:8089/ws
    secret: str  # the site secret the agents' SIP passwords are derived from
    domain: str = ""  # the SIP domain of the agents' URIs (sip:<extension>@<domain>); default: ws_url's host
    register_expires_s: int = 300  # within agent-webrtc-aor's maximum_expiration
    ice_servers: tuple[str, ...] = ()  # stun:/turn: URLs for consoles outside the PBX's network

    @property
    def sip_domain(self) -> str:
        if self.domain:
            return self.domain
        rest = self.ws_url.split("://", 1)[-1]
        return rest.split("/", 1)[0].rsplit(":", 1)[0] if not rest.startswith("[") else rest.split("]", 1)[0][1:]


def sip_password(secret: str, extension: str) -> str:
    """The agent's SIP password: 24 characters of base32, good in any pjsip.conf value (no ; or #)."""
    mac = hmac.new(secret.encode("utf-8"), f"sip-password:{extension}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii")[:24].lower()


def settings_problem(ws_url: str, secret: str) -> str | None:
    if not ws_url.startswith(("wss://", "ws://")):
        return f"ws_url must be a websocket URL (wss://<pbx>:8089/ws), not {ws_url!r}"
    if len(secret) < MIN_SECRET:
        return f"secret must be at least {MIN_SECRET} characters"
    return None


def account(settings: SoftphoneSettings, extension: str, *, auto_answer: bool) -> dict[str, Any]:
    """What the console's phone needs to register as ``extension``: sent to that agent's console only."""
    return {
        "ws_url": settings.ws_url,
        "uri": f"sip:{extension}@{settings.sip_domain}",
        "username": extension,
        "password": sip_password(settings.secret, extension),
        "register_expires_s": settings.register_expires_s,
        "ice_servers": list(settings.ice_servers),
        "auto_answer": auto_answer,
    }


def endpoint_of(device: str) -> str | None:
    """The PJSIP endpoint a softphone registers as: PJSIP/1002 -> 1002; anything else has no browser phone."""
    tech, _, rest = device.partition("/")
    if tech != "PJSIP" or not rest or "@" in rest or "/" in rest:
        return None
    return rest


def auth_section(secret: str, extension: str) -> str:
    """The agent's pjsip.conf auth section, as shipped in asterisk-config/pjsip.conf."""
    return (f"[{extension}](agent-auth)\n"
            f"username = {extension}\n"
            f"password = {sip_password(secret, extension)}\n")
