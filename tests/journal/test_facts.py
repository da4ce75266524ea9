"""The journal's codec: every fact kind round-trips; a kind or a field this version does not know is a
refusal (a journal written by a newer ctiserver), damaged text is a corruption, never a silent misread."""

from __future__ import annotations

import dataclasses
import json

import hypothesis.strategies as st
import pytest
from hypothesis import given

from ctiserver.journal import facts as f


def _value(field: dataclasses.Field[object]) -> st.SearchStrategy[object]:
    t = str(field.type)
    if "tuple" in t:
        return st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3).map(tuple)) if "None" in t \
            else st.lists(st.text(max_size=5), max_size=3).map(tuple)
    if t.startswith("bool"):
        return st.booleans()
    if "int" in t and "float" not in t:
        return st.one_of(st.none(), st.integers(-10**6, 10**6)) if "None" in t else st.integers(-10**6, 10**6)
    if "float" in t:
        finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
        return st.one_of(st.none(), finite) if "None" in t else finite
    text = st.text(max_size=20)
    return st.one_of(st.none(), text) if "None" in t else text


@st.composite
def bodies(draw: st.DrawFn) -> object:
    cls = draw(st.sampled_from(sorted(f.KINDS.values(), key=lambda c: c.__name__)))
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in ("hung_up_by",):
            values[field.name] = draw(st.sampled_from(["caller", "agent", "unknown"]))
        elif field.name == "reason" and cls.__name__ == "OfferFailed":
            values[field.name] = draw(st.sampled_from(["no-answer", "busy", "failed", "cancelled"]))
        else:
            values[field.name] = draw(_value(field))
    return cls(**values)


@given(bodies())
def test_every_fact_kind_round_trips(body: object) -> None:
    kind, text = f.encode(body)
    assert f.decode(kind, text) == body


def test_every_acd_input_is_a_fact_kind() -> None:
    from acd import events as acd

    inputs = {c for c in vars(acd).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
              and c.__module__ == acd.__name__ and c is not acd.Tick}
    # A site's availability is not a fact of its own: the projector derives it from pbx.link.
    derived = {acd.SiteAvailable, acd.SiteUnavailable}
    assert inputs - derived == set(f.ACD_KINDS.values())


def test_a_kind_from_a_newer_version_is_refused() -> None:
    with pytest.raises(f.JournalTooNew, match="'call.teleported' is unknown"):
        f.decode("call.teleported", "{}")
    kind, text = f.encode(f.CallArrived("c1", "pbx1", "PJSIP/x", "1", "A", "5551000"))
    newer = json.dumps({**json.loads(text), "video": True})
    with pytest.raises(f.JournalTooNew, match="'video'"):
        f.decode(kind, newer)


def test_damaged_text_is_corruption() -> None:
    kind, text = f.encode(f.SurveyAnswered("c1", 4))
    for bad in (text[:-3], "[1, 2]", '{"call_id": "c1"}'):
        with pytest.raises(f.JournalCorrupt):
            f.decode(kind, bad)


def test_a_fact_written_before_a_field_was_added_reads_with_its_default() -> None:
    """Journals outlive versions: a call queued by a version without per-call skills reads as needing none,
    and a call end written before `reason` existed as an ordinary one."""
    from acd import events as acd

    queued = f.decode("acd.call_enqueued", '{"call_id":"c1","queue":"sales","priority":3}')
    assert queued == acd.CallEnqueued("c1", "sales", 3) and queued.skills == ()
    ended = f.decode("call.ended", '{"call_id":"c1","cause":16,"cause_txt":"Normal Clearing","hung_up_by":"caller"}')
    assert ended == f.CallEnded("c1", 16, "Normal Clearing", "caller") and ended.observed and ended.reason == ""
