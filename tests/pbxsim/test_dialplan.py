"""extensions.conf parsing, patterns and expansion (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsim import dialplan as dp

ROOT = Path(__file__).resolve().parents[2]


def test_product_dialplan_loads_with_every_contract_context() -> None:
    plan = dp.load([ROOT / "asterisk-config" / "extensions.conf"])
    for ctx in ("from-pstn", "cti-fallback", "cti-operator", "cti-wait", "cti-agent-ready", "cti-agent-dial",
                "cti-autoanswer", "cti-hold", "cti-dial", "cti-outbound", "cti-voicemail", "cti-spy"):
        assert ctx in plan.contexts, ctx
    assert plan.find("from-pstn", "5551000") is not None
    assert plan.step("from-pstn", "5551000", 4).app == "AGI"  # type: ignore[union-attr]
    assert plan.label_priority("from-pstn", "5551000", "done") == 7
    assert plan.find("cti-hold", "caller") is not None and plan.find("cti-hold", "agent") is not None


def test_capture_dialplan_loads() -> None:
    plan = dp.load([ROOT / "pbxsim" / "dialplans" / "captures.conf"])
    assert plan.globals["AGISERVER"] == "agi://127.0.0.1:4573"
    assert plan.step("agi-fallback", "s", 3).data == "16"  # type: ignore[union-attr]


def test_patterns_are_case_insensitive_for_nxz() -> None:
    # README gotcha: "_agent." reads the n as [2-9] and never matches agent1.
    assert not dp.pattern_matches("_agent.", "agent1")
    assert dp.pattern_matches("_age[n]t.", "agent1")
    assert dp.pattern_matches("_age[n]t[12]", "agent2")
    assert not dp.pattern_matches("_age[n]t[12]", "agent3")
    assert dp.pattern_matches("_X.", "5551000")
    assert not dp.pattern_matches("_X.", "5")
    assert dp.pattern_matches("_NXX", "555") and not dp.pattern_matches("_NXX", "155")


def test_exact_beats_pattern_and_specific_beats_general() -> None:
    plan = dp.parse("[c]\nexten => _X.,1,NoOp(any)\nexten => _55X.,1,NoOp(55)\nexten => 5551,1,NoOp(exact)\n")
    assert plan.find("c", "5551").name == "5551"  # type: ignore[union-attr]
    assert plan.find("c", "5559").name == "_55X."  # type: ignore[union-attr]
    assert plan.find("c", "1234").name == "_X."  # type: ignore[union-attr]


def test_expansion_and_expressions() -> None:
    values = {"A": "1", "NAME": "agent1", "CALLERID(num)": "5551234"}

    def r(expr: str) -> str | None:
        return values.get(expr)

    assert dp.expand("${NAME}@agents", r) == "agent1@agents"
    assert dp.expand("${NAME:0:5}", r) == "agent"
    assert dp.expand("$[${A} + 2]", r) == "3"
    assert dp.expand('$["${A}" = "1"]', r) == "1"
    assert dp.expand('$["${MISSING}" = "1"]', r) == "0"
    assert dp.expand("num=${CALLERID(num)}", r) == "num=5551234"


@pytest.mark.parametrize("bad", ["exten => 1,1", "[c]\nexten => 1,x,NoOp()", "[c]\nsame => n,NoOp()",
                                 "[c]\nexten => 1,1,NoOp(\n", "stray line"])
def test_bad_lines_name_file_and_line(bad: str) -> None:
    with pytest.raises(dp.DialplanError) as err:
        dp.parse(bad, "x.conf")
    assert err.value.path == "x.conf" and err.value.line >= 1


@given(st.text(alphabet="0123456789", min_size=2, max_size=12))
def test_x_dot_matches_every_number_of_two_digits_or_more(num: str) -> None:
    assert dp.pattern_matches("_X.", num)


def test_product_dialplan_is_found_from_the_checkout_or_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pbxsim.simulator import CONFIG_ENV, product_dialplan

    assert product_dialplan() == ROOT / "asterisk-config" / "extensions.conf"
    (tmp_path / "extensions.conf").write_text("[from-pstn]\nexten => _X.,1,Hangup()\n")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path))
    assert product_dialplan() == tmp_path / "extensions.conf"
