"""The repository's text speaks of the product alone: no paths of one machine, no references to
files that are not in the repository.

Container paths (``/data``), API routes (``/v1/...``) and attack strings in the security tests
(``/etc/passwd``, a bare ``"/tmp/"``) are not machine paths and do not trip the check: only a
home, work or temporary folder followed by a name does.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".toml", ".html", ".js", ".css", ".cfg", ".ini", ".yml", ".yaml"}
NAMES = {"Dockerfile", "Makefile", "run"}

# Each pattern is written so that it does not match its own source text.
FORBIDDEN: dict[str, re.Pattern[str]] = {
    "machine path": re.compile(
        # Attack targets in the security tests are named mamamia-*, evil-* or x.csv.
        r"(?<![\w.])/(?:work|root|home|Users|tmp(?!/mamamia-|/evil-|/x[.]csv))/[\w.-]+"
    ),
    "folder outside the repository": re.compile(r"[.][.]/share[d]\b"),
    "notes outside the repository": re.compile(r"\bshared/note[s]\b|\bnotes/[\w-]+[.]m[d]\b"),
    "dataset notes outside the repository": re.compile(r"\bDATASET[.]m[d]\b"),
    "tooling folder": re.compile(r"[.]librar[y]\b"),
}


def problems_in(text: str) -> list[str]:
    """``"line N: what: the text"`` for every forbidden reference in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(line):
                found.append(f"line {number}: {what}: {match.group(0)}")
    return found


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    paths = [ROOT / p for p in listed.split("\0") if p]
    return [
        p
        for p in paths
        if p.is_file() and (p.suffix in SUFFIXES or p.name in NAMES) and "tests/data" not in str(p)
    ]


def test_the_walk_sees_the_repository() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in tracked_text_files()}
    assert {"README.md", "Makefile", "Dockerfile", ".ci/run", "sdk/src/mamamia/raw.py"} <= names


@pytest.mark.parametrize(
    "text",
    [
        # Built from pieces so that this file does not trip its own check.
        "see /" + "work/main/docs",
        "cd /" + "root/project",
        "/" + "home/alice/data.xlsx",
        "written to /" + "tmp/run-1/out",
        "the notes in ../" + "shared/DATA",
        "measured in shared/" + "notes/volumes",
        "(notes/" + "synapse.md §3)",
        "the layout of DATASET" + ".md",
        "a copy under .librar" + "y/env",
    ],
)
def test_the_check_flags_outside_references(text: str) -> None:
    assert problems_in(text)


@pytest.mark.parametrize(
    "text",
    [
        '-v "$PWD/demo/catalog:/data:ro"',
        "POST /v1/query and GET /v1/cases/{id}/crop",
        "SELECT * FROM read_csv('/etc/passwd')",
        'LEAKS = ("root:", "/etc/", "/tmp/", "/home/", "/root")',
        "docs/dataset.md and tests/data/ATTRIBUTION.md",
        "COPY (SELECT 1) TO '/tmp/mamamia-pwned.csv'",
        "bench/RESULTS.md",
    ],
)
def test_the_check_allows_product_text(text: str) -> None:
    assert problems_in(text) == []


def test_no_machine_paths_or_outside_references() -> None:
    offenders = {}
    for path in tracked_text_files():
        found = problems_in(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            offenders[path.relative_to(ROOT).as_posix()] = found
    assert offenders == {}
