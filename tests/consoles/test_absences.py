"""The grace timer of console presence, on its own: times are passed in, nothing waits."""

from __future__ import annotations

from ctiserver.consoles.presence import Absences


def test_an_absence_is_due_once_after_the_grace() -> None:
    a = Absences(30.0)
    a.console_back("1001")
    a.console_gone("1001", 100.0)
    assert a.next_due() == 130.0
    assert a.due(129.9) == []
    assert a.due(130.0) == ["1001"]
    assert a.due(500.0) == [] and a.next_due() is None  # told once per absence
    assert "1001" not in a.connected


def test_a_console_back_within_the_grace_cancels_it() -> None:
    a = Absences(30.0)
    a.console_gone("1001", 100.0)
    a.console_gone("1002", 110.0)
    a.console_back("1001")
    assert a.next_due() == 140.0
    assert a.due(1000.0) == ["1002"]
    assert a.connected == {"1001"}


def test_the_grace_counts_from_the_last_close() -> None:
    a = Absences(30.0)
    a.console_gone("1001", 100.0)
    a.console_back("1001")
    a.console_gone("1001", 120.0)
    assert a.due(149.0) == [] and a.due(150.0) == ["1001"]
