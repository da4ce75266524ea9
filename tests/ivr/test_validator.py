"""`ctiserver flows check` errors: every kind, each with file, line and column."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from acd.config import load_config
from ivr_flows.errors import FlowError
from ivr_flows.validator import FlowCatalog, check_files

EXAMPLES = Path(__file__).parents[2] / "ivr_flows" / "examples"
DEMO = Path(__file__).parents[2] / "ctiserver" / "demo"
PROMPTS = Path(__file__).parents[2] / "asterisk-config" / "prompts.tsv"

HEAD = "flow: t\nstart: a\nnodes:\n"


def check(tmp_path: Path, text: str, catalog: FlowCatalog | None = None) -> list[FlowError]:
    p = tmp_path / "f.yaml"
    p.write_text(text, encoding="utf-8")
    errors = check_files([p], catalog)
    assert all(e.file == str(p) for e in errors)
    return errors


def only(errors: list[FlowError]) -> tuple[str, int, int]:
    assert len(errors) == 1, [str(e) for e in errors]
    e = errors[0]
    return e.kind, e.line, e.column


def test_good_flow_has_no_errors(tmp_path: Path) -> None:
    assert check(tmp_path, HEAD + "  a: {type: hangup}\n") == []


def test_broken_yaml(tmp_path: Path) -> None:
    errors = check(tmp_path, HEAD + "  a: {type: hangup\n  b: [\n")
    assert errors and errors[0].kind == "yaml" and errors[0].line >= 4
    assert str(errors[0]).startswith(str(tmp_path / "f.yaml") + ":")


def test_unknown_node_type(tmp_path: Path) -> None:
    assert only(check(tmp_path, HEAD + "  a: {type: dance}\n")) == ("unknown-node-type", 4, 13)


def test_missing_target(tmp_path: Path) -> None:
    errors = check(tmp_path, HEAD + "  a:\n    type: play\n    prompts: beep\n    next: nowhere\n")
    assert only(errors) == ("missing-target", 7, 11)
    assert "'nowhere'" in errors[0].message


def test_unreachable(tmp_path: Path) -> None:
    assert only(check(tmp_path, HEAD + "  a: {type: hangup}\n  b: {type: hangup}\n")) == ("unreachable", 5, 6)


def test_loop_with_no_exit(tmp_path: Path) -> None:
    text = HEAD + "  a: {type: play, prompts: beep, next: b}\n  b: {type: play, prompts: beep, next: a}\n"
    assert only(check(tmp_path, text)) == ("loop", 4, 6)


def test_busy_loop_without_waiting(tmp_path: Path) -> None:
    text = HEAD + (
        "  a: {type: goto, target: b}\n"
        "  b:\n    type: branch\n    cases: [{when: {var: x, eq: '1'}, next: c}]\n    default: a\n"
        "  c: {type: hangup}\n"
    )
    errors = check(tmp_path, text.replace("nodes:\n", "variables: {x: ''}\nnodes:\n"))
    assert only(errors) == ("loop", 5, 6)
    assert "spin" in errors[0].message


def test_menu_loop_with_exit_is_fine(tmp_path: Path) -> None:
    text = HEAD + (
        "  a:\n    type: menu\n    prompts: beep\n    on_fail: z\n"
        "    options: [{key: '1', next: a}, {key: '2', next: z}]\n  z: {type: hangup}\n"
    )
    assert check(tmp_path, text) == []


def test_missing_prompt_file(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    (sounds / "custom").mkdir(parents=True)
    (sounds / "custom" / "welcome.wav").write_bytes(b"RIFF")
    text = HEAD + "  a: {type: play, prompts: [custom/welcome, custom/gone], next: b}\n  b: {type: hangup}\n"
    assert only(check(tmp_path, text, FlowCatalog(prompt_dirs=(sounds,)))) == ("prompt", 4, 28)


def test_unsafe_prompt_name(tmp_path: Path) -> None:
    text = HEAD + "  a: {type: hangup, prompt: '../../etc/passwd'}\n"
    assert only(check(tmp_path, text)) == ("prompt", 4, 29)


def test_unknown_queue_and_skill(tmp_path: Path) -> None:
    text = HEAD + "  a:\n    type: queue\n    queue: salse\n    skills: [english, klingon]\n"
    errors = check(tmp_path, text, FlowCatalog(queues=frozenset({"sales", "general"}),
                                               skills=frozenset({"english"})))
    assert sorted((e.kind, e.line, e.column) for e in errors) == [("queue", 6, 12), ("skill", 7, 13)]


def test_undefined_variable(tmp_path: Path) -> None:
    text = HEAD + "  a: {type: say, say: digits, value: '{acount}', next: b}\n  b: {type: hangup}\n"
    errors = check(tmp_path, text)
    assert only(errors) == ("variable", 4, 38)
    assert "'acount'" in errors[0].message


def test_field_errors_have_positions(tmp_path: Path) -> None:
    text = HEAD + "  a:\n    type: collect\n    var: acct\n    prompt: beep\n    min: 9\n    max: 40\n" \
                  "    next: b\n    on_fail: b\n  b: {type: hangup}\n"
    assert only(check(tmp_path, text)) == ("invalid", 9, 10)
    text2 = HEAD + "  a: {type: hangup, promt: beep}\n"
    assert only(check(tmp_path, text2)) == ("invalid", 4, 21)


def test_every_error_of_a_file_is_reported(tmp_path: Path) -> None:
    text = HEAD + "  a: {type: play, prompts: beep, next: nope}\n  b: {type: dance}\n  c: {type: hangup}\n"
    kinds = sorted(e.kind for e in check(tmp_path, text))
    assert kinds == ["missing-target", "unknown-node-type"]
    text = HEAD + "  a: {type: play, prompts: beep, next: nope}\n  c: {type: hangup}\n  d: {type: hangup}\n"
    kinds = sorted(e.kind for e in check(tmp_path, text))
    assert kinds == ["missing-target", "unreachable", "unreachable"]


@pytest.mark.parametrize("flow", [EXAMPLES / "customer_service_en.yaml", EXAMPLES / "customer_service_zh.yaml",
                                  EXAMPLES / "satisfaction_survey_en.yaml",
                                  EXAMPLES / "speech_menu_ko.yaml", DEMO / "flows" / "main.yaml"],
                         ids=lambda p: p.name)
def test_examples_run_on_the_shipped_queues_and_prompts(flow: Path) -> None:
    # As shipped: the demo queues file's queues and skills, the prompts asterisk-config/prompts.tsv makes.
    acd = load_config(DEMO / "queues.yaml")
    shipped = [line.split("\t")[1] for line in PROMPTS.read_text(encoding="utf-8").splitlines()
               if line and not line.startswith("#")]
    listed = (EXAMPLES / "prompts.txt").read_text(encoding="utf-8").split()
    assert set(listed) <= set(shipped)  # the examples' own list names nothing the install step does not make
    catalog = FlowCatalog(prompt_names=frozenset(shipped), queues=frozenset(q.name for q in acd.queues),
                          skills=frozenset(acd.skills))
    assert check_files([flow], catalog) == []


# ---- the file itself: size, encoding, nesting


def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path: Path) -> None:
    deep = 100_000
    errors = check(tmp_path, HEAD + "  a: " + "[" * deep + "]" * deep + "\n")
    kind, line, _ = only(errors)
    assert (kind, line) == ("yaml", 4) and "nested deeper than 64 levels" in errors[0].message


def test_conditions_nest_up_to_the_limit(tmp_path: Path) -> None:
    def flow(depth: int) -> str:
        condition = "{var: x, set: true}"
        for _ in range(depth):
            condition = "{not: " + condition + "}"
        return (HEAD + "  a: {type: branch, cases: [{when: " + condition + ", next: b}], default: b}\n"
                "  b: {type: hangup}\nvariables: {x: ''}\n")

    assert check(tmp_path, flow(25)) == []
    kind, _, _ = only(check(tmp_path, flow(200)))
    assert kind == "yaml"


def test_binary_file_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    p.write_bytes(HEAD.encode() + bytes(range(128, 256)))
    errors = check_files([p])
    assert [(e.kind, e.line) for e in errors] == [("yaml", 4)] and "not UTF-8" in errors[0].message


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    with p.open("wb") as fh:  # sparse: 50 MB of size and no disk
        fh.truncate(50_000_000)
    errors = check_files([p])
    assert [(e.kind, e.line) for e in errors] == [("io", 1)] and "larger than 2000000 bytes" in errors[0].message


# ---- YAML aliases: shared nodes are walked once per use (found by bench/fuzz.py)

CASE_FLOW = HEAD + "  a: {type: branch, cases: [{when: WHEN, next: b}], default: b}\n  b: {type: hangup}\n"


def test_an_alias_inside_the_node_it_names_is_one_error(tmp_path: Path) -> None:
    for when in ("&r {not: *r}", "&r {all: [{var: x, set: true}, *r]}"):
        errors = check(tmp_path, CASE_FLOW.replace("WHEN", when))
        kind, line, _ = only(errors)
        assert (kind, line) == ("yaml", 4) and "alias *r is inside the node it names" in errors[0].message


def test_aliases_that_expand_without_end_are_one_error(tmp_path: Path) -> None:
    # Each level names the one below twice: 2^16 conditions from 17 short lines.
    levels = ["comment:", "  - &c0 {var: x, set: true}"]
    levels += [f"  - &c{i} {{all: [*c{i - 1}, *c{i - 1}]}}" for i in range(1, 17)]
    text = "\n".join(levels) + "\nvariables: {x: ''}\n" + CASE_FLOW.replace("WHEN", "*c16")
    errors = check(tmp_path, text)
    kind, line, _ = only(errors)
    assert kind == "yaml" and 3 <= line <= 18 and "aliases expand to more than 10000 nodes" in errors[0].message


def test_aliases_count_toward_the_nesting_limit(tmp_path: Path) -> None:
    # Every anchor is 40 levels deep and ends in the previous one: 20 of them nest 800 levels.
    levels = ["comment:", "  - &c0 " + "{not: " * 40 + "{var: x, set: true}" + "}" * 40]
    levels += [f"  - &c{i} " + "{not: " * 40 + f"*c{i - 1}" + "}" * 40 for i in range(1, 20)]
    text = "\n".join(levels) + "\nvariables: {x: ''}\n" + CASE_FLOW.replace("WHEN", "*c19")
    errors = check(tmp_path, text)
    kind, _, _ = only(errors)
    assert kind == "yaml" and "nested deeper than 64 levels through alias *c0" in errors[0].message


def test_a_shared_prompt_list_and_condition_still_load(tmp_path: Path) -> None:
    text = (HEAD + "  a: {type: play, prompts: &p [hello, beep], next: c}\n"
            "  c: {type: branch, cases: [{when: &w {var: x, set: true}, next: d}, {when: {not: *w}, next: d}],"
            " default: d}\n"
            "  d: {type: play, prompts: *p, next: e}\n  e: {type: hangup}\nvariables: {x: ''}\n")
    assert check(tmp_path, text) == []


def test_a_character_yaml_refuses_is_one_line_with_its_position(tmp_path: Path) -> None:
    # The reader's own message runs over two lines and has no mark (found by bench/fuzz.py).
    for text, where in ((HEAD + "  a: {type: ha\x17ngup}\n", (4, 15)),
                        ("flow: t\r\nstart: a\u2028nodes:\n  a: {type: hangup}\x00\n", (4, 20))):
        errors = check(tmp_path, text)
        kind, line, column = only(errors)
        assert (kind, line, column) == ("yaml", *where), str(errors[0])
        assert "\n" not in str(errors[0]) and "does not allow the character U+00" in errors[0].message


def test_an_hour_past_a_c_long_is_a_time_error(tmp_path: Path) -> None:
    text = HEAD + ("  a: {type: hangup}\ncalendars:\n  office:\n    timezone: Asia/Shanghai\n"
                   "    hours: {mon-fri: '99999999999999999999:00-18:00'}\n")
    kind, line, _ = only(check(tmp_path, text))
    assert (kind, line) == ("invalid", 8)


def test_a_small_file_is_read_without_a_buffer_the_size_of_the_limit(tmp_path: Path) -> None:
    """read(MAX_FILE_BYTES + 1) allocated 2 MB on every load, and the heap grew with the reloads
    (bench/fuzz.py, max_rss_growth_mb): pieces of 64 kB instead."""
    tracemalloc.start()
    try:
        assert check(tmp_path, HEAD + "  a: {type: hangup}\n") == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
