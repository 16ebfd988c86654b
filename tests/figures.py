"""Figures a test measured, printed together at the end of the run (`make test` shows them).

A test takes the session-scoped `figures` fixture and records what it measured, before it
asserts, so the numbers are printed whether the test passed or failed:

    def test_faults(figures):
        ...
        figures.record("faults, short", client_success="200/200 (100.0%)", upstream_calls="231 (1.16x)")

Enabled with `pytest_plugins = ["figures"]` in conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class Figures:
    """What the tests of one session measured: (title, [(name, value), ...]) in record order."""

    entries: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def record(self, title: str, /, **values: object) -> None:
        """One group of figures under `title`; keyword names become labels (`_` prints as space)."""
        self.entries.append((title, [(name.replace("_", " "), str(value)) for name, value in values.items()]))

    def lines(self) -> list[str]:
        out: list[str] = []
        for title, values in self.entries:
            out.append(title)
            width = max((len(name) for name, _ in values), default=0)
            out.extend(f"    {name.ljust(width)}  {value}" for name, value in values)
        return out


_FIGURES = pytest.StashKey[Figures]()


@pytest.fixture(scope="session")
def figures(pytestconfig: pytest.Config) -> Figures:
    """The session's figures: `figures.record(title, name=value, ...)`."""
    found = pytestconfig.stash.get(_FIGURES, None)
    if found is None:
        found = pytestconfig.stash[_FIGURES] = Figures()
    return found


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    found = config.stash.get(_FIGURES, None)
    if found is None or not found.entries:
        return
    terminalreporter.write_sep("=", "figures")
    for line in found.lines():
        terminalreporter.write_line(line)
