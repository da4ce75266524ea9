"""Customer files for import, read one row at a time with bounded memory (CSV and JSON).

Memory holds one piece of the file (64 KiB), one CSV record or one JSON customer entry, never the file:
an import of millions of rows runs in the same memory as one of ten. Every limit below is a security
limit with its own clear error, checked while reading, so a wrong file (a disk image, a log) is refused
early instead of filling memory.

Encodings: UTF-8 (with or without BOM), UTF-16 with BOM, otherwise GB18030 (a superset of GBK, what
Chinese Excel writes). Without a BOM the encoding can only be known after the whole file decodes, so
``open_source`` reads the file once through (decoding and parsing, storing nothing) before any row is
imported: a file with a broken byte at line 900,000 is refused before row 1 is written.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ImportFormatError

MAX_FILE_BYTES = 1 << 30  # 1 GiB; import_file(max_bytes=...) and `crm import --max-size` raise it
MAX_LINE_CHARS = 1 << 20  # one physical CSV line
MAX_RECORD_CHARS = 4 << 20  # one CSV record (quoted fields may span lines)
MAX_ENTRY_CHARS = 16 << 20  # one JSON customer entry with all its history
READ_BYTES = 1 << 16

# Headers seen in exports of Chinese CRMs and in hand-made sheets.
ALIASES = {
    "姓名": "name",
    "客户名称": "name",
    "名称": "name",
    "公司": "company",
    "单位": "company",
    "邮箱": "email",
    "电子邮件": "email",
    "电话": "phones",
    "手机": "phones",
    "手机号": "phones",
    "联系电话": "phones",
    "账号": "accounts",
    "账户": "accounts",
    "客户编号": "accounts",
    "标签": "tags",
    "备注": "notes",
    "语言": "preferred_language",
    "联系时间": "contact_time",
    "联系方式": "contact_channel",
    "等级": "grade",
    "phone": "phones",
    "mobile": "phones",
    "telephone": "phones",
    "account": "accounts",
    "account_number": "accounts",
    "tag": "tags",
    "language": "preferred_language",
    "时区": "timezone",
    "time_zone": "timezone",
    "tz": "timezone",
}
REQUIRED = ("name",)
# Cells our CSV export prefixes with a quote so a spreadsheet shows them as text, not as a formula
# (OWASP "CSV injection"); the reader takes exactly that quote off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Row = tuple[int, dict[str, Any], int]  # data row number (1-based), fields, size in characters


@dataclass(frozen=True, slots=True)
class Source:
    """A customer file that decoded and parsed from end to end."""

    path: Path
    kind: str  # "csv" | "json"
    encoding: str  # Python codec name
    reported_encoding: str  # as shown in the import report ("gbk" for GB18030)
    max_bytes: int
    required: tuple[str, ...] = REQUIRED  # columns a CSV header must have


class _Undecodable(Exception):
    def __init__(self, offset: int, line: int) -> None:
        super().__init__(offset, line)
        self.offset = offset
        self.line = line


def source_kind(path: Path) -> str:
    """csv or json, by the file's extension; ImportFormatError otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise ImportFormatError(f"{path}: unknown file type {suffix!r} (use .csv or .json)")


def open_source(
    path: Path, columns: tuple[str, ...], max_bytes: int = MAX_FILE_BYTES, required: tuple[str, ...] = REQUIRED
) -> Source:
    """Check type, size, encoding and structure of the file; ImportFormatError when it is unusable."""
    kind = source_kind(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise ImportFormatError(f"{path}: {_mib(size)} is larger than the import limit of {_mib(max_bytes)}")
    if head.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", "utf-8-sig")]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", "utf-16")]
    else:
        candidates = [("utf-8", "utf-8"), ("gb18030", "gbk")]
    where = ""
    for codec, reported in candidates:
        source = Source(path, kind, codec, reported, max_bytes, required)
        try:
            for _ in _rows(source, columns):
                pass
        except _Undecodable as exc:
            where = f"byte {exc.offset}, line {exc.line}"
            continue
        return source
    names = " or ".join("GBK" if r == "gbk" else r.upper() for _, r in candidates)
    raise ImportFormatError(f"{path}: cannot decode the file as {names} ({where}); save it as UTF-8")


def rows(source: Source, columns: tuple[str, ...]) -> Iterator[Row]:
    """The file's data rows. A row that cannot be read has ``{"__error__": reason}`` as its fields."""
    try:
        yield from _rows(source, columns)
    except _Undecodable as exc:  # the file changed since open_source read it
        raise ImportFormatError(
            f"{source.path}: cannot decode byte {exc.offset} (line {exc.line}) as {source.reported_encoding}"
        ) from None


