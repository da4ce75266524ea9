"""Console accounts, password hashes, signed session tokens and the role table. Pure (no I/O).

Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` with a per-user random salt;
the cost is in the string so it can be raised later without breaking stored hashes.
Session tokens are ``<payload b64url>.<HMAC-SHA256 b64url>``; the payload holds the user, role,
a session id, when it was issued and the expiry. The server keeps no token table: a token is valid
while its signature checks, it has not expired, its session was not ended by `logout` and its user
was not forced out after it was issued.
Failed logins are counted per username and per client address across connections (`LoginThrottle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ctiserver.gateway.schema import ADMIN_MESSAGES, CLIENT_MESSAGES, NAME, ErrorCode, unsafe_char

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, tens of ms: login is rare, guessing is slow
_DKLEN = 32


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


_COMMON = frozenset({"ping", "logout", "search"})
_AGENT_ONLY = frozenset({"agent_login", "agent_logout", "phone_account", "phone_state", "ready", "pause", "answer",
                         "hold", "unhold", "transfer",
                         "transfer_complete", "transfer_cancel", "hangup", "wrapup", "dial",
                         "wrapup_draft", "my_day", "preview_dial", "preview_skip"})
_SUPERVISOR = frozenset({"spy", "spy_stop", "force_pause", "force_logout", "move_call", "callback_book",
                         "callback_cancel", "callbacks", "campaigns", "campaign_pause", "campaign_resume"})
# CRM work: the card and its edits for everyone who talks to customers; the worklist is an agent's own;
# the base-wide lists and runs are the supervisors'.
_CRM_COMMON = frozenset({"customer_open", "customer_save", "ticket_open", "ticket_update"})
_CRM_AGENT = frozenset({"worklist", "follow_up_add", "follow_up_call", "follow_up_save", "follow_up_close"})
_CRM_SUPERVISOR = frozenset({"churn_list", "grade_run"})

# Recordings: the agent on the call starts and pauses; playback and the voicemail inbox for both roles,
# each answer narrowed to what the person may hear (ctiserver/recordings/service.py).
_RECORDING_AGENT = frozenset({"recording_start", "recording_pause", "recording_resume", "recording_stop"})
_RECORDING_BOTH = frozenset({"recordings_list", "recording_play", "voicemail_list", "voicemail_play",
                             "voicemail_done"})
_RECORDING_SUPERVISOR = frozenset({"voicemail_assign"})

# Which commands each role may send (pre-auth messages `auth`/`resume` are handled apart).
PERMISSIONS: Mapping[Role, frozenset[str]] = MappingProxyType({
    Role.AGENT: _COMMON | _AGENT_ONLY | _CRM_COMMON | _CRM_AGENT | _RECORDING_AGENT | _RECORDING_BOTH,
    Role.SUPERVISOR: _COMMON | _SUPERVISOR | _CRM_COMMON | _CRM_SUPERVISOR | _RECORDING_BOTH | _RECORDING_SUPERVISOR,
    Role.ADMIN: (_COMMON | _SUPERVISOR | _CRM_COMMON | _CRM_SUPERVISOR | _RECORDING_BOTH | _RECORDING_SUPERVISOR
                 | ADMIN_MESSAGES),
})
assert all(t in CLIENT_MESSAGES for perms in PERMISSIONS.values() for t in perms)


class AccountConfigError(ValueError):
    pass


class AuthError(Exception):
    def __init__(self, code: ErrorCode, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


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
    issued_at: float = 0.0  # unix seconds; a forced logout ends the sessions issued before it

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

    def all(self) -> list[Account]:
        return list(self._table.values())

    def of_agent(self, agent_id: str) -> list[Account]:
        """The accounts that act as this ACD agent (normally one)."""
        return [a for a in self._table.values() if a.agent_id == agent_id and a.role is Role.AGENT]

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
        self._forced_out: dict[str, float] = {}  # username -> when a supervisor logged them out

    def issue(self, account: Account, now: float) -> tuple[str, Principal]:
        principal = Principal(username=account.username, role=account.role, agent_id=account.agent_id,
                              extension=account.extension, display_name=account.display_name,
                              session_id=secrets.token_urlsafe(12), expires_at=int(now) + self.ttl_s,
                              issued_at=now)
        payload = {"u": principal.username, "r": str(principal.role), "a": principal.agent_id,
                   "x": principal.extension, "d": principal.display_name, "s": principal.session_id,
                   "e": principal.expires_at, "i": principal.issued_at}
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
                                  expires_at=int(data["e"]), issued_at=float(data.get("i", 0.0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthError(ErrorCode.TOKEN_INVALID, "token not valid") from None
        self.verify(principal, now)
        if accounts is not None:
            account = accounts.get(principal.username)
            # A removed account or a changed role ends its sessions at the next resume.
            if account is None or account.role is not principal.role:
                raise AuthError(ErrorCode.TOKEN_INVALID, "account changed: log in again")
        return principal

    def verify(self, principal: Principal, now: float) -> None:
        """Raises AuthError unless the session is still live (checked on resume and before every command)."""
        if principal.expires_at <= now:
            raise AuthError(ErrorCode.TOKEN_EXPIRED, "session expired: log in again")
        if principal.session_id in self._ended:
            raise AuthError(ErrorCode.TOKEN_INVALID, "session ended: log in again")
        forced_at = self._forced_out.get(principal.username)
        if forced_at is not None and principal.issued_at < forced_at:
            raise AuthError(ErrorCode.TOKEN_INVALID, "logged out by a supervisor: log in again")

    def end(self, principal: Principal, now: float) -> None:
        self._ended = {sid: exp for sid, exp in self._ended.items() if exp > now}
        self._ended[principal.session_id] = principal.expires_at

    def restore(self, ended: dict[str, int], forced_out: dict[str, float]) -> None:
        """Sessions ended before a restart stay ended (the journal keeps them)."""
        self._ended.update(ended)
        self._forced_out.update(forced_out)

    def end_user(self, username: str, now: float) -> None:
        """End every session of `username` issued until now, wherever it is (a supervisor's forced logout).
        One entry per account at most: the table stays as small as the account list."""
        self._forced_out[username] = now

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())


# ---------------------------------------------------------------------------------------------
# Login throttling: failures counted across connections, so reconnecting does not reset them.


@dataclass(frozen=True, slots=True)
class Backoff:
    """The `lock_after`-th failure of one key locks it for base_s, each further one for twice as long
    as the last, up to max_s. A key with no failure for forget_s starts again from zero."""

    lock_after: int
    base_s: float = 1.0
    max_s: float = 300.0
    forget_s: float = 900.0  # longer than max_s: waiting out one lock does not wipe the count

    def lock_s(self, failures: int) -> float:
        over = failures - self.lock_after
        if over < 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(over, 64))


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class FailureCounter:
    """Failed logins of one kind of key (usernames, or client addresses), bounded: an LRU of `max_keys`.

    Evicting the least recently failed key forgets the oldest trouble first; an attacker who wants a
    lock forgotten must first fail from enough other keys, which the other counter limits."""

    def __init__(self, policy: Backoff, max_keys: int = 10_000) -> None:
        self.policy = policy
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        if now >= entry.locked_until and now - entry.last > self.policy.forget_s:
            del self._keys[key]
            return 0.0
        return max(0.0, entry.locked_until - now)

    def failed(self, key: str, now: float) -> float:
        """Count one failure; returns how long the key is now locked (0: not locked)."""
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Failures()
        elif now - entry.last > self.policy.forget_s:
            entry.count = 0
        self._keys.move_to_end(key)
        entry.count += 1
        entry.last = now
        lock = self.policy.lock_s(entry.count)
        if lock:
            entry.locked_until = max(entry.locked_until, now + lock)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return lock

    def forget(self, key: str) -> None:
        self._keys.pop(key, None)


class LoginThrottle:
    """Failed password logins per username and per client address, whatever the connection.

    A username is locked sooner than an address: one person mistyping a password fails a few
    times, while an office behind one NAT address is many people. A success clears the username's
    count but not the address's: an attacker who also holds one good account must not be able to
    wash their address between guesses. The clock is the caller's (`now`), so this stays pure."""

    def __init__(self, per_user: Backoff, per_address: Backoff, max_keys: int = 10_000) -> None:
        self.users = FailureCounter(per_user, max_keys)
        self.addresses = FailureCounter(per_address, max_keys)

    def check(self, username: str, address: str, now: float) -> None:
        """Raises AuthError locked_out (with retry_after_s) when either key is locked."""
        wait = max(self.users.retry_after(username, now), self.addresses.retry_after(address, now))
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise AuthError(ErrorCode.LOCKED_OUT, f"too many failed logins: try again in {seconds} s",
                            retry_after_s=seconds)

    def failed(self, username: str, address: str, now: float) -> None:
        self.users.failed(username, now)
        self.addresses.failed(address, now)

    def succeeded(self, username: str) -> None:
        self.users.forget(username)


def address_key(host: str) -> str:
    """The throttling key of a client address. IPv6 clients are counted per /64: one host usually
    holds a whole /64, and counting its 2**64 addresses apart would count nothing."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
