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


def test_a_port_a_stopped_stack_left_in_time_wait_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server side closes first, as a stopped worker does: its end is in TIME_WAIT.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        client.recv(1)  # the server's FIN
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what made `make stack` pick random ports
    monkeypatch.setenv("STACK_GRANTS_PORT", str(port))
    assert stack._ports()["grants"] == port


def test_workers_default_to_what_two_cores_warrant() -> None:
    assert {name: stack.default_workers(name, cpus=2) for name in stack.PROGRAMS} == {
        "gateway": 1, "grants": 1, "sandbox": 1, "ipshare": 2}
    assert stack.default_workers("ipshare", cpus=64) == stack.MAX_DEFAULT_WORKERS


def test_workers_per_program_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_WORKERS_IPSHARE", "3")
    monkeypatch.setenv("STACK_WORKERS_GRANTS", "")
    workers = stack._workers()
    assert workers["ipshare"] == 3
    assert workers["grants"] == stack.default_workers("grants")
    monkeypatch.setenv("STACK_WORKERS_SANDBOX", "0")
    with pytest.raises(ValueError, match="STACK_WORKERS_SANDBOX='0'"):
        stack._workers()