def _rows(source: Source, columns: tuple[str, ...]) -> Iterator[Row]:
    try:
        with source.path.open("rb") as fh:
            chunks = _decoded(fh, source)
            if source.kind == "csv":
                yield from _csv_rows(chunks, source.path, columns, source.required)
            else:
                yield from _json_rows(chunks, source.path, columns)
    except OSError as exc:
        raise ImportFormatError(f"{source.path}: cannot read: {exc.strerror or exc}") from None


def _mib(n: int) -> str:
    return f"{n} bytes" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def _decoded(fh: BinaryIO, source: Source) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(source.encoding)("strict")
    offset = lines = 0
    while True:
        data = fh.read(READ_BYTES)
        final = not data
        offset += len(data)
        if offset > source.max_bytes:  # the file grew, or is a pipe or a device
            raise ImportFormatError(f"{source.path}: larger than the import limit of {_mib(source.max_bytes)}")
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            start = max(0, min(exc.start, len(data)))
            raise _Undecodable(offset - len(data) + start, lines + data.count(b"\n", 0, start) + 1) from None
        lines += data.count(b"\n")
        if text:
            yield text
        if final:
            return


# ------------------------------------------------------------------------------------------------ CSV


def column_of(header: str) -> str:
    key = header.strip().lstrip("\ufeff")
    return ALIASES.get(key, ALIASES.get(key.lower(), key.lower().replace(" ", "_")))


def unquote_cell(value: str) -> str:
    """Undo the export's formula guard: "'=1+1" → "=1+1", "''x" → "'x"; any other cell unchanged."""
    if value[:1] == "'" and value[1:2] and (value[1] in FORMULA_START or value[1] == "'"):
        return value[1:]
    return value


def guard_cell(value: str) -> str:
    """The export's formula guard (OWASP): a cell a spreadsheet would evaluate starts with a quote."""
    if value[:1] in FORMULA_START or value[:1] == "'":
        return "'" + value
    return value


class _Lines:
    """Physical lines for csv.reader, each and every record bounded in length."""

    def __init__(self, chunks: Iterator[str], path: Path) -> None:
        self.chunks = chunks
        self.path = path
        self.record_chars = 0  # since the reader last took a record
        self.line = 0  # physical lines handed out

    def __iter__(self) -> Iterator[str]:
        pending: list[str] = []
        pending_chars = 0
        for chunk in self.chunks:
            start = 0
            while (end := chunk.find("\n", start)) >= 0:
                piece = chunk[start : end + 1]
                if pending:
                    pending.append(piece)
                    piece = "".join(pending)
                    pending.clear()
                    pending_chars = 0
                yield self._checked(piece)
                start = end + 1
            if start < len(chunk):
                pending.append(chunk[start:])
                pending_chars += len(chunk) - start
                if pending_chars > MAX_LINE_CHARS:
                    self._checked("".join(pending))
        if pending:
            yield self._checked("".join(pending))

    def _checked(self, line: str) -> str:
        self.line += 1
        if len(line) > MAX_LINE_CHARS:
            raise ImportFormatError(f"{self.path}: line {self.line} is longer than {MAX_LINE_CHARS} characters")
        self.record_chars += len(line)
        if self.record_chars > MAX_RECORD_CHARS:
            raise ImportFormatError(
                f"{self.path}: the record ending at line {self.line} is longer than {MAX_RECORD_CHARS} characters"
                " (an unclosed quote?)"
            )
        return line


def _csv_rows(
    chunks: Iterator[str], path: Path, columns: tuple[str, ...], required: tuple[str, ...] = REQUIRED
) -> Iterator[Row]:
    lines = _Lines(chunks, path)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFormatError(f"{path}: the header row cannot be read: {exc}") from None
    if header is None:
        raise ImportFormatError(f"{path}: the CSV file is empty (no header row)")
    cols = [column_of(h) for h in header]
    unknown = [h for h, c in zip(header, cols) if c not in columns]
    missing = [c for c in required if c not in cols]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unknown column(s) " + ", ".join(_short(u) for u in unknown[:20]))
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        raise ImportFormatError(f"{path}: " + "; ".join(parts) + ". Accepted columns: " + ", ".join(columns))
    dup = sorted({c for c in cols if cols.count(c) > 1 and c != "phones"})
    if dup:
        raise ImportFormatError(f"{path}: column(s) given twice: " + ", ".join(dup))
    n = 0
    while True:
        lines.record_chars = 0
        n += 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot tell where this record ends (typically a quote never closed), so it cannot
            # tell which rows follow: refuse the file rather than lose rows without a word.
            raise ImportFormatError(
                f"{path}: row {n} (line {reader.line_num}) cannot be read as CSV: {exc} (an unclosed quote?)"
            ) from None
        size = lines.record_chars
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(cols):
            yield n, {"__error__": f"{len(values)} fields, the header has {len(cols)}"}, size
            continue
        row: dict[str, Any] = {}
        for c, v in zip(cols, values):
            v = unquote_cell(v)
            # Several phone columns (手机, 电话) are merged into one list.
            row[c] = f"{row[c]};{v}" if c in row and v.strip() else row.get(c) or v
        yield n, row, size


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


