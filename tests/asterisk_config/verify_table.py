"""Check asterisk22_keywords.yaml against an Asterisk source tree (when moving to a new Asterisk release).

    python tests/asterisk_config/verify_table.py --src ~/src/asterisk
    python tests/asterisk_config/verify_table.py --git-dir asterisk.git --ref 22.10.1

pjsip.conf keywords must be a <configOption> of the <configObject> named like their kind; every other keyword
must appear as a C string literal ("name") in one of the file's `source` C files. Prints one line per keyword
that is not found, and exits 1 if there is any. Reads the tree only; nothing from it is kept.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

TABLE = Path(__file__).with_name("asterisk22_keywords.yaml")
CONFIG_OBJECT = re.compile(r'<configObject name="([^"]+)">(.*?)</configObject>', re.DOTALL)
CONFIG_OPTION = re.compile(r'<configOption name="([^"]+)"')


def config_objects(sources: list[str]) -> dict[str, set[str]]:
    """<configObject name> -> its <configOption> names, from the XML documentation in these sources."""
    objects: dict[str, set[str]] = {}
    for text in sources:
        for m in CONFIG_OBJECT.finditer(text):
            objects.setdefault(m.group(1), set()).update(CONFIG_OPTION.findall(m.group(2)))
    return objects


def missing(table: dict[str, dict], read: Callable[[str], str]) -> list[str]:
    problems: list[str] = []
    for conf, spec in table.items():
        paths = [p for p in spec["source"] if not p.endswith(".sample")]
        texts = [read(p) for p in paths]
        objects = config_objects(texts) if spec.get("kind_by") else {}
        for kind, keywords in spec.get("kinds", {}).items():
            for keyword in keywords:
                if objects:
                    if keyword not in objects.get(kind, set()):
                        problems.append(f"{conf} [{kind}] {keyword}: not a <configOption> of <configObject {kind}>")
                elif not any(f'"{keyword}"' in text for text in texts):
                    problems.append(f"{conf} [{kind}] {keyword}: not in {', '.join(paths)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, help="an Asterisk source checkout")
    ap.add_argument("--git-dir", type=Path, help="an Asterisk git repository (bare is fine)")
    ap.add_argument("--ref", default="HEAD", help="tag or branch in --git-dir (default HEAD)")
    args = ap.parse_args(argv)

    def read(path: str) -> str:
        if args.src is not None:
            return (args.src / path).read_text(encoding="utf-8", errors="replace")
        out = subprocess.run(["git", f"--git-dir={args.git_dir}", "show", f"{args.ref}:{path}"],
                             capture_output=True, check=False)
        if out.returncode:
            raise SystemExit(f"{args.ref}:{path}: {out.stderr.decode(errors='replace').strip()}")
        return out.stdout.decode("utf-8", errors="replace")

    if (args.src is None) == (args.git_dir is None):
        ap.error("give exactly one of --src and --git-dir")
    problems = missing(yaml.safe_load(TABLE.read_text(encoding="utf-8")), read)
    for line in problems:
        print(line)
    print(f"{len(problems)} keyword(s) not found" if problems else "every keyword in the table was found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
