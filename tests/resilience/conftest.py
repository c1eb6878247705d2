"""Resilience tests: a ``figures`` fixture whose lines are printed in
the terminal summary (so the figures are seen even with ``-q``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_FIGURES: list[tuple[str, str]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``figures("...")`` records a result line for the summary (and prints it)."""

    def record(text: str) -> None:
        print(text)
        _FIGURES.append((request.node.name, text))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("resilience figures")
    for name, text in _FIGURES:
        terminalreporter.write_line(f"{name}: {text}")
