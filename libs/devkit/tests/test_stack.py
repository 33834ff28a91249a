"""The local stack's bookkeeping: ports, recorded processes, idempotent up, clean down.

Starting the real stack (PostgreSQL, Kafka, four uvicorn processes) takes ~20 s; these
tests cover its decisions with a stand-in process instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import stack


@pytest.fixture
def layout(tmp_path: Path) -> stack.Layout:
    return stack.Layout(tmp_path / "var")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)  # most-stack-test"],
        start_new_session=True,
    )
    # Until it has exec'd, the child's cmdline is pytest's and `is_ours` rightly says no.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"most-stack-test" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_busy_port_is_replaced_by_a_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setenv("STACK_GRANTS_PORT", str(taken))
        ports = stack._ports()
    assert ports["grants"] != taken
    assert len(set(ports.values())) == 4


def test_a_reused_pid_running_something_else_is_not_ours() -> None:
    assert not stack.is_ours({"pid": os.getpid(), "match": "kafka.Kafka"})


def test_up_when_every_recorded_process_runs_says_already_up(
    layout: stack.Layout, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    state = stack.State(layout)
    state.add(name="grants", kind="uvicorn", pid=sleeper.pid, match="most-stack-test",
              log=layout.logs / "grants.log")
    assert stack.up(layout) == 0
    assert "already up" in capsys.readouterr().out
    assert sleeper.poll() is None


def test_down_stops_recorded_processes_and_forgets_them(
    layout: stack.Layout, sleeper: subprocess.Popen[bytes]
) -> None:
    state = stack.State(layout)
    state.add(name="grants", kind="uvicorn", pid=sleeper.pid, match="most-stack-test",
              log=layout.logs / "grants.log")
    assert stack.down(layout) == 0
    sleeper.wait(timeout=5)  # down() may have reaped it already: then this returns at once
    assert not Path(f"/proc/{sleeper.pid}").exists()
    assert not layout.pids.exists()


def test_down_when_nothing_runs_is_a_no_op(layout: stack.Layout) -> None:
    assert stack.down(layout) == 0
    assert stack.status(layout) == 3
