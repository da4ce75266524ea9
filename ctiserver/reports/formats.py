"""A report as a text table, CSV, an Excel workbook (XlsxWriter) or JSON."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path
from typing import Any

from .engine import Report, labelled

FORMATS = ("table", "csv", "xlsx", "json")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _width(text: str) -> int:
    """Columns on a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _title(report: Report, lang: str) -> str:
    q = report.query
    title = report.title_zh if lang == "zh" else report.title_en
    return f"{title}  {q.first:%Y-%m-%d %H:%M} – {q.stop:%Y-%m-%d %H:%M} ({q.first.tzname()})"


def as_table(report: Report, lang: str = "en") -> str:
    heads, rows = labelled(report, lang)
    cells = [heads, *[[_text(v) for v in row] for row in rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(heads))]
    lines = [_title(report, lang), ""]
    for n, row in enumerate(cells):
        lines.append("  ".join(v + " " * (widths[i] - _width(v)) for i, v in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(no figures in this period)" if lang != "zh" else "（该时段无数据）")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines) + "\n"


def as_csv(report: Report, lang: str = "en") -> str:
    heads, rows = labelled(report, lang)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(heads)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    for n in report.notes:
        writer.writerow([f"# {n}"])
    return out.getvalue()


def as_json(report: Report, lang: str = "en") -> str:
    heads, rows = labelled(report, lang)
    q = report.query
    return json.dumps({
        "report": report.name, "title": report.title_zh if lang == "zh" else report.title_en,
        "from": q.first.isoformat(), "to": q.stop.isoformat(), "interval": q.grouping,
        "columns": [{"key": c.key, "label": h, "unit": c.unit} for c, h in zip(report.columns, heads, strict=True)],
        "rows": [dict(zip([c.key for c in report.columns], row, strict=True)) for row in rows],
        "notes": report.notes,
    }, ensure_ascii=False, indent=1)


def write_xlsx(report: Report, path: Path, lang: str = "en") -> None:
    import xlsxwriter

    heads, rows = labelled(report, lang)
    book = xlsxwriter.Workbook(str(path))
    try:
        sheet = book.add_worksheet(report.name[:31])
        bold = book.add_format({"bold": True})
        sheet.write(0, 0, _title(report, lang), bold)
        for i, head in enumerate(heads):
            sheet.write(2, i, head, bold)
            sheet.set_column(i, i, max(10, _width(head) + 2))
        for r, row in enumerate(rows, 3):
            for i, value in enumerate(row):
                if value is None:
                    sheet.write_blank(r, i, None)
                elif isinstance(value, (int, float)):
                    sheet.write_number(r, i, value)
                else:
                    sheet.write_string(r, i, str(value))  # never a formula, whatever the text
        for n, note in enumerate(report.notes, len(rows) + 4):
            sheet.write_string(n, 0, f"note: {note}")
        sheet.freeze_panes(3, 0)
    finally:
        book.close()


def render(report: Report, fmt: str, lang: str = "en") -> str:
    if fmt == "table":
        return as_table(report, lang)
    if fmt == "csv":
        return as_csv(report, lang)
    if fmt == "json":
        return as_json(report, lang)
    raise ValueError(f"{fmt} is written to a file")
