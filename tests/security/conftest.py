"""The world of the security suites (``world.py``), one per test module, and the figures
each suite reports at the end of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devkit.testing import DatabaseFactory

from .world import World, running_world, seed

# Figures the suites record (``figures[suite] = line``), printed after the run.
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(databases: DatabaseFactory, key_dir: Path) -> AsyncIterator[World]:
    """The services and the gateway on fresh databases, with the cast's objects."""
    async with running_world(databases, key_dir) as running:
        running.ids = await seed(running)
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("security figures")
        for suite, line in FIGURES.items():
            terminalreporter.write_line(f"{suite}: {line}")
