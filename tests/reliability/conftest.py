"""The reliability suite's shared parts: its sizes and the figures every test prints.

Each test prints one line of figures (sent, acknowledged, effects found, duplicates,
lost, and what else it measured) as it ends, and the run ends with all of them under
"reliability figures". Sizes: ``workload.size``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_FIGURES = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(sent=…, acknowledged=…, …)``: print this test's figures now and again
    in the run's summary."""

    def report(**counts: object) -> None:
        line = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in counts.items())
        print(f"{request.node.name}: {line}")
        request.config.stash.setdefault(_FIGURES, []).append((request.node.name, line))

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = terminalreporter.config.stash.get(_FIGURES, [])
    if rows:
        terminalreporter.section("reliability figures")
        for test, line in rows:
            terminalreporter.write_line(f"{test}: {line}")
