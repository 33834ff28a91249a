"""The local stack's supervisor: a worker killed with SIGKILL serves again on its port, a
worker that keeps failing is given up on, and stopping leaves no process behind.

The programs here are a stand-in HTTP server (the standard library's, answering its own
pid) that starts in a fraction of a second; the real services run under the supervisor
in ``tests/e2e/test_make_stack.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit import stack
from devkit.localservers import free_port
from devkit.supervisor import Policy

STAND_IN = r"""
import os, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Pid(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

sock = socket.socket(fileno=int(sys.argv[1]))
server = HTTPServer(sock.getsockname(), Pid, bind_and_activate=False)
server.socket = sock
ready = os.environ.pop("MOST_READY_FD", None)
if ready:
    os.write(int(ready), b"ready\n")
    os.close(int(ready))
server.serve_forever()
"""
FAILING = "import sys; sys.exit(3)"
FAST = {"backoff_first": 0.1, "backoff_max": 0.4, "stable_seconds": 60, "max_failures": 3,
        "stop_timeout": 5}


class Running:
    """A supervisor process started from a spec, as ``make stack`` starts it."""

    def __init__(self, root: Path, programs: list[dict[str, Any]], policy: dict[str, Any]):
        self.state_path = root / "supervisor.json"
        self.log_path = root / "supervisor.log"
        spec = root / "spec.json"
        spec.write_text(json.dumps({"state": str(self.state_path), "programs": programs,
                                    "policy": policy}))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "devkit.supervisor", str(spec)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def workers(self, name: str) -> list[dict[str, Any]]:
        return self.state().get("programs", {}).get(name, {}).get("workers", [])

    def wait_for(self, what: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := what():
                return value
            assert self.proc.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        raise AssertionError(f"not within {timeout} s; supervisor log:\n"
                             f"{self.log_path.read_text()}")

    def serving(self, name: str, count: int = 1) -> list[int]:
        def pids() -> list[int] | None:
            workers = self.workers(name)
            if len(workers) == count and all(w["state"] == "serving" for w in workers):
                return [w["pid"] for w in workers]
            return None
        return self.wait_for(pids)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(programs: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> Running:
        running = Running(tmp_path, programs, policy or FAST)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait()


def program(name: str, port: int, code: str = STAND_IN, workers: int = 1,
            log: Path | None = None) -> dict[str, Any]:
    return {"name": name, "port": port, "workers": workers,
            "argv": [sys.executable, "-c", code, "{fd}"],
            "log": str(log) if log else None}


def get_pid(port: int, timeout: float = 20.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return int(response.read())
    finally:
        conn.close()


def alive(pid: int) -> bool:
    return stack._alive(pid)


def test_a_worker_killed_with_sigkill_is_restarted_and_serves_on_the_same_port(supervise):
    port = free_port()
    running = supervise([program("grants", port)])
    [first] = running.serving("grants")
    assert get_pid(port) == first

    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    # The port stays bound: this request waits in the backlog until the new worker serves.
    second = get_pid(port)
    assert second != first
    assert time.monotonic() - killed_at < 10
    [worker] = running.workers("grants")
    assert worker["pid"] == second and worker["restarts"] == 1
    assert "grants[1]" in running.log_path.read_text()
    assert "killed by SIGKILL; restarting in 0.1 s" in running.log_path.read_text()


def test_a_worker_that_keeps_failing_is_given_up_after_the_restart_limit(supervise, tmp_path):
    good, bad = free_port(), free_port()
    running = supervise([program("sandbox", good),
                         program("ipshare", bad, FAILING, log=tmp_path / "ipshare.log")])
    [worker] = running.wait_for(lambda: [w for w in running.workers("ipshare")
                                         if w["state"] == "failed"])
    assert worker["restarts"] == 2  # three exits in a row: started, restarted twice
    log = running.log_path.read_text()
    assert "ipshare[1] (pid" in log and "exited with status 3" in log
    assert "giving up after 3 exits in a row" in log
    assert str(tmp_path / "ipshare.log") in log
    # The other program carries on.
    [sandbox] = running.serving("sandbox")
    assert get_pid(good) == sandbox


def test_restarts_back_off_doubling_up_to_the_maximum() -> None:
    policy = Policy(backoff_first=0.5, backoff_max=4.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_the_workers_of_a_program_share_its_port(supervise):
    port = free_port()
    running = supervise([program("ipshare", port, workers=2)])
    pids = set(running.serving("ipshare", count=2))
    # Each connection is new; the kernel spreads them over the two workers' sockets.
    answered = {get_pid(port) for _ in range(40)}
    assert answered == pids


def test_stopping_the_supervisor_stops_every_worker_it_ever_started(supervise):
    port = free_port()
    running = supervise([program("ipshare", port, workers=2)])
    first, _ = running.serving("ipshare", count=2)
    os.kill(first, signal.SIGKILL)
    running.wait_for(lambda: running.state()["started_pids"][2:])  # the restarted one
    running.serving("ipshare", count=2)
    started = running.state()["started_pids"]
    assert len(started) == 3

    running.stop()
    assert running.proc.returncode == 0
    assert not [pid for pid in started if alive(pid)]
    assert all(w["state"] == "stopped" for w in running.workers("ipshare"))


def test_workers_do_not_outlive_a_supervisor_killed_with_sigkill(supervise):
    port = free_port()
    running = supervise([program("gateway", port, workers=2)])
    pids = running.serving("gateway", count=2)
    running.proc.kill()
    running.proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]


def test_stack_down_ends_the_supervisor_and_its_restarted_workers(supervise, tmp_path):
    layout = stack.Layout(tmp_path / "var")
    port = free_port()
    running = supervise([program("grants", port)])
    [first] = running.serving("grants")
    os.kill(first, signal.SIGKILL)
    running.wait_for(lambda: running.state()["started_pids"][1:])
    running.serving("grants")
    started = running.state()["started_pids"]
    state = stack.State(layout)
    state.add(name="supervisor", kind="supervisor", pid=running.proc.pid,
              match="devkit.supervisor", state=running.state_path, log=running.log_path)

    assert stack.down(layout) == 0
    running.proc.wait(5)  # reaped here (down() signalled it; it is this test's child)
    assert not [pid for pid in started if alive(pid)]
    assert not layout.pids.exists()


def refused(port: int) -> bool:
    try:
        get_pid(port, timeout=3)
    except ConnectionRefusedError:
        return True
    return False


def test_a_given_up_worker_lets_go_of_its_port_so_callers_are_refused_at_once(supervise):
    port = free_port()
    running = supervise([program("ipshare", port, FAILING)])
    running.wait_for(lambda: [w for w in running.workers("ipshare") if w["state"] == "failed"])
    # Not left waiting in a backlog nobody serves: the gateway answers 503 at once.
    assert running.wait_for(lambda: refused(port), timeout=5)


# Two workers of one program: the first to claim the file serves, the other keeps failing.
CLAIMS_OR_FAILS = (
    "import os, sys\n"
    "try:\n"
    "    os.close(os.open(sys.argv[2], os.O_CREAT | os.O_EXCL | os.O_WRONLY))\n"
    "except FileExistsError:\n"
    "    sys.exit(3)\n" + STAND_IN)


def test_when_one_of_two_workers_is_given_up_every_request_reaches_the_other(
        supervise, tmp_path):
    port = free_port()
    spec = program("grants", port, CLAIMS_OR_FAILS, workers=2)
    spec["argv"].append(str(tmp_path / "claimed"))
    running = supervise([spec])
    [survivor] = running.wait_for(lambda: [
        w["pid"] for w in running.workers("grants") if w["state"] == "serving"]
        if any(w["state"] == "failed" for w in running.workers("grants")) else None)
    # With its socket still listening, the kernel would queue some connections there.
    assert {get_pid(port, timeout=3) for _ in range(20)} == {survivor}
