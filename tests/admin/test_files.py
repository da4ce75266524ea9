"""A configuration file is replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.admin.changes import AdminRefused, read_document, set_account, write_document
from ctiserver.admin.files import replace_checked


def test_a_refused_check_leaves_the_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "queues.yaml"
    target.write_text("old: 1\n")
    seen: list[str] = []

    def refuse(tmp: Path) -> None:
        seen.append(tmp.read_text())
        raise AdminRefused("invalid_value", "no")

    with pytest.raises(AdminRefused):
        replace_checked(target, "new: 2\n", refuse)
    assert seen == ["new: 2\n"]  # the loader read the new text from disk, beside the target
    assert target.read_text() == "old: 1\n"
    assert list(tmp_path.iterdir()) == [target]
    assert replace_checked(target, "new: 2\n", lambda tmp: "ok") == "ok"
    assert target.read_text() == "new: 2\n" and list(tmp_path.iterdir()) == [target]


def test_the_leading_comments_are_kept_and_values_stay_strings() -> None:
    text = "# cti.yaml of the site\n# second line\naccounts:\n  - {username: a, role: agent, agent_id: '1001'}\n"
    data = read_document(text, "cti.yaml")
    assert set_account(data, "b", {"role": "supervisor", "password_hash": "scrypt$1$1$1$x$y", "extension": "2001"})
    out = write_document(data, text)
    assert out.startswith("# cti.yaml of the site\n# second line\naccounts:\n")
    again = read_document(out, "cti.yaml")
    assert again["accounts"][0]["agent_id"] == "1001" and again["accounts"][1]["extension"] == "2001"
