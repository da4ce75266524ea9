"""Reading import files piece by piece: what comes out must not depend on where the pieces are cut."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pytest

from crmstore import ImportFormatError, import_source
from crmstore.import_export import CSV_COLUMNS
from crmstore.import_source import guard_cell, open_source, rows, unquote_cell

CUSTOMERS: list[dict[str, Any]] = [
    {"name": "张伟", "phones": ["+8613800000001"], "notes": "多行\n备注 \"引号\"", "is_lead": True, "grade": ""},
    {"name": "Li", "purchases": [{"amount": "12345.67", "date": "2025-01-02", "ref": "o1"}], "id": 12345678},
    {"name": "", "phones": ["13900000000"], "tags": ["a", "b"], "flags": [], "company": None},
]


def _read(path: Path) -> list[tuple[int, dict[str, Any]]]:
    source = open_source(path, CSV_COLUMNS)
    return [(n, row) for n, row, _ in rows(source, CSV_COLUMNS)]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 16])
def test_json_is_the_same_whatever_the_piece_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    monkeypatch.setattr(import_source, "READ_BYTES", piece)
    expected = [(i + 1, c) for i, c in enumerate(CUSTOMERS)]
    docs = {
        "list.json": json.dumps(CUSTOMERS, ensure_ascii=False, indent=1),
        "export.json": '{"format": "ctiserver-crm", "version": 1, "customers": [\n'
        + ",\n".join(json.dumps(c, ensure_ascii=False) for c in CUSTOMERS)
        + "\n]}\n",
        "keys.json": json.dumps({"a": {"b": [1, 2, {"c": "}]"}]}, "customers": CUSTOMERS, "z": 1.5e3}),
    }
    for name, text in docs.items():
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        assert _read(p) == expected, name


@pytest.mark.parametrize("piece", [1, 5, 1 << 16])
@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("gb18030", b""),
                                              ("utf-16-le", codecs.BOM_UTF16_LE)])
def test_csv_is_the_same_whatever_the_piece_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int, encoding: str, bom: bytes
) -> None:
    monkeypatch.setattr(import_source, "READ_BYTES", piece)
    text = '姓名,手机,电话,备注\r\n张伟,13800000001,010-12345678,"两行\r\n备注"\r\n\r\n李娜,,,\r\n'
    p = tmp_path / "c.csv"
    p.write_bytes(bom + text.encode(encoding))
    assert _read(p) == [
        (1, {"name": "张伟", "phones": "13800000001;010-12345678", "notes": "两行\r\n备注"}),
        (3, {"name": "李娜", "phones": "", "notes": ""}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "JSON must be a list"),
        ("{}", "JSON must be a list"),
        ('{"customers": 3}', "JSON must be a list"),
        ("[1, 2", "not valid JSON at line 1: expected ']', found 'the end of the file'"),
        ('[{"name": "a"}] [', "more data after the end"),
        ('[\n{"name": "a"},\n{"name": }\n]', "not valid JSON at line 3: Expecting value"),
        ("name,phones\nx,1\n", "not valid JSON at line 1: Expecting value"),
    ],
)
def test_broken_json_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "x.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ImportFormatError, match=message):
        _read(p)


def test_json_entries_that_are_not_customers_are_rows_with_a_reason(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(json.dumps([{"name": "ok"}, "nope", {"name": "x", "colour": "red"}]), encoding="utf-8")
    assert _read(p) == [
        (1, {"name": "ok"}),
        (2, {"__error__": "not a JSON object"}),
        (3, {"__error__": "unknown field(s) 'colour'"}),
    ]


def test_an_unclosed_quote_refuses_the_file_instead_of_losing_rows(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text('name,notes\na,b\nc,"never closed\n' + "d,line\n" * 100_000, encoding="utf-8")
    with pytest.raises(ImportFormatError, match=r"row 2 \(line \d+\) cannot be read as CSV: .*unclosed quote"):
        _read(p)


@pytest.mark.parametrize("value", ["=1+1", "+8613800138000", "-2", "@SUM(A1)", "\tx", "\rx", "'", "''=x", "'a", "plain", ""])
def test_cell_guard_round_trip(value: str) -> None:
    guarded = guard_cell(value)
    assert guarded[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert unquote_cell(guarded) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"name": "a"},\n{"name": "b", "x": ' + "9" * 5000 + "}]", r"line 2: a number has more than 4300 digits"),
        ('{"customers": [{"name": "a"}], "z": ' + "1" * 4301 + "}", r"line 1: a number has more than 4300 digits"),
        ('[{"name": "a"},\n\n{"notes": ' + "[" * 100_000 + "]" * 100_000 + "}]",
         r"line 3: lists or objects nested too deeply"),
    ],
)
def test_json_the_json_module_cannot_hold_is_a_format_error(tmp_path: Path, text: str, message: str) -> None:
    """A ValueError or RecursionError out of json's decoder was not an ImportFormatError (bench/fuzz.py)."""
    p = tmp_path / "c.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ImportFormatError, match=message):
        open_source(p, CSV_COLUMNS)
