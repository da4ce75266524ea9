"""Asterisk's configuration dialect, read the way main/config.c reads it, strictly enough to catch what
makes Asterisk drop a line or refuse a whole file.

* `[name]` starts a section; `[name](!)` a template; `[name](a,b)` copies the entries of the earlier
  sections `a` and `b` first; `[name](+)` adds to the earlier section of that name. Options combine:
  `[name](!,a)`. A base that is not defined earlier is an error (Asterisk refuses the file).
* `key = value` and `key => value` (the second marks an "object" line, as in the dialplan); the split is at
  the first `=`, so `same => n,GotoIf($[... = ...])` keeps its `=` in the value.
* `;` starts a comment, `\\;` is a literal semicolon, `;--` ... `--;` is a block comment (`;---` is not).
* `#include file` / `#include "file"` (relative to the including file's folder; a missing file is an error),
  `#tryinclude` (a missing file is skipped). `#exec` is refused: it needs `execincludes` in asterisk.conf.
* A line with no `=` or before any section is an error (Asterisk warns and drops it, or refuses the file).

Pure over text, apart from `#include`, which reads the named file beside the one being parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ConfError(Exception):
    """One clear line: `file:line: what is wrong`."""


@dataclass(slots=True, frozen=True)
class Entry:
    key: str
    value: str
    is_object: bool  # written with `=>`
    file: str
    line: int


@dataclass(slots=True)
class Section:
    name: str
    file: str
    line: int
    template: bool = False
    bases: tuple[str, ...] = ()
    # inherited entries first (Asterisk copies the bases' variables in before the section's own), then own
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        """The value that takes effect for a single-valued option: the last one."""
        found = None
        for e in self.entries:
            if e.key == key:
                found = e.value
        return found

    def values(self, key: str) -> list[str]:
        return [e.value for e in self.entries if e.key == key]


Reader = Callable[[Path], str]


def parse_file(path: Path, read: Reader | None = None) -> list[Section]:
    reader = read or (lambda p: p.read_text(encoding="utf-8"))
    state = _State(reader)
    state.feed(reader(path), path)
    return state.sections


def parse_text(text: str, name: str = "<text>", folder: Path | None = None) -> list[Section]:
    """Parse text as if it were the file `name` in `folder` (where its #include files are looked up)."""
    state = _State(lambda p: p.read_text(encoding="utf-8"))
    state.feed(text, (folder or Path(".")) / name)
    return state.sections


class _State:
    def __init__(self, read: Reader) -> None:
        self.read = read
        self.sections: list[Section] = []
        self.current: Section | None = None
        self.depth = 0

    def feed(self, text: str, path: Path) -> None:
        if self.depth > 10:
            raise ConfError(f"{path}: #include nested too deep")
        self.depth += 1
        block = 0  # nesting level of ;-- --; comments
        for number, raw in enumerate(text.splitlines(), start=1):
            line, block = _strip_comments(raw, block)
            line = line.strip()
            if not line:
                continue
            where = f"{path.name}:{number}"
            if line.startswith("#"):
                self._directive(line, path, where)
            elif line.startswith("["):
                self._section(line, path.name, number, where)
            else:
                self._entry(line, path.name, number, where)
        if block:
            raise ConfError(f"{path.name}: a ;-- block comment is never closed")
        self.depth -= 1

    def _directive(self, line: str, path: Path, where: str) -> None:
        word, _, arg = line[1:].partition(" ")
        arg = arg.strip().strip('"<>')
        if word == "exec":
            raise ConfError(f"{where}: #exec needs execincludes=yes in asterisk.conf; ship plain files")
        if word not in ("include", "tryinclude") or not arg:
            raise ConfError(f"{where}: unknown directive {line!r}")
        target = path.parent / arg
        try:
            text = self.read(target)
        except FileNotFoundError:
            if word == "tryinclude":
                return
            raise ConfError(f"{where}: #include {arg}: no such file beside {path.name}") from None
        self.feed(text, target)

    def _section(self, line: str, file: str, number: int, where: str) -> None:
        close = line.find("]")
        if close < 0:
            raise ConfError(f"{where}: no closing ']' in {line!r}")
        name = line[1:close].strip()
        if not name:
            raise ConfError(f"{where}: empty section name")
        rest = line[close + 1:]
        options: list[str] = []
        if rest:
            # Asterisk reads options only from a '(' right after the ']' and silently ignores anything else
            if not (rest.startswith("(") and rest.endswith(")")):
                raise ConfError(f"{where}: Asterisk would ignore {rest.strip()!r} after [{name}]")
            options = [o.strip() for o in rest[1:-1].split(",") if o.strip()]
        if "+" in options:
            earlier = [s for s in self.sections if s.name == name]
            if not earlier:
                raise ConfError(f"{where}: [{name}](+) adds to a section that is not defined earlier")
            self.current = earlier[-1]
            return
        section = Section(name, file, number, template="!" in options,
                          bases=tuple(o for o in options if o != "!"))
        for base in section.bases:
            found = [s for s in self.sections if s.name == base]
            if not found:
                raise ConfError(f"{where}: [{name}] inherits from [{base}], which is not defined earlier")
            # Asterisk takes the first section of that name (category_get_sep)
            section.entries.extend(found[0].entries)
        self.sections.append(section)
        self.current = section

    def _entry(self, line: str, file: str, number: int, where: str) -> None:
        if self.current is None:
            raise ConfError(f"{where}: {line!r} comes before any [section]")
        eq = line.find("=")
        if eq < 0:
            raise ConfError(f"{where}: no '=' in {line!r}")
        key = line[:eq].strip()
        is_object = line[eq + 1:eq + 2] == ">"
        value = line[eq + (2 if is_object else 1):].strip()
        if not key:
            raise ConfError(f"{where}: no keyword before '=' in {line!r}")
        self.current.entries.append(Entry(key, value, is_object, file, number))


def _strip_comments(raw: str, block: int) -> tuple[str, int]:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if block:
            if raw.startswith("--;", i):
                block -= 1
                i += 3
            elif raw.startswith(";--", i) and not raw.startswith(";---", i):
                block += 1
                i += 3
            else:
                i += 1
            continue
        ch = raw[i]
        if ch == "\\" and raw.startswith(";", i + 1):
            out.append(";")
            i += 2
        elif raw.startswith(";--", i) and not raw.startswith(";---", i):
            block += 1  # ";---" is an ordinary comment (a rule of dashes), as in config.c
            i += 3
        elif ch == ";":
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out), block
