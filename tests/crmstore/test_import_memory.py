"""An import's memory does not grow with its file: a million rows through the real `ctiserver crm import`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1_000_000
MiB = 1 << 20


def _import_peak_rss(path: Path, db: Path, out: Path) -> int:
    """Run the import in its own process; its peak resident memory in bytes (from the kernel, on exit)."""
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ctiserver.cli", "crm", "import", str(path), "--db", f"sqlite:///{db}"],
            cwd=ROOT, stdout=stdout, stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out.read_text()
    return usage.ru_maxrss * 1024  # Linux reports KiB


@pytest.mark.timeout(1200)
def test_a_million_row_import_runs_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as fh:  # Chinese text: 2-4 bytes per character once in memory
        fh.write("姓名,手机,邮箱,备注\n")
        for i in range(ROWS):
            phone = f"1380{i:07d}" if i % 10 == 0 else ""
            fh.write(f"客户{i},{phone},c{i}@example.com,第{i}号客户 从展会来的联系人\n")
    small = tmp_path / "small.csv"
    with big.open(encoding="utf-8") as src:
        small.write_text("".join(next(src) for _ in range(101)), encoding="utf-8")
    assert big.stat().st_size > 50 * MiB

    baseline = _import_peak_rss(small, tmp_path / "small.db", tmp_path / "small.out")
    peak = _import_peak_rss(big, tmp_path / "big.db", tmp_path / "big.out")
    assert peak - baseline < 100 * MiB, f"peak {peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
    assert f"{ROWS} rows: {ROWS} created, 0 merged, 0 rejected" in (tmp_path / "big.out").read_text()
