"""ABC (Pareto) grading: pure arithmetic over revenue figures, no database.

Rules (docs/crm.md "Grading rules"):
* Only customers with positive net revenue in the period share the total; zero or negative revenue
  (no purchases, or refunds >= purchases) is always C, and so is everyone when the total is zero.
* Customers are ranked by revenue, highest first. A customer's grade is decided by the cumulative share
  of everyone ranked *before* it: below 80% -> A, below 95% -> B, otherwise C. So the customer that
  crosses the 80% line is still A (the top customer is always A, even if it alone makes 99%).
* Ties: customers with equal revenue form one group and all get the grade of the group's first place,
  so the result never depends on the order rows come out of the database.
Integer cents and integer comparisons: no float rounding at the 80% / 95% edges.
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import Grade

A_LIMIT_PERCENT = 80
B_LIMIT_PERCENT = 95
_RANK = {Grade.A: 0, Grade.B: 1, Grade.C: 2}


def abc_grades(
    revenue_cents: Mapping[int, int], *, a_percent: int = A_LIMIT_PERCENT, b_percent: int = B_LIMIT_PERCENT
) -> dict[int, Grade]:
    """Grade every customer id in ``revenue_cents`` (customers absent from it are not graded here)."""
    grades = {cid: Grade.C for cid, cents in revenue_cents.items() if cents <= 0}
    ranked = sorted(((cents, cid) for cid, cents in revenue_cents.items() if cents > 0), key=lambda t: -t[0])
    total = sum(cents for cents, _ in ranked)
    before = 0
    i = 0
    while i < len(ranked):
        cents = ranked[i][0]
        j = i
        while j < len(ranked) and ranked[j][0] == cents:
            j += 1
        if before * 100 < a_percent * total:
            grade = Grade.A
        elif before * 100 < b_percent * total:
            grade = Grade.B
        else:
            grade = Grade.C
        for _, cid in ranked[i:j]:
            grades[cid] = grade
        before += cents * (j - i)
        i = j
    return grades


def is_fast_move(old: Grade | None, new: Grade) -> bool:
    """A jump of two levels in one grading run (A->C or C->A) is flagged for the supervisor."""
    return old is not None and abs(_RANK[old] - _RANK[new]) == 2


def is_drop(old: Grade | None, new: Grade) -> bool:
    return old is not None and _RANK[new] > _RANK[old]
