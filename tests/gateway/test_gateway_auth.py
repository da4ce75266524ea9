"""Accounts, password hashes, tokens and the role table, without sockets."""

from __future__ import annotations

import pytest

from ctiserver.gateway.auth import (
    PERMISSIONS,
    Account,
    AccountConfigError,
    Accounts,
    AuthError,
    Backoff,
    FailureCounter,
    LoginThrottle,
    Role,
    TokenSigner,
    address_key,
    hash_password,
    verify_password,
)
from ctiserver.gateway.schema import ErrorCode

CHEAP = {"n": 2**10}


def test_hashes_are_salted_and_verify() -> None:
    a, b = hash_password("s3cret", **CHEAP), hash_password("s3cret", **CHEAP)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert verify_password("s3cret", a) and not verify_password("s3cret!", a)
    assert not verify_password("x", "garbage") and not verify_password("x", "pbkdf2$1$2$3$4$5")


def test_default_cost_is_real() -> None:
    assert hash_password("x").startswith("scrypt$16384$8$1$")


def test_accounts_from_config_precise_errors() -> None:
    good = {"username": "li.na", "role": "agent", "password_hash": hash_password("p", **CHEAP)}
    accounts = Accounts.from_config([good], "accounts.yaml")
    account = accounts.get("li.na")
    assert account is not None and account.agent_id == "li.na" and account.role is Role.AGENT
    bad_cases = [
        ({**good, "role": "boss"}, "accounts.yaml: accounts[0] (li.na).role"),
        ({**good, "password_hash": "plain"}, ".password_hash"),
        ({**good, "colour": "red"}, "unknown field 'colour'"),
        ({"role": "agent", "password_hash": good["password_hash"]}, "accounts[0].username: required"),
        ({**good, "username": "a b"}, ".username"),
        ({**good, "display_name": "x\ny"}, ".display_name"),
    ]
    for entry, fragment in bad_cases:
        with pytest.raises(AccountConfigError, match=None) as err:
            Accounts.from_config([entry], "accounts.yaml")
        assert fragment in str(err.value), (entry, str(err.value))
    with pytest.raises(AccountConfigError, match="defined twice"):
        Accounts.from_config([good, good])


def test_check_password_same_error_for_unknown_user() -> None:
    accounts = Accounts([Account("a", Role.AGENT, hash_password("pw", **CHEAP), agent_id="a")])
    assert accounts.check_password("a", "pw").username == "a"
    messages = set()
    for user, pw in (("a", "bad"), ("ghost", "pw")):
        with pytest.raises(AuthError) as err:
            accounts.check_password(user, pw)
        assert err.value.code is ErrorCode.AUTH_FAILED
        messages.add(err.value.message)
    assert len(messages) == 1


def test_tokens_sign_expire_and_end() -> None:
    account = Account("sup", Role.SUPERVISOR, hash_password("pw", **CHEAP), extension="2001")
    accounts = Accounts([account])
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    token, principal = signer.issue(account, now=1000)
    assert signer.check(token, 1059, accounts) == principal
    with pytest.raises(AuthError) as err:
        signer.check(token, 1060)
    assert err.value.code is ErrorCode.TOKEN_EXPIRED
    with pytest.raises(AuthError) as err:
        TokenSigner(b"other-secret-16b", 60).check(token, 1001)
    assert err.value.code is ErrorCode.TOKEN_INVALID
    body, sig = token.split(".")
    tampered = body.replace(body[5], "A" if body[5] != "A" else "B", 1)
    with pytest.raises(AuthError):
        signer.check(f"{tampered}.{sig}", 1001)
    # A role changed in config ends the session at the next resume.
    demoted = Accounts([Account("sup", Role.AGENT, account.password_hash, agent_id="sup")])
    with pytest.raises(AuthError):
        signer.check(token, 1001, demoted)
    signer.end(principal, 1001)
    with pytest.raises(AuthError):
        signer.check(token, 1002)


def test_role_table() -> None:
    assert "spy" not in PERMISSIONS[Role.AGENT] and "spy" in PERMISSIONS[Role.SUPERVISOR]
    assert "hangup" not in PERMISSIONS[Role.SUPERVISOR] and "hangup" in PERMISSIONS[Role.AGENT]
    assert PERMISSIONS[Role.ADMIN] >= PERMISSIONS[Role.SUPERVISOR]


def test_backoff_doubles_from_the_lock_after_th_failure() -> None:
    policy = Backoff(lock_after=5, base_s=1.0, max_s=300.0)
    assert [policy.lock_s(n) for n in range(1, 12)] == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64]
    assert policy.lock_s(14) == 300 and policy.lock_s(10_000) == 300


def test_failure_counter_locks_forgets_and_stays_bounded() -> None:
    counter = FailureCounter(Backoff(lock_after=2, forget_s=100.0), max_keys=3)
    assert counter.failed("a", 0.0) == 0 and counter.retry_after("a", 0.0) == 0
    assert counter.failed("a", 1.0) == 1 and counter.retry_after("a", 1.5) == 0.5
    assert counter.retry_after("a", 2.0) == 0
    assert counter.failed("a", 2.0) == 2  # the count goes on after a lock has passed
    # A quiet key starts again from zero, and is dropped when looked at.
    assert counter.failed("a", 200.0) == 0
    assert counter.retry_after("a", 400.0) == 0 and len(counter) == 0
    for key in "wxyz":
        counter.failed(key, 500.0)
        counter.failed(key, 500.0)
    assert len(counter) == 3 and counter.retry_after("w", 500.0) == 0  # least recently failed: evicted
    assert counter.retry_after("z", 500.0) == 1


def test_login_throttle_clears_the_user_not_the_address() -> None:
    throttle = LoginThrottle(Backoff(lock_after=2), Backoff(lock_after=3))
    throttle.failed("li.na", "10.0.0.7", 0.0)
    throttle.check("li.na", "10.0.0.7", 0.0)
    throttle.failed("li.na", "10.0.0.7", 0.0)
    with pytest.raises(AuthError) as err:
        throttle.check("li.na", "10.0.0.9", 0.2)
    assert (err.value.code, err.value.retry_after_s) == (ErrorCode.LOCKED_OUT, 1)  # whole seconds, rounded up
    throttle.succeeded("li.na")
    throttle.check("li.na", "10.0.0.7", 0.2)
    throttle.failed("bob", "10.0.0.7", 0.2)  # the address's third failure
    with pytest.raises(AuthError) as err:
        throttle.check("carol", "10.0.0.7", 0.2)
    assert err.value.code is ErrorCode.LOCKED_OUT
    throttle.check("carol", "10.0.0.8", 0.2)


def test_address_keys() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("unknown") == "unknown"


def test_forced_logout_ends_sessions_issued_before_it() -> None:
    agent = Account("li.na", Role.AGENT, hash_password("pw", **CHEAP), agent_id="1001")
    accounts = Accounts([agent, Account("sup", Role.SUPERVISOR, hash_password("pw", **CHEAP))])
    assert accounts.of_agent("1001") == [agent] and accounts.of_agent("sup") == []
    signer = TokenSigner(b"k" * 32, ttl_s=600)
    before, principal = signer.issue(agent, now=1000.0)
    signer.end_user("li.na", 1000.5)
    with pytest.raises(AuthError) as err:
        signer.check(before, 1001)
    assert err.value.code is ErrorCode.TOKEN_INVALID and "supervisor" in err.value.message
    with pytest.raises(AuthError):
        signer.verify(principal, 1001)  # a live connection's principal: checked before each command
    after, _ = signer.issue(agent, now=1000.6)
    assert signer.check(after, 1001).username == "li.na"
