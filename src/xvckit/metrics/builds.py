"""CI results from files: JUnit XML test reports and Cobertura / coverage.py XML coverage
reports, given as paths or globs. Each file is one build, at its modification time.

JUnit: the `testcase` elements at any depth under `testsuites` or `testsuite`, each passed,
failed (a `failure` child), in error (`error`) or skipped (`skipped`); a report without
testcase elements is read from its suites' `tests`, `failures`, `errors` and `skipped`
attributes. A build succeeded when nothing failed and nothing was in error.

Coverage: the root `coverage` element's `lines-covered` / `lines-valid` (its `line-rate` when
those are absent), as coverage.py's `coverage xml` and Cobertura write them.

Parsed files are kept by path, size and modification time (FileCache): a re-run reads only new
or changed files. The XML parser is the standard library's expat, which expands no external
entities and refuses entity expansion bombs.
"""

from __future__ import annotations

import glob
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import msgspec

from xvckit.errors import UserError


@dataclass(frozen=True, slots=True)
class TestRun:
    path: str
    when: float  # the file's modification time
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def succeeded(self) -> bool:
        return self.failures == 0 and self.errors == 0


@dataclass(frozen=True, slots=True)
class Coverage:
    path: str
    when: float
    rate: float  # covered lines / valid lines, 0..1


class FileCache(msgspec.Struct):
    """Parsed files: "kind:path" -> (size, mtime_ns, the numbers read)."""

    version: int = 1
    files: dict[str, tuple[int, int, list[float]]] = msgspec.field(default_factory=dict)


def expand(patterns: list[str], option: str) -> list[Path]:
    """The files `patterns` (paths or globs, `**` included) name, each once, sorted; a
    UserError for a pattern that names none."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        matches = [Path(m) for m in glob.glob(os.path.expanduser(pattern), recursive=True)]
        files = [m for m in matches if m.is_file()]
        if not files:
            raise UserError(f"{option} {pattern}: no file matches")
        for path in files:
            found.setdefault(str(path.resolve()), path)
    return sorted(found.values())


def junit(paths: list[Path], cache: FileCache | None = None) -> list[TestRun]:
    runs = []
    for path in paths:
        when, numbers = _cached(path, "junit", _junit_counts, cache)
        tests, failures, errors, skipped = (int(n) for n in numbers)
        runs.append(TestRun(str(path), when, tests, failures, errors, skipped))
    return sorted(runs, key=lambda run: (run.when, run.path))


def coverage(paths: list[Path], cache: FileCache | None = None) -> list[Coverage]:
    reports = []
    for path in paths:
        when, numbers = _cached(path, "coverage", _coverage_rate, cache)
        reports.append(Coverage(str(path), when, numbers[0]))
    return sorted(reports, key=lambda report: (report.when, report.path))


def _cached(path: Path, kind: str, read, cache: FileCache | None) -> tuple[float, list[float]]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    key = f"{kind}:{path.resolve()}"
    hit = cache.files.get(key) if cache else None
    if hit is not None and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
        return stat.st_mtime, hit[2]
    numbers = read(path)
    if cache is not None:
        cache.files[key] = (stat.st_size, stat.st_mtime_ns, numbers)
    return stat.st_mtime, numbers


def _root(path: Path, what: str, tags: tuple[str, ...]) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise UserError(f"{path}: not {what} XML: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    if root.tag not in tags:
        raise UserError(f"{path}: not {what} XML: the root element is <{root.tag}>, not <{tags[0]}>")
    return root


def _junit_counts(path: Path) -> list[float]:
    """[tests, failures, errors, skipped] of one JUnit report."""
    root = _root(path, "JUnit", ("testsuites", "testsuite"))
    cases = list(root.iter("testcase"))
    if cases:
        counts = [len(cases), 0, 0, 0]
        for case in cases:
            tags = {child.tag for child in case}
            if "failure" in tags:
                counts[1] += 1
            elif "error" in tags:
                counts[2] += 1
            elif "skipped" in tags:
                counts[3] += 1
        return [float(n) for n in counts]
    suites = (
        [root]
        if root.tag == "testsuite"
        else [s for s in root.iter("testsuite") if s.find("testsuite") is None]
    )
    counts = [0.0, 0.0, 0.0, 0.0]
    for suite in suites:
        for i, name in enumerate(("tests", "failures", "errors", "skipped")):
            counts[i] += _number(path, suite, name, suite.get("skip") if name == "skipped" else None)
    return counts


def _coverage_rate(path: Path) -> list[float]:
    """[covered lines / valid lines] of one coverage report."""
    root = _root(path, "Cobertura/coverage.py", ("coverage",))
    valid = root.get("lines-valid")
    if valid is not None and float(valid) > 0:
        return [_number(path, root, "lines-covered") / _number(path, root, "lines-valid")]
    if root.get("line-rate") is None:
        raise UserError(f"{path}: <coverage> has neither lines-valid/lines-covered nor line-rate")
    rate = _number(path, root, "line-rate")
    if not 0 <= rate <= 1:
        raise UserError(f"{path}: line-rate {rate} is not between 0 and 1")
    return [rate]


def _number(path: Path, element: ET.Element, name: str, fallback: str | None = None) -> float:
    text = element.get(name, fallback)
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}: <{element.tag}> {name}={text!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise UserError(f"{path}: <{element.tag}> {name}={text!r} is not a count")
    return value
