"""bench/fuzz.py keeps working: a few hundred inputs of every target through the bench's own code path.

Not timed (speed lives in the bench's JSON); what is checked is that the seeds are accepted, that no
input raises anything but the parser's own error, that the AMI parser gives the same frames for any
split, and that the JSON has its keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fuzz

INPUTS = 300


def test_every_seed_is_accepted() -> None:
    assert fuzz.check_seeds(list(fuzz.TARGETS)) == []


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_a_few_hundred_inputs_raise_nothing_unexpected(target: str, tmp_path: Path) -> None:
    result = fuzz.run_range(target, seed=7, start=0, stop=INPUTS, crashes=tmp_path)
    assert result.inputs == INPUTS
    assert (result.unexpected, result.split_mismatches) == (0, 0), result.examples
    assert result.accepted > 0 and result.refused > 0  # the mutations reach both sides
    assert not any(tmp_path.iterdir())


def test_an_input_is_the_same_whoever_generates_it() -> None:
    """Input i depends on (seed, target, i) only: a run is reproducible and --replay finds it again."""
    target = fuzz.TARGET_CLASSES["websocket"]()
    rng = fuzz.rng_for(3, "websocket", 0)
    first = [target.generate(rng) for _ in range(5)]
    assert fuzz.case_at(target, 3, 4) == first[4]


def test_the_json_has_the_keys_of_the_full_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = fuzz.main(["--inputs", "40", "--jobs", "1", "--seed", "5", "--crashes", str(tmp_path)])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(out))
    for key in ("unexpected_exceptions", "max_rss_growth_mb", "slowest_input_ms", "ami_split_mismatches", "seed",
                "quick", "inputs_per_target", "targets", "examples"):
        assert key in printed, key
    assert printed["inputs_per_target"] == {t: 40 for t in fuzz.TARGETS}
    for target in fuzz.TARGETS:
        assert {"inputs", "unexpected_exceptions", "slowest_input_ms"} <= printed["targets"][target].keys()
    assert (printed["unexpected_exceptions"], printed["ami_split_mismatches"], printed["seed"]) == (0, 0, 5)


def test_an_unexpected_exception_is_saved_with_its_input(tmp_path: Path) -> None:
    """The bench's own bookkeeping, on a target that fails on purpose."""

    class Broken(fuzz.Target):
        name = "broken"

        def generate(self, rng: object) -> fuzz.Case:
            return fuzz.Case(b"input")

        def check(self, case: fuzz.Case) -> bool:
            raise KeyError("boom")

    result = fuzz.run_range("broken", 1, 0, 3, tmp_path, Broken())
    assert (result.unexpected, len(result.examples)) == (3, 3)
    assert result.examples[0]["exception"] == "KeyError" and "boom" in result.examples[0]["message"]
    assert (tmp_path / "broken-0.bin").read_bytes() == b"input"
    assert json.loads((tmp_path / "broken-0.json").read_text())["exception"] == "KeyError"
