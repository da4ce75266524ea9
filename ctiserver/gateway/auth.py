"""Console accounts, password hashes, signed session tokens and the role table. Pure (no I/O).

Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` with a per-user random salt;
the cost is in the string so it can be raised later without breaking stored hashes.
Session tokens are ``<payload b64url>.<HMAC-SHA256 b64url>``; the payload holds the user, role,
a session id and the expiry. The server keeps no token table: a token is valid while its
signature checks, it has not expired and its session was not ended by `logout`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ctiserver.gateway.schema import CLIENT_MESSAGES, NAME, ErrorCode, unsafe_char

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, tens of ms: login is rare, guessing is slow
_DKLEN = 32


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


_COMMON = frozenset({"ping", "logout", "search"})
_AGENT_ONLY = frozenset({"agent_login", "agent_logout", "ready", "pause", "hold", "unhold", "transfer",
                         "transfer_complete", "transfer_cancel", "hangup", "wrapup", "dial"})
_SUPERVISOR = frozenset({"spy", "force_pause", "force_logout", "move_call"})

# Which commands each role may send (pre-auth messages `auth`/`resume` are handled apart).
PERMISSIONS: Mapping[Role, frozenset[str]] = MappingProxyType({
    Role.AGENT: _COMMON | _AGENT_ONLY,
    Role.SUPERVISOR: _COMMON | _SUPERVISOR,
    Role.ADMIN: _COMMON | _SUPERVISOR,
})
assert all(t in CLIENT_MESSAGES for perms in PERMISSIONS.values() for t in perms)


class AccountConfigError(ValueError):
    pass


class AuthError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    password_hash: str
    agent_id: str | None = None  # agents: the id the ACD knows; defaults to the username
    extension: str | None = None  # supervisors: the phone used for listen/whisper/barge
    display_name: str = ""
    language: str = "zh"  # the console's default interface language


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on a connection, as proven by a password or a token."""

    username: str
    role: Role
    agent_id: str | None
    extension: str | None
    display_name: str
    session_id: str
    expires_at: int  # unix seconds

    def may(self, command: str) -> bool:
        return command in PERMISSIONS[self.role]


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of a password (the `ctiserver hash-password` command prints this)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=2**27)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(_unb64(expected)), maxmem=2**27)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Accounts:
    """The account table, built once from config; lookups only."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        table: dict[str, Account] = {}
        for account in accounts:
            if account.username in table:
                raise AccountConfigError(f"account {account.username!r}: defined twice")
            table[account.username] = account
        self._table = table
        # Unknown users still cost one scrypt so timing does not reveal which usernames exist.
        self._dummy = hash_password(secrets.token_urlsafe(8))

    def __len__(self) -> int:
        return len(self._table)

    def get(self, username: str) -> Account | None:
        return self._table.get(username)

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, object]], source: str = "config") -> Accounts:
        """Entries like {username, role, password_hash, agent_id?, extension?, display_name?, language?}."""
        accounts = []
        for i, entry in enumerate(entries):
            where = f"{source}: accounts[{i}]"
            accounts.append(_account_from(entry, where))
        return cls(accounts)

    def check_password(self, username: str, password: str) -> Account:
        """The account if the password matches; AuthError otherwise (same message either way)."""
        account = self._table.get(username)
        ok = verify_password(password, account.password_hash if account else self._dummy)
        if account is None or not ok:
            raise AuthError(ErrorCode.AUTH_FAILED, "wrong username or password")
        return account


def _account_from(entry: Mapping[str, object], where: str) -> Account:
    allowed = {"username", "role", "password_hash", "agent_id", "extension", "display_name", "language"}
    extra = set(entry) - allowed
    if extra:
        raise AccountConfigError(f"{where}: unknown field {min(extra)!r}")

    def text(name: str, required: bool) -> str | None:
        value = entry.get(name)
        if value is None:
            if required:
                raise AccountConfigError(f"{where}.{name}: required")
            return None
        if not isinstance(value, str) or not value or unsafe_char(value) is not None:
            raise AccountConfigError(f"{where}.{name}: must be a non-empty single-line string")
        return value

    username = text("username", True)
    assert username is not None
    where = f"{where} ({username})"
    if not re.fullmatch(NAME, username):
        raise AccountConfigError(f"{where}.username: letters, digits and ._@+- only")
    role_text = text("role", True)
    try:
        role = Role(role_text or "")
    except ValueError:
        raise AccountConfigError(f"{where}.role: one of agent, supervisor, admin") from None
    password_hash = text("password_hash", True)
    assert password_hash is not None
    if not password_hash.startswith("scrypt$") or password_hash.count("$") != 5:
        raise AccountConfigError(f"{where}.password_hash: not a hash from `ctiserver hash-password`")
    agent_id = text("agent_id", False)
    if role is Role.AGENT and agent_id is None:
        agent_id = username
    if agent_id is not None and not re.fullmatch(NAME, agent_id):
        raise AccountConfigError(f"{where}.agent_id: letters, digits and ._@+- only")
    return Account(username=username, role=role, password_hash=password_hash, agent_id=agent_id,
                   extension=text("extension", False), display_name=text("display_name", False) or username,
                   language=text("language", False) or "zh")


class TokenSigner:
    """Issues and checks session tokens. `secret` must be shared by all workers that resume sessions."""

    def __init__(self, secret: bytes, ttl_s: int = 12 * 3600) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._ended: dict[str, int] = {}  # session id -> expiry, for sessions ended by logout

    def issue(self, account: Account, now: float) -> tuple[str, Principal]:
        principal = Principal(username=account.username, role=account.role, agent_id=account.agent_id,
                              extension=account.extension, display_name=account.display_name,
                              session_id=secrets.token_urlsafe(12), expires_at=int(now) + self.ttl_s)
        payload = {"u": principal.username, "r": str(principal.role), "a": principal.agent_id,
                   "x": principal.extension, "d": principal.display_name, "s": principal.session_id,
                   "e": principal.expires_at}
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._sign(body)}", principal

    def check(self, token: str, now: float, accounts: Accounts | None = None) -> Principal:
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise AuthError(ErrorCode.TOKEN_INVALID, "token not valid")
        try:
            data = json.loads(_unb64(body))
            principal = Principal(username=str(data["u"]), role=Role(data["r"]), agent_id=data["a"],
                                  extension=data["x"], display_name=str(data["d"]), session_id=str(data["s"]),
                                  expires_at=int(data["e"]))
        except (ValueError, KeyError, TypeError):
            raise AuthError(ErrorCode.TOKEN_INVALID, "token not valid") from None
        if principal.expires_at <= now:
            raise AuthError(ErrorCode.TOKEN_EXPIRED, "session expired: log in again")
        if principal.session_id in self._ended:
            raise AuthError(ErrorCode.TOKEN_INVALID, "session ended: log in again")
        if accounts is not None:
            account = accounts.get(principal.username)
            # A removed account or a changed role ends its sessions at the next resume.
            if account is None or account.role is not principal.role:
                raise AuthError(ErrorCode.TOKEN_INVALID, "account changed: log in again")
        return principal

    def end(self, principal: Principal, now: float) -> None:
        self._ended = {sid: exp for sid, exp in self._ended.items() if exp > now}
        self._ended[principal.session_id] = principal.expires_at

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
