"""The protocol core, without sockets."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ctiserver.gateway.schema import (
    CLIENT_MESSAGES,
    SECRET_FIELDS,
    SERVER_MESSAGES,
    Command,
    ErrorCode,
    ProtocolError,
    check_value,
    decode_client,
    json_schemas,
    redact,
    schema_markdown,
    server_message,
    to_wire,
    unsafe_char,
    validate_server,
)

ROOT = Path(__file__).resolve().parents[2]


def decode(obj: object) -> Command | ProtocolError:
    return decode_client(json.dumps(obj))


def test_valid_messages_decode() -> None:
    cmd = decode({"v": 1, "type": "agent_login", "id": "a-1", "extension": "1001", "queues": ["sales", "售后"]})
    assert isinstance(cmd, Command) and cmd.id == "a-1" and cmd.args["queues"] == ["sales", "售后"]
    cmd = decode({"type": "wrapup", "call_id": "c.1", "disposition": "resolved", "notes": "line1\nline2\t✓",
                  "follow_up": {"kind": "visit", "due_at": "2030-01-01T09:00:00+08:00"}})
    assert isinstance(cmd, Command)
    assert isinstance(decode({"type": "move_call", "call_id": "c1", "head": True}), Command)
    assert isinstance(decode({"type": "dial", "number": "+8613800000000"}), Command)


def test_each_refusal_names_the_field() -> None:
    cases = [
        ({"type": "agent_login", "extension": "10 01", "queues": ["a"]}, "extension"),
        ({"type": "agent_login", "extension": "1001", "queues": ["a", "a"]}, "queues"),
        ({"type": "agent_login", "extension": "1001", "queues": ["a", "b\r\nc"]}, "queues[1]"),
        ({"type": "wrapup", "call_id": "c", "disposition": "x", "follow_up": {"kind": "visit"}}, "follow_up.due_at"),
        ({"type": "wrapup", "call_id": "c", "disposition": "x", "follow_up": {"kind": "x", "due_at": "2030-01-01"}},
         "follow_up.kind"),
        ({"type": "dial", "customer_id": 1, "number": "1"}, "customer_id"),
        ({"type": "move_call", "call_id": "c1"}, "queue"),
        ({"type": "move_call", "call_id": "c1", "head": "yes"}, "head"),
        ({"type": "search", "q": "a", "limit": 0}, "limit"),
        ({"type": "search", "q": "a", "limit": True}, "limit"),
        ({"type": "transfer", "call_id": "c", "mode": "blind", "target_kind": "agent", "target": "a b"}, "target"),
        ({"type": "resume", "token": "t", "last_seq": -1}, "last_seq"),
    ]
    for obj, field in cases:
        err = decode(obj)
        assert isinstance(err, ProtocolError) and err.code is ErrorCode.BAD_FIELD and err.field == field, (obj, err)


def test_an_unknown_field_name_is_echoed_short_and_escaped() -> None:
    """The reply names the made-up field, within the documented error shape: `field` at most 64
    characters, `message` at most 500, neither with a control character (found by bench/fuzz.py)."""
    error_fields = SERVER_MESSAGES["error"][1]
    for name in ["", "\x00", "id\u2028", "x" * 10_000, "\ud800" * 100, "9" * 600, "字段\r\n"]:
        for obj in ({"type": "ping", name: 1},
                    {"type": "wrapup", "call_id": "c", "disposition": "x",
                     "follow_up": {"kind": "visit", "due_at": "2030-01-01", name: 1}}):
            err = decode(obj)
            assert isinstance(err, ProtocolError) and err.code is ErrorCode.BAD_FIELD, (name, err)
            reply = err.reply()
            for key in ("field", "message"):
                assert check_value(error_fields[key].kind, reply[key], key) is None, (name, reply)
    err = decode({"type": "ping", "colour": "red"})
    assert isinstance(err, ProtocolError) and (err.field, err.message) == ("colour", "colour: unknown field")
    err = decode({"type": "ping", "a b": 1})
    assert isinstance(err, ProtocolError) and err.field == "'a b'"


def test_size_limit_and_binary() -> None:
    big = json.dumps({"type": "search", "q": "汉" * 6000})  # 18 KB of UTF-8 in 6,000 characters
    err = decode_client(big)
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.TOO_LARGE
    err = decode_client(b"{}")
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.BINARY_NOT_SUPPORTED


def test_unsafe_characters() -> None:
    for ch in "\r\n\x00\x1b\x7f\x85\u2028\u2029\ud800":
        assert unsafe_char(f"a{ch}b") == ch
    assert unsafe_char("a\nb\tc", multiline=True) is None
    assert unsafe_char("a\rb", multiline=True) == "\r"
    assert unsafe_char("张伟 Zhāng\u200dWěi\u3000") is None


@given(st.text(max_size=200))
def test_decoder_never_raises_on_any_text(text: str) -> None:
    assert isinstance(decode_client(text), Command | ProtocolError)


@given(st.dictionaries(st.sampled_from(["type", "id", "v", "reason", "call_id", "queues", "extension", "q"]),
                       st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none(),
                                 st.lists(st.text(max_size=5), max_size=3)), max_size=5))
def test_accepted_strings_never_carry_control_characters(obj: dict[str, object]) -> None:
    result = decode(obj)
    if isinstance(result, Command):
        assert result.type in CLIENT_MESSAGES
        for value in result.args.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    assert unsafe_char(item) is None


def test_server_messages_validate() -> None:
    assert validate_server(server_message("result", re=1, data=None)) is None
    assert validate_server(server_message("error", code="x", message="y")) is None
    assert validate_server({"v": 1, "type": "offer", "offer": {}}) == "offer: missing seq"
    assert validate_server({"v": 1, "type": "result", "surprise": 1}) == "result: undocumented field surprise"


def test_to_wire_handles_crm_types() -> None:
    from datetime import datetime
    from decimal import Decimal

    from crmstore.model import Flag, FlagMark

    mark = FlagMark(Flag.VIP, "<b>big</b>", datetime(2024, 1, 2, 3, 4), "crm")
    assert to_wire(mark) == {"flag": "vip", "reason": "<b>big</b>", "set_at": "2024-01-02T03:04:00", "set_by": "crm"}
    assert to_wire({"a": (Decimal("1.50"),)}) == {"a": ["1.50"]}


def test_every_client_message_has_a_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(CLIENT_MESSAGES)
    for kind, schema in schemas.items():
        assert schema["properties"]["type"] == {"const": kind}  # type: ignore[index]
        assert schema["additionalProperties"] is False


def test_protocol_doc_matches_the_code() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert schema_markdown() in doc, (
        "regenerate the reference part of docs/protocol.md from schema_markdown(): replace the text from its "
        "'<!-- generated by' line to '<!-- end of generated part -->' with the function's output")


def test_protocol_doc_explains_every_error_code() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    errors = doc[doc.index("## Errors"):doc.index("### Strings that reach")]
    missing = [str(code) for code in ErrorCode if f"`{code}`" not in errors]
    assert not missing, f"docs/protocol.md, section Errors: add {missing}"


def test_secret_fields_come_from_the_schema() -> None:
    assert SECRET_FIELDS == {"password", "token"}


def test_redact_takes_out_passwords_and_tokens() -> None:
    token = "eyJ1IjoiYWdlbnQxIiwiciI6ImFnZW50In0." + "x" * 43
    cases = [
        '{"v":1,"type":"auth","id":1,"username":"agent1","password":"s3cr3t-pass"}',
        '{"type":"auth","pass\\u0077ord":"s3cr3t-pass"}',  # an escaped key is still the password field
        json.dumps({"type": "auth_ok", "token": token, "user": {"username": "agent1"}}),
        json.dumps({"type": "resume", "token": token, "last_seq": 3}),
        '< TEXT \'{"type":"auth","password":"s3cr3t-pass\\"q"',  # cut text: no closing quote, escapes
        f"resumed with {token} from 10.0.0.7",
        json.dumps({"type": "search", "q": token}),  # a token pasted anywhere
    ]
    for text in cases:
        clean = redact(text)
        assert "s3cr3t" not in clean and "xxxxxxxxxx" not in clean and "***" in clean, (text, clean)
    assert redact('{"type":"search","q":"王"}') == '{"type":"search","q":"王"}'
    assert redact("plain words") == "plain words"


def test_redact_takes_any_depth_json_loads_takes() -> None:
    """A message nested hundreds of levels deep (json.loads takes it) is logged by its size, not a
    RecursionError out of the log filter, and a secret beside the nesting stays out (bench/fuzz.py)."""
    for depth in (900, 600, 300, 40):
        deep = "[" * depth + "]" * depth
        text = '{"type":"auth","pass\\u0077ord":"s3cr3t-pass","x":' + deep + "}"
        for t in (deep, text):
            clean = redact(t)
            assert "nested deeper than" in clean and "s3cr3t" not in clean, depth
    shallow = '{"type":"auth","password":"s3cr3t-pass","x":' + "[" * 20 + "]" * 20 + "}"
    assert "s3cr3t" not in redact(shallow) and '"x":[[[[' in redact(shallow)
