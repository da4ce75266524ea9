"""The reader of Asterisk's configuration dialect that test_conf_keywords.py relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.asterisk_config.ini import ConfError, parse_file, parse_text


def test_templates_and_inheritance_copy_entries_first():
    sections = parse_text(
        "[agent](!)\ntype = endpoint\ncontext = a\n"
        "[media](!)\ndisallow = all\n"
        "[1001](agent,media)\ncontext = b\n")
    agent, media, ext = sections
    assert agent.template and media.template and not ext.template
    assert ext.bases == ("agent", "media")
    assert [(e.key, e.value) for e in ext.entries] == [
        ("type", "endpoint"), ("context", "a"), ("disallow", "all"), ("context", "b")]
    assert ext.get("context") == "b" and ext.values("context") == ["a", "b"]
    # an inherited entry keeps the line it was written on
    assert ext.entries[0].line == 2 and ext.entries[-1].line == 7


def test_template_flag_and_bases_combine_and_names_repeat():
    sections = parse_text("[base](!)\ntype = aor\n[t2](!,base)\nmax_contacts = 1\n[x](t2)\n[x]\ntype = auth\n")
    assert [(s.name, s.template, s.get("type")) for s in sections] == [
        ("base", True, "aor"), ("t2", True, "aor"), ("x", False, "aor"), ("x", False, "auth")]


def test_plus_adds_to_the_earlier_section():
    sections = parse_text("[a]\nx = 1\n[b]\ny = 2\n[a](+)\nz = 3\n")
    assert [(s.name, [e.key for e in s.entries]) for s in sections] == [("a", ["x", "z"]), ("b", ["y"])]


def test_arrow_and_equals_split_at_the_first_equals_sign():
    (ctx,) = parse_text('[c]\nexten => _X.,1,NoOp()\n same => n,GotoIf($["${A}" = "1"]?done)\nV = a=b\n')
    assert [(e.key, e.value, e.is_object) for e in ctx.entries] == [
        ("exten", "_X.,1,NoOp()", True), ("same", 'n,GotoIf($["${A}" = "1"]?done)', True), ("V", "a=b", False)]


def test_comments_escapes_and_block_comments():
    text = ("; a comment\n[s] ; after a header\n"
            "a = 1 ; trailing\n"
            "b = x\\;y\n"
            ";-- block\nc = 2\n--;\n"
            ";------------ a rule, not a block\n"
            "d = 3 ;-- inline block --; \n")
    (s,) = parse_text(text)
    assert [(e.key, e.value) for e in s.entries] == [("a", "1"), ("b", "x;y"), ("d", "3")]


def test_include_reads_beside_the_file_and_continues_the_section(tmp_path: Path):
    (tmp_path / "extra.conf").write_text("b = 2\n[t]\nc = 3\n")
    (tmp_path / "main.conf").write_text('[s]\na = 1\n#include "extra.conf"\nd = 4\n#tryinclude none.conf\n')
    s, t = parse_file(tmp_path / "main.conf")
    assert [e.key for e in s.entries] == ["a", "b"] and [e.key for e in t.entries] == ["c", "d"]
    assert (t.entries[0].file, t.entries[0].line) == ("extra.conf", 3)


@pytest.mark.parametrize(("text", "message"), [
    ("a = 1\n", "x.conf:1: 'a = 1' comes before any [section]"),
    ("[s]\nnovalue\n", "x.conf:2: no '=' in 'novalue'"),
    ("[s](missing)\n", "x.conf:1: [s] inherits from [missing], which is not defined earlier"),
    ("[s](+)\n", "x.conf:1: [s](+) adds to a section that is not defined earlier"),
    ("[s] (!)\n", "x.conf:1: Asterisk would ignore '(!)' after [s]"),
    ("[s\n", "x.conf:1: no closing ']'"),
    ("[s]\n#include none.conf\n", "x.conf:2: #include none.conf: no such file beside x.conf"),
    ("[s]\n#exec /bin/true\n", "x.conf:2: #exec needs execincludes=yes"),
    ("[s]\n;-- open\n", "x.conf: a ;-- block comment is never closed"),
])
def test_what_asterisk_would_drop_or_refuse_is_one_clear_error(tmp_path: Path, text: str, message: str):
    with pytest.raises(ConfError) as err:
        parse_text(text, "x.conf", tmp_path)
    assert str(err.value).startswith(message)