# ----------------------------------------------------------------------------------------------- JSON

_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"
HISTORY_FIELDS = frozenset({"purchases", "interactions", "tickets", "follow_ups"})


class _JsonStream:
    """A pull parser for the outer structure of a JSON document; each value inside it is decoded whole
    by the json module. Only the text not yet consumed is kept."""

    def __init__(self, chunks: Iterator[str], path: Path) -> None:
        self.chunks = chunks
        self.path = path
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at the start of buf
        self.eof = False

    def _more(self) -> bool:
        """Append the next piece (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return False
        if self.pos:
            self.line += self.buf.count("\n", 0, self.pos)
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk
        return True

    def error(self, message: str, at: int | None = None) -> ImportFormatError:
        line = self.line + self.buf.count("\n", 0, self.pos if at is None else at)
        return ImportFormatError(f"{self.path}: not valid JSON at line {line}: {message}")

    def peek(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def take(self, expected: str) -> None:
        got = self.peek()
        if got != expected:
            raise self.error(f"expected {expected!r}, found {got or 'the end of the file'!r}")
        self.pos += 1

    def value(self, limit: int) -> tuple[Any, int]:
        """The next JSON value, decoded, and its length in characters."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > limit:
                    raise self._too_long(limit, exc) from None
                if self._more_for(len(self.buf) - self.pos):
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except RecursionError:  # the json module recurses once per level of nesting
                raise self.error("lists or objects nested too deeply") from None
            except ValueError:  # int() refuses a number of more than sys.get_int_max_str_digits() digits
                raise self.error(f"a number has more than {sys.get_int_max_str_digits()} digits") from None
            # A number cut between two pieces ("1" + "2.5e3") decodes as its first part: decode again
            # with more text whenever a number ends near the end of what has been read.
            if (
                isinstance(obj, (int, float))
                and len(self.buf) - end < 64
                and self._more_for(len(self.buf) - self.pos)
            ):
                continue
            size = end - self.pos
            if size > limit:
                raise self._too_long(limit, None)
            self.pos = end
            return obj, size

    def _more_for(self, have: int) -> bool:
        """Read until the value being decoded has at least doubled (so retries stay linear)."""
        grown = False
        while len(self.buf) - self.pos < 2 * have + READ_BYTES and self._more():
            grown = True
        return grown

    def _too_long(self, limit: int, exc: json.JSONDecodeError | None) -> ImportFormatError:
        if exc is not None and exc.pos < len(self.buf) - 1 and not exc.msg.startswith("Unterminated"):
            return self.error(exc.msg, exc.pos)
        return self.error(f"an entry is longer than {limit} characters")


def _json_rows(chunks: Iterator[str], path: Path, columns: tuple[str, ...]) -> Iterator[Row]:
    s = _JsonStream(chunks, path)
    first = s.peek()
    found = False
    if first == "[":
        found = True
        yield from _json_items(s, columns)
    elif first == "{":
        s.take("{")
        if s.peek() != "}":
            while True:
                key, _ = s.value(MAX_LINE_CHARS)
                if not isinstance(key, str):
                    raise s.error("expected a field name")
                s.take(":")
                if key == "customers" and s.peek() == "[":
                    found = True
                    yield from _json_items(s, columns)
                else:
                    s.value(MAX_ENTRY_CHARS)  # format, version, anything else: not ours to read
                if s.peek() != ",":
                    break
                s.take(",")
        s.take("}")
    elif first:
        s.value(MAX_ENTRY_CHARS)  # raises the json module's own message for garbage
    if not found:
        raise ImportFormatError(f'{path}: JSON must be a list of customers or {{"customers": [...]}}')
    if s.peek():
        raise s.error("more data after the end of the document")


def _json_items(s: _JsonStream, columns: tuple[str, ...]) -> Iterator[Row]:
    s.take("[")
    if s.peek() == "]":
        s.take("]")
        return
    allowed = set(columns) | HISTORY_FIELDS | {"flags", "id"}
    n = 0
    while True:
        item, size = s.value(MAX_ENTRY_CHARS)
        n += 1
        if not isinstance(item, dict):
            yield n, {"__error__": "not a JSON object"}, size
        elif unknown := sorted(set(item) - allowed):
            yield n, {"__error__": "unknown field(s) " + ", ".join(_short(u) for u in unknown[:20])}, size
        else:
            yield n, item, size
        if s.peek() != ",":
            break
        s.take(",")
    s.take("]")

