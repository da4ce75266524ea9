"""SIP messages as carried over a websocket (RFC 7118: one whole message per websocket message, so there is no
stream framing to do), and the digest arithmetic of RFC 2617/7616 that PJSIP's 401 challenges ask for.

Pure: text and bytes in, messages and strings out; no sockets, no asyncio. The websocket endpoint of the
simulator (sip_ws.py) and the tests' own phones are built on it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 64 * 1024  # a security limit: a REGISTER or an INVITE with its SDP is a few kB
MAX_HEADERS = 100

# RFC 3261 7.3.3 compact forms
_COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
            "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding"}
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ?(.*)")
_REQUEST_LINE = re.compile(r"([A-Z]+) (\S+) SIP/2\.0")


class SipError(ValueError):
    """A message that is not SIP, or breaks a limit."""


@dataclass(slots=True)
class SipMessage:
    """A request (``method`` and ``uri``) or a response (``status`` and ``reason``)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        want = name.lower()
        for k, v in self.headers:
            if k.lower() == want:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        want = name.lower()
        return [v for k, v in self.headers if k.lower() == want]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one (appended when there was none)."""
        want = name.lower()
        out, done = [], False
        for k, v in self.headers:
            if k.lower() == want:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        self.headers = out

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("CSeq").strip().partition(" ")
        try:
            return int(number), method.strip()
        except ValueError:
            raise SipError(f"bad CSeq {self.get('CSeq')!r}") from None

    def to_text(self) -> str:
        start = f"{self.method} {self.uri} SIP/2.0" if self.is_request else f"SIP/2.0 {self.status} {self.reason}"
        lines = [start] + [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return "\r\n".join(lines) + "\r\n\r\n" + self.body.decode("utf-8", "replace")


def is_keepalive(data: str | bytes) -> bool:
    """A CRLF keep-alive (RFC 5626 4.4.1): a real Asterisk 22.10.1 sent one on a browser's websocket during a
    call, an empty line where a message would start."""
    return not data.strip()


def parse(data: str | bytes, limit: int = MAX_MESSAGE) -> SipMessage:
    """One SIP message (a websocket message's payload). Raises SipError with a one-line reason."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > limit:
        raise SipError(f"message of {len(raw)} bytes is over the limit of {limit}")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise SipError("no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("headers are not UTF-8") from None
    lines = text.split("\r\n")
    msg = _start_line(lines[0])
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:  # folding (RFC 3261 7.3.1)
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipError(f"bad header line {line[:60]!r}")
        name = name.strip()
        msg.headers.append((_COMPACT.get(name.lower(), name) if len(name) == 1 else name, value.strip()))
        if len(msg.headers) > MAX_HEADERS:
            raise SipError(f"more than {MAX_HEADERS} headers")
    length = msg.get("Content-Length")
    if length:
        if not length.isdigit():
            raise SipError(f"bad Content-Length {length!r}")
        if int(length) > len(body):
            raise SipError(f"Content-Length {length} but {len(body)} bytes of body")
        body = body[: int(length)]
    msg.body = body
    for needed in ("Call-ID", "CSeq", "From", "To", "Via"):
        if not msg.get(needed):
            raise SipError(f"no {needed} header")
    msg.cseq  # noqa: B018 (validates it)
    return msg


def _start_line(line: str) -> SipMessage:
    if m := _STATUS_LINE.fullmatch(line):
        return SipMessage(status=int(m.group(1)), reason=m.group(2))
    if m := _REQUEST_LINE.fullmatch(line):
        return SipMessage(method=m.group(1), uri=m.group(2))
    raise SipError(f"bad start line {line[:60]!r}")


# ---------------------------------------------------------------- header values

def params(value: str) -> dict[str, str]:
    """``<sip:a@b>;tag=x;expires=60`` -> {"tag": "x", "expires": "60"} (parameters after the address)."""
    rest = value.rsplit(">", 1)[1] if ">" in value else value.partition(";")[2]
    out: dict[str, str] = {}
    for part in rest.split(";"):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.lower()] = v.strip().strip('"')
    return out


def tag(value: str) -> str:
    return params(value).get("tag", "")


def address(value: str) -> str:
    """The URI of a From/To/Contact value: ``"A" <sip:1002@h;transport=ws>;tag=x`` -> ``sip:1002@h;transport=ws``."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def user(uri: str) -> str:
    """``sip:1002@host`` -> ``1002``."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


# ---------------------------------------------------------------- building messages

def response_to(request: SipMessage, status: int, reason: str, *, to_tag: str | None = None,
                extra: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipMessage:
    """A response copying Via, Call-ID, From, To and CSeq (RFC 3261 8.2.6.2), in the order PJSIP writes them
    (capture 22)."""
    to = request.get("To")
    if to_tag and not tag(to):
        to = f"{to};tag={to_tag}"
    headers = [("Via", v) for v in request.get_all("Via")]
    headers += [("Call-ID", request.call_id), ("From", request.get("From")), ("To", to),
                ("CSeq", request.get("CSeq"))]
    return SipMessage(status=status, reason=reason, headers=headers + (extra or []), body=body)


# ---------------------------------------------------------------- digest (RFC 2617 / 7616, MD5, qop=auth)

_DIGEST_PARAM = re.compile(r'([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)')


def digest_params(header: str) -> dict[str, str]:
    """``Digest realm="asterisk",nonce="..",qop="auth"`` -> its parameters (lower-case names)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"not a digest header: {header[:40]!r}")
    return {k.lower(): v[1:-1] if v.startswith('"') else v for k, v in _DIGEST_PARAM.findall(rest)}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def digest_response(*, username: str, password: str, realm: str, method: str, uri: str, nonce: str,
                    qop: str = "", nc: str = "00000001", cnonce: str = "") -> str:
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorization(challenge: str, *, username: str, password: str, method: str, uri: str) -> str:
    """The Authorization header answering a WWW-Authenticate challenge."""
    p = digest_params(challenge)
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    qop = "auth" if "auth" in p.get("qop", "").split(",") else ""
    cnonce = secrets.token_hex(8) if qop else ""
    resp = digest_response(username=username, password=password, realm=realm, method=method, uri=uri,
                           nonce=nonce, qop=qop, cnonce=cnonce)
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', "algorithm=MD5"]
    if qop:
        parts += [f"qop={qop}", f'cnonce="{cnonce}"', "nc=00000001"]
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)


def check_authorization(header: str, *, password: str, realm: str, method: str, nonce: str) -> str | None:
    """The username whose credentials ``header`` proves, or None (wrong password, stale nonce, malformed)."""
    try:
        p = digest_params(header)
    except SipError:
        return None
    if p.get("realm") != realm or p.get("nonce") != nonce or not p.get("username"):
        return None
    want = digest_response(username=p["username"], password=password, realm=realm, method=method,
                           uri=p.get("uri", ""), nonce=nonce, qop=p.get("qop", ""), nc=p.get("nc", ""),
                           cnonce=p.get("cnonce", ""))
    return p["username"] if secrets.compare_digest(want, p.get("response", "")) else None
