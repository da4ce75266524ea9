"""Import (CSV/JSON, UTF-8/BOM/GBK, wrong columns, duplicates, malformed phones) and export round trips."""

from __future__ import annotations

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
    open_store,
)
from crmstore.import_export import export, import_file

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
    assert card.notes == "old\nnew note" and card.phones == ("+8613800000001", "+8613900000000")
    again = await import_file(store, p)  # the same file twice doubles nothing
    assert (again.created, again.merged) == (0, 3)
    assert (await store.counts())["customers"] == 3
    assert (await store.get_customer(existing, ADMIN)).notes == "old\nnew note"


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
