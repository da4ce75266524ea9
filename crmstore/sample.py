"""Deterministic sample data (seeded) for the demo, the tests and bench/crm_pop.py.

``generate(spec)`` streams row batches for the bulk loader (crmstore/bulk.py); ``ensure_callers`` makes
sure the numbers the PBX simulator dials from belong to customers, with a spread of VIP flags and grades.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .model import (
    COMPLAINT,
    CallFacts,
    Flag,
    FollowUpKind,
    FollowUpRequest,
    Grade,
    NewCustomer,
    Outcome,
    WrapUp,
)
from .privacy import SYSTEM
from .rows import search_key
from .store import CrmStore

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "晨",
    "浩",
    "宇",
    "欣怡",
    "子涵",
    "梓萱",
    "一诺",
]
FIRST = [
    "James",
    "Mary",
    "John",
    "Linda",
    "David",
    "Susan",
    "Michael",
    "Karen",
    "Daniel",
    "Emma",
    "Oliver",
    "Sophia",
    "Lucas",
    "Mia",
    "Henry",
    "Grace",
    "Jack",
    "Chloe",
    "Leo",
    "Ella",
]
LAST = [
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Walker",
    "Clark",
    "Lewis",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Hill",
    "Moore",
    "Wood",
    "Hughes",
    "Evans",
    "Turner",
]
COMPANIES = [
    "华为技术",
    "腾讯科技",
    "阿里巴巴",
    "小米通讯",
    "比亚迪",
    "京东物流",
    "美团",
    "中国平安",
    "招商银行",
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Ltd",
    "Stark Industries",
    "Wayne Enterprises",
    "",
]
QUEUES = ["sales", "support", "billing", "vip"]
DISPOSITIONS = ["resolved", "info", "sale", "escalated", "callback", "complaint", "wrong_number"]
TICKET_CATEGORIES = [COMPLAINT, "repair", "billing", "delivery"]
IVR_NODES = ["welcome", "language", "menu", "billing", "support", "sales", "queue"]

# Column order of every batch generate() yields, per table (the bulk loader inserts them as is).
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "name",
        "company",
        "name_key",
        "company_key",
        "email",
        "tags",
        "notes",
        "preferred_language",
        "contact_time",
        "contact_channel",
        "is_lead",
        "grade",
        "created_at",
        "updated_at",
    ),
    "phones": ("e164", "customer_id", "position"),
    "accounts": ("account", "customer_id"),
    "customer_flags": ("customer_id", "flag", "reason", "set_at", "set_by"),
    "purchases": ("customer_id", "amount_cents", "purchased_on", "ref"),
    "interactions": (
        "call_id",
        "customer_id",
        "direction",
        "outcome",
        "caller",
        "started_at",
        "answered_at",
        "ended_at",
        "queue",
        "agent",
        "wait_s",
        "talk_s",
        "hold_s",
        "wrapup_s",
        "disposition",
        "notes",
        "ivr_path",
        "recording_ref",
        "survey_score",
    ),
    "tickets": ("customer_id", "category", "subject", "status", "opened_at", "due_at", "closed_at"),
    "follow_ups": (
        "customer_id",
        "kind",
        "owner",
        "due_at",
        "status",
        "note",
        "source_call_id",
        "created_at",
    ),
}

SAMPLE_NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)  # fixed, so the same seed gives the same database


@dataclass(frozen=True, slots=True)
class SampleSpec:
    customers: int = 1000
    interactions: int = 10_000
    seed: int = 7
    now: datetime = SAMPLE_NOW
    batch: int = 50_000


def primary_phone(i: int) -> str:
    """Customer i's mobile: unique, +86 13x, never a number ensure_callers is likely to be given."""
    return f"+8613{i:09d}"


def account_of(i: int) -> str:
    return f"AC{i:08d}"


