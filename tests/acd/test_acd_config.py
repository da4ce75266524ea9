"""Queue configuration: typed objects from YAML, and every mistake reported with file, line, queue, field."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path

import pytest

from acd.config import TimeoutActionSpec, load_config, parse_config
from acd.errors import AcdConfigError, ConfigIssue

EXAMPLE = Path(__file__).resolve().parents[2] / "acd" / "examples" / "queues.yaml"

GOOD = """\
skills: [billing, korean, english]
pause_reasons: [break, lunch]
queues:
  - name: billing
    skills: {billing: 4, korean: 3}
    escalation:
      - after_s: 30
        min_levels: {billing: 2}
      - after_s: 60
        also_offer_to: general
  - name: general
    skills: {english: 1}
agents:
  - {id: "1", skills: {billing: 2, korean: 3}, queues: [billing]}
  - {id: "2", skills: {english: 1}, queues: [general]}
"""


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(AcdConfigError) as info:
        parse_config(textwrap.dedent(text), source="queues.yaml")
    return list(info.value.issues)


def test_example_file_loads_into_typed_objects() -> None:
    cfg = load_config(EXAMPLE)
    billing = cfg.queue("billing")
    assert billing.policy == "longest_idle"
    assert dict(billing.skills) == {"billing": 4, "korean": 3}
    assert billing.service_level.percent == 80 and billing.service_level.within_s == 20
    assert billing.escalation[2].action == TimeoutActionSpec("callback")
    assert cfg.queue("sales").on_max_wait == TimeoutActionSpec("queue", "general")
    assert cfg.agent("1003").endpoint == "PJSIP/1003"
    assert cfg.agent("1002").endpoint is None
    assert [dict(s) for s in billing.level_stages()] == [{"billing": 4, "korean": 3}, {"billing": 2, "korean": 3}]
    with pytest.raises(AttributeError):
        billing.name = "x"  # type: ignore[misc]


def test_good_config_loads() -> None:
    cfg = parse_config(GOOD)
    assert cfg.queue("billing").escalation[1].also_offer_to == ("general",)
    assert cfg.pause_reasons == ("break", "lunch")


def test_unknown_skill_names_file_line_queue_and_field() -> None:
    issue, = issues_of(GOOD.replace("{billing: 4, korean: 3}", "{billing: 4, corean: 3}"))
    assert (issue.file, issue.line, issue.queue, issue.field) == ("queues.yaml", 5, "billing", "skills.corean")
    assert "unknown skill 'corean'" in issue.message
    assert str(issue).startswith("queues.yaml:5: queue 'billing' field 'skills.corean'")


def test_level_out_of_range() -> None:
    found = issues_of(GOOD.replace("billing: 4, korean", "billing: 11, korean")
                      .replace('{billing: 2, korean: 3}, queues', '{billing: 0, korean: 3}, queues'))
    assert [(i.line, i.field) for i in found] == [(5, "skills.billing"), (14, "agents[1].skills.billing")]
    assert all("between 1 and 10" in i.message for i in found)


def test_escalation_steps_must_increase_in_time() -> None:
    issue, = issues_of(GOOD.replace("after_s: 60", "after_s: 30"))
    assert (issue.line, issue.queue, issue.field) == (9, "billing", "escalation[1].after_s")
    assert "increase in time" in issue.message


def test_overflow_cycle_is_refused() -> None:
    text = GOOD.replace("    skills: {english: 1}\n", "    skills: {english: 1}\n    on_max_wait: queue:billing\n"
                        "    max_wait_s: 100\n")
    issue, = issues_of(text)
    assert "loop" in issue.message and "billing -> general -> billing" in issue.message
    assert issue.field == "escalation"


def test_queue_nobody_can_serve() -> None:
    issue, = issues_of(GOOD.replace("{billing: 2, korean: 3}, queues", "{billing: 1, korean: 3}, queues"))
    assert (issue.line, issue.queue, issue.field) == (4, "billing", "skills")
    assert "no configured agent can ever serve" in issue.message


def test_bad_policy_name() -> None:
    issue, = issues_of(GOOD.replace("    skills: {english: 1}\n", "    skills: {english: 1}\n    policy: random\n"))
    assert (issue.line, issue.queue, issue.field) == (13, "general", "policy")
    assert "longest_idle" in issue.message


def test_all_errors_are_listed_together() -> None:
    bad = """\
    skills: [billing]
    pause_reasons: [break]
    queues:
      - name: billing
        skills: {billing: 3}
        policy: fastest
        ring_timeout_s: -1
        escalation:
          - {after_s: 10, action: voicemail}
          - {after_s: 20, also_offer_to: nowhere}
        color: blue
    agents:
      - {id: "1", skills: {billing: 3, piano: 5}, queues: [billing, nowhere]}
    """
    found = issues_of(bad)
    fields = [i.field for i in found]
    assert fields == ["policy", "ring_timeout_s", "escalation[0].action", "escalation[1].also_offer_to",
                      "color", "agents[1].skills.piano", "agents[1].queues"]
    assert [i.line for i in found] == [6, 7, 9, 10, 11, 13, 13]
    with pytest.raises(AcdConfigError, match="7 problem"):
        parse_config(textwrap.dedent(bad))


@pytest.mark.parametrize(("text", "field", "needle"), [
    ("skills: [a]\nqueues: []\nagents: []\n", "pause_reasons", "is required"),
    ("[1, 2]", "", "expected a mapping"),
    ("skills: [a\n", "<document>", "not valid YAML"),
    ("", "<document>", "empty"),
])
def test_document_level_errors(text: str, field: str, needle: str) -> None:
    found = issues_of(text)
    assert any(i.field == field and needle in i.message for i in found), found


def test_action_must_be_last_and_before_max_wait() -> None:
    text = GOOD.replace("      - after_s: 30\n        min_levels: {billing: 2}\n",
                        "      - after_s: 30\n        min_levels: {billing: 2}\n        action: voicemail\n")
    text = text.replace("    escalation:\n", "    max_wait_s: 45\n    escalation:\n")
    found = issues_of(text)
    assert [(i.field, i.line) for i in found] == [("escalation[0].action", 10), ("escalation[1].after_s", 11)]
    assert "last escalation step" in found[0].message and "never reached" in found[1].message


# ---- the file itself: size, encoding, nesting, length of overflow chains


def test_missing_file_is_an_issue_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(AcdConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_binary_file_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "queues.yaml"
    p.write_bytes(b"skills: [a]\npause_reasons: []\n" + bytes(range(128, 256)))
    with pytest.raises(AcdConfigError) as info:
        load_config(p)
    (issue,) = info.value.issues
    assert (issue.file, issue.line) == (str(p), 3) and "not UTF-8" in issue.message


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "queues.yaml"
    with p.open("wb") as fh:  # sparse: 50 MB of size, no disk, and nothing worth reading
        fh.truncate(50_000_000)
    with pytest.raises(AcdConfigError, match="larger than 2000000 bytes"):
        load_config(p)


@pytest.mark.parametrize("loader", ["libyaml", "python"])
def test_deep_nesting_is_a_clear_error(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from acd import config

    if loader == "python":  # what runs where PyYAML was built without libyaml
        monkeypatch.setattr(config, "_LOADER", config._BoundedSafeLoader)
    text = "skills: " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(AcdConfigError) as info:
        parse_config(text, source="queues.yaml")
    (issue,) = info.value.issues
    assert issue.line == 1 and "nest" in issue.message


def test_long_overflow_chain_is_checked_without_recursion() -> None:
    n = 3000  # a loop through 3000 queues: far deeper than Python's recursion limit
    queues = "\n".join(
        f"  - {{name: q{i}, skills: {{s: 1}}, on_max_wait: 'queue:q{(i + 1) % n}'}}" for i in range(n)
    )
    members = ", ".join(f"q{i}" for i in range(n))
    text = f"skills: [s]\npause_reasons: [break]\nqueues:\n{queues}\nagents:\n  - {{id: '1', skills: {{s: 5}}, queues: [{members}]}}\n"
    with pytest.raises(AcdConfigError) as info:
        parse_config(text, source="queues.yaml")
    (issue,) = info.value.issues
    assert issue.field == "escalation" and "forms a loop: q0 -> q1" in issue.message and "more" in issue.message


# ---------------------------------------------------------------------------- agents' devices

DEVICES = GOOD.replace('  - {id: "2", skills: {english: 1}, queues: [general]}\n', "")


def test_an_agents_device_is_a_dial_string_and_endpoint_is_its_older_name() -> None:
    cfg = parse_config(DEVICES + "".join(f'  - {{id: "{n}", skills: {{english: 1}}, queues: [general], {entry}}}\n'
                                         for n, entry in (("2", "device: IAX2/office/1002"),
                                                          ("3", "endpoint: PJSIP/1003, auto_answer: true"),
                                                          ("4", 'device: "PJSIP/13800138000@trunk"'),
                                                          ("5", "device: Local/1005@agent-phones"),
                                                          ("6", "device: PJSIP/1006, auto_answer: true, answer: console"))))
    assert cfg.agent("2").device == cfg.agent("2").endpoint == "IAX2/office/1002"
    assert (cfg.agent("3").device, cfg.agent("3").auto_answer) == ("PJSIP/1003", True)
    assert cfg.agent("4").device == "PJSIP/13800138000@trunk"
    # A Local pair must not be optimized away under the agent leg the CTI follows.
    assert cfg.agent("5").device == "Local/1005@agent-phones/n"
    assert (cfg.agent("1").device, cfg.agent("1").auto_answer) == (None, None)  # the site's template
    assert (cfg.agent("6").answer, cfg.agent("3").answer) == ("console", "phone")  # the console's Answer button


@pytest.mark.parametrize(("entry", "field", "message"), [
    ('device: "PJSIP/1002&PJSIP/1003"', "device", "not a dial string"),  # Dial would ring both
    ('device: "PJSIP/1002,30"', "device", "without commas"),
    ('device: "Local/1002@agent-phones;2"', "device", "not a dial string"),
    ('device: "PJSIP/${EXTEN}"', "device", "braces"),
    ("device: 1002", "device", "not a dial string"),
    ('device: "PJSIP/{extension}"', "device", "cti.yaml's agents.device"),
    ("device: PJSIP/1002, endpoint: PJSIP/1002", "endpoint", "not both"),
    ('device: "PJSIP/13800138000@trunk", auto_answer: true', "auto_answer", "PJSIP/<endpoint>"),
    ("auto_answer: sometimes", "auto_answer", "true or false"),
    ("device: PJSIP/1002, answer: console", "answer", "needs auto_answer: true"),
    ("device: PJSIP/1002, auto_answer: true, answer: later", "answer", "phone or console"),
])
def test_a_bad_device_is_a_line_of_the_file(entry: str, field: str, message: str) -> None:
    found = issues_of(DEVICES + f'  - {{id: "2", skills: {{english: 1}}, queues: [general], {entry}}}\n')
    assert [(i.line, i.field) for i in found] == [(15, f"agents[2].{field}")], found
    assert message in found[0].message


@pytest.mark.parametrize(
    ("value", "read"),
    [("0x1E", 30.0), ("1_000", 1000.0), ("0b11", 3.0), ("1:30", 90.0), ("2.5", 2.5), ("0", 0.0), ("-0", 0.0),
     ("030.5", 30.5)],
)
def test_numbers_are_read_as_yaml_writes_them(value: str, read: float) -> None:
    """Hex, octal, binary, base 60 and underscores are YAML 1.1 numbers (yaml.safe_load reads them so)."""
    cfg = parse_config(GOOD.replace("    skills: {english: 1}", f"    skills: {{english: 1}}\n    wrap_up_s: {value}"))
    assert cfg.queue("general").wrap_up_s == read


@pytest.mark.parametrize(
    ("line", "field", "needle"),
    [
        ("wrap_up_s: .inf", "wrap_up_s", "expected a finite number, got .inf"),
        ("wrap_up_s: -.Inf", "wrap_up_s", "expected a finite number"),
        ("wrap_up_s: .nan", "wrap_up_s", "expected a finite number, got .nan"),
        ("ring_timeout_s: !!float abc", "ring_timeout_s", "expected a finite number, got abc"),
        ("max_wait_s: !!int ''", "max_wait_s", "expected a finite number"),
        ("max_wait_s: !!float '-'", "max_wait_s", "expected a finite number"),
        ("wrap_up_s: 190:20:30", None, None),  # base 60: 685,230 s, a number like any other
        ("default_handle_s: " + "9" * 5000, "default_handle_s", "expected a finite number, got '9999"),
        ("priority: {vip: !!int x}", "priority.vip", "expected a whole number, got x"),
        ("priority: {vip: 1:2:3}", None, None),
        ("wrap_up_s: 030", "wrap_up_s", "030 starts with 0, which YAML reads as an octal number (24)"),
        ("priority: {vip: 010}", "priority.vip", "010 starts with 0, which YAML reads as an octal number (8)"),
        ("priority: {vip: " + "9" * 5000 + "}", "priority.vip", "expected a whole number, got '9999"),
        ("priority: {vip: !!int '-'}", "priority.vip", "expected a whole number, got -"),
        ('priority: {vip: !!int "1\\n2"}', "priority.vip", "expected a whole number, got '1\\n2'"),
    ],
)
def test_numbers_yaml_cannot_make_a_value_of_are_issues(line: str, field: str | None, needle: str | None) -> None:
    """.inf, .nan, tagged text and numbers of thousands of digits: an issue naming the line, never a
    ValueError out of the loader (found by bench/fuzz.py)."""
    text = GOOD.replace("    skills: {english: 1}", f"    skills: {{english: 1}}\n    {line}")
    if field is None:
        parse_config(text)
        return
    found = issues_of(text)
    assert [(i.line, i.field) for i in found] == [(13, field)], found
    assert needle in found[0].message and "\n" not in str(found[0]), found[0]


def test_a_skill_key_that_is_a_list_is_an_issue() -> None:
    """`? [a]` as a key under skills: reported once, not a TypeError (unhashable list) (bench/fuzz.py)."""
    text = GOOD.replace("skills: {billing: 4, korean: 3}", "skills: {billing: 4, [korean]: 3}")
    found = issues_of(text)
    assert [(i.line, i.field, i.queue) for i in found] == [(5, "skills", "billing")], found
    assert found[0].message == "keys must be plain names"


def test_a_small_file_is_read_without_a_buffer_the_size_of_the_limit(tmp_path: Path) -> None:
    """read(MAX_FILE_BYTES + 1) allocated 2 MB on every load, and the heap grew with the reloads
    (bench/fuzz.py, max_rss_growth_mb): pieces of 64 kB instead."""
    path = tmp_path / "queues.yaml"
    path.write_text(GOOD)
    tracemalloc.start()
    try:
        load_config(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
