"""Accounts, password hashes, tokens and the role table, without sockets."""

from __future__ import annotations

import pytest

from ctiserver.gateway.auth import (
    PERMISSIONS,
    Account,
    AccountConfigError,
    Accounts,
    AuthError,
    Role,
    TokenSigner,
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