def person_name(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return rng.choice(SURNAMES) + rng.choice(GIVEN)
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def generate(spec: SampleSpec) -> Iterator[tuple[str, list[tuple[object, ...]]]]:
    """(table, rows) batches; customer ids are 1..spec.customers."""
    rng = random.Random(spec.seed)
    now = spec.now.timestamp()
    year = 365 * 86400
    n = spec.customers
    batch: list[tuple[object, ...]] = []
    phones: list[tuple[object, ...]] = []
    accounts: list[tuple[object, ...]] = []
    flags: list[tuple[object, ...]] = []
    for i in range(1, n + 1):
        name = person_name(rng)
        company = rng.choice(COMPANIES)
        created = now - rng.random() * 3 * year
        email = f"c{i}@example.com" if rng.random() < 0.6 else ""
        batch.append(
            (
                i,
                name,
                company,
                search_key(name),
                search_key(company),
                email,
                "",
                "",
                "zh" if ord(name[0]) > 127 else "en",
                "",
                "phone",
                0,
                None,
                created,
                created,
            )
        )
        phones.append((primary_phone(i), i, 0))
        if i % 3 == 0:
            phones.append((f"+86755{i:08d}", i, 1))
        accounts.append((account_of(i), i))
        r = rng.random()
        if r < 0.02:
            flags.append((i, Flag.VIP.value, "sample VIP", created, "sample"))
        elif r < 0.03:
            flags.append((i, Flag.KEY_ACCOUNT.value, "", created, "sample"))
        elif r < 0.035:
            flags.append((i, Flag.DIFFICULT.value, "shouts at agents", created, "sample"))
        elif r < 0.037:
            flags.append((i, Flag.BLACKLIST.value, "fraudulent chargebacks", created, "sample"))
        if len(batch) >= spec.batch:
            yield "customers", batch
            batch = []
    yield "customers", batch
    yield "phones", phones
    yield "accounts", accounts
    yield "customer_flags", flags
    del phones, accounts, flags

    today = spec.now.date()
    batch = []
    for i in range(1, n + 1):
        # Pareto-ish spend: a few big buyers, many small ones, some none.
        k = int(rng.paretovariate(1.5)) - 1 if rng.random() < 0.8 else 0
        for _ in range(min(k, 30)):
            on = today - timedelta(days=rng.randrange(720))
            batch.append((i, int(rng.paretovariate(1.2) * 5000), on.isoformat(), ""))
        if len(batch) >= spec.batch:
            yield "purchases", batch
            batch = []
    yield "purchases", batch

    batch = []
    agents = [f"{1000 + a}" for a in range(1, 41)]
    for c in range(spec.interactions):
        i = rng.randrange(1, n + 1) if n else 0
        started = now - rng.random() * year
        wait = rng.random() * 60
        r = rng.random()
        outcome = Outcome.ANSWERED if r < 0.85 else Outcome.ABANDONED if r < 0.95 else Outcome.IVR_ONLY
        answered = started + wait if outcome is Outcome.ANSWERED else None
        talk = rng.random() * 600 if answered else 0.0
        ended = (answered or started + wait) + talk
        batch.append(
            (
                f"s{spec.seed}-{c}",
                i or None,
                "inbound",
                outcome.value,
                primary_phone(i),
                started,
                answered,
                ended,
                rng.choice(QUEUES),
                rng.choice(agents) if answered else "",
                wait,
                talk,
                rng.random() * 30 if answered else 0.0,
                rng.random() * 45 if answered else 0.0,
                rng.choice(DISPOSITIONS) if answered else "",
                "",
                '["welcome", "menu"]',
                "",
                rng.randint(1, 5) if answered and rng.random() < 0.2 else None,
            )
        )
        if len(batch) >= spec.batch:
            yield "interactions", batch
            batch = []
    yield "interactions", batch

    tickets: list[tuple[object, ...]] = []
    follow_ups: list[tuple[object, ...]] = []
    for i in range(1, n + 1):
        if rng.random() < 0.05:
            opened = now - rng.random() * 60 * 86400
            status = "open" if rng.random() < 0.4 else "closed"
            tickets.append(
                (
                    i,
                    rng.choice(TICKET_CATEGORIES),
                    "sample ticket",
                    status,
                    opened,
                    opened + 3 * 86400,
                    None if status == "open" else opened + 86400,
                )
            )
        if rng.random() < 0.03:
            kind = rng.choice(list(FollowUpKind)).value
            follow_ups.append(
                (i, kind, rng.choice(agents), now + (rng.random() - 0.5) * 14 * 86400, "open", "", "", now)
            )
    yield "tickets", tickets
    yield "follow_ups", follow_ups


@dataclass(frozen=True, slots=True)
class CallerProfile:
    name: str
    company: str
    grade: Grade
    flags: tuple[Flag, ...]


def caller_profile(index: int, seed: int) -> CallerProfile:
    """A rotation that guarantees variety among even a handful of callers: VIP A, plain B, difficult C..."""
    rng = random.Random(seed * 1000 + index)
    rotation = [
        (Grade.A, (Flag.VIP,)),
        (Grade.B, ()),
        (Grade.C, ()),
        (Grade.A, (Flag.KEY_ACCOUNT,)),
        (Grade.C, (Flag.DIFFICULT,)),
        (Grade.B, (Flag.VIP,)),
        (Grade.C, (Flag.BLACKLIST,)),
    ]
    grade, flags = rotation[index % len(rotation)]
    return CallerProfile(person_name(rng), rng.choice(COMPANIES), grade, flags)


_REVENUE = {Grade.A: 500_000, Grade.B: 50_000, Grade.C: 500}  # yuan over the last year, by target grade
_FLAG_REASONS = {
    Flag.VIP: "board member",
    Flag.KEY_ACCOUNT: "framework contract",
    Flag.DIFFICULT: "disputes every bill",
    Flag.BLACKLIST: "abusive language, 3 warnings",
}


async def ensure_callers(
    store: CrmStore, phones: Sequence[str], *, seed: int = 7, now: datetime | None = None
) -> list[int]:
    """Make sure each number in ``phones`` belongs to a customer; returns their ids in the same order.

    Numbers that are already known are left as they are. New ones get a profile from a fixed rotation
    (VIP grade A, plain B, plain C, key account A, difficult C, VIP B, blacklisted C), purchases matching
    the grade, a few past calls, and for some an open complaint or a due call-back, so the demo's pops
    show every kind of next action. The grade is set directly (as a grading run would) and recorded in
    grade history; a later run_grading over the whole base may of course move it.
    """
    when = now or datetime.now(UTC)
    ids: list[int] = []
    for index, raw in enumerate(phones):
        e164 = store.phone(raw)
        known = await store.identify_by_phone(e164)
        if known is not None:
            ids.append(known.customer_id)
            continue
        prof = caller_profile(index, seed)
        cid = await store.create_customer(
            NewCustomer(
                name=prof.name,
                company=prof.company,
                phones=(e164,),
                accounts=(f"SIM{index:05d}",),
                notes="sample caller for the PBX simulator",
                preferred_language="zh",
            )
        )
        for flag in prof.flags:
            await store.set_flag(cid, flag, _FLAG_REASONS[flag])
        await store.add_purchase(cid, _REVENUE[prof.grade], (when - timedelta(days=30)).date(), ref="sample")
        await store.backend.write(_set_grade(cid, prof.grade, when.date()))
        for k in range(3):
            start = when - timedelta(days=7 * (k + 1))
            await store.save_wrapup(
                WrapUp(
                    CallFacts(
                        f"sim-{seed}-{index}-{k}",
                        e164,
                        start,
                        queue="support",
                        agent=f"{1001 + k}",
                        answered_at=start + timedelta(seconds=12),
                        ended_at=start + timedelta(minutes=4),
                        wait_s=12,
                        talk_s=228,
                        ivr_path=("welcome", "menu", "support"),
                        customer_id=cid,
                    ),
                    disposition="resolved",
                    notes="sample call",
                    wrapup_s=20,
                )
            )
        if index % 3 == 2:
            await store.open_ticket(cid, COMPLAINT, "delivery late", opened_at=when - timedelta(days=5))
        if index % 4 == 1:
            await store.add_follow_up(
                cid, FollowUpRequest(FollowUpKind.CALLBACK, when, "1001", "promised call-back")
            )
        ids.append(cid)
    return ids


def _set_grade(cid: int, grade: Grade, today: date):  # type: ignore[no-untyped-def]
    from .plan import Execute

    yield Execute("UPDATE customers SET grade = ? WHERE id = ?", (grade.value, cid))
    yield Execute(
        "INSERT INTO grade_history (customer_id, old_grade, new_grade, revenue_cents, period_start, period_end,"
        " changed_at, fast) VALUES (?, NULL, ?, 0, ?, ?, ?, 0)",
        (
            cid,
            grade.value,
            (today - timedelta(days=365)).isoformat(),
            today.isoformat(),
            datetime.now(UTC).timestamp() - 40 * 86400,
        ),
    )
    yield Execute(
        "INSERT INTO audit_log (at, actor, role, action, customer_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (datetime.now(UTC).timestamp(), SYSTEM.user, SYSTEM.role.value, "grade", cid, "sample grade"),
    )


def ivr_path_json(nodes: Sequence[str]) -> str:
    return json.dumps(list(nodes))
