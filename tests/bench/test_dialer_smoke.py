"""bench/dialer.py --quick runs and prints its one JSON object with every key of the full run.

Not timed (speed and figures live in the bench's JSON); what is checked is the shape, that the simulator
fed the real pacer nothing it refused, and the one figure the pacer guarantees: the cap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATES = (15, 25, 40)
MODES = ("predictive", "progressive")


def test_quick_prints_the_keys() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "dialer.py"), "--quick"], capture_output=True,
                         text=True, timeout=240, check=True)
    (line,) = run.stdout.splitlines()  # ONE object
    printed = json.loads(line)
    for mode in MODES:
        for rate in RATES:
            for key in ("occupancy", "abandon_rate", "connects_per_agent_hour", "lines_per_connect"):
                assert 0 <= printed[f"{key}_{mode}_{rate}"], (key, mode, rate)
        assert printed[f"occupancy_{mode}"] == min(printed[f"occupancy_{mode}_{r}"] for r in RATES)
    for key in ("abandon_rate_max", "abandon_rate_max_1h", "abandon_cap", "agents", "answer_rates", "seeds",
                "simulated_hours", "wall_s", "quick", "events_ignored"):
        assert key in printed, key
    assert (printed["quick"], printed["seeds"], printed["simulated_hours"], printed["agents"]) == (True, [1], 8.0, 50)
    assert printed["events_ignored"] == 0
    assert printed["abandon_rate_max"] <= printed["abandon_cap"]
    assert printed["occupancy_predictive"] > printed["occupancy_progressive"]
    assert all(printed[f"abandon_rate_progressive_{r}"] == 0 for r in RATES)
