"""``python -m devkit.supervisor SPEC``: keeps the local stack's processes running.

What Kubernetes does for a pod, on one machine: ``make stack`` starts this in its own
session with a spec (JSON) naming each program (the gateway and every service), its
port and how many worker processes it runs. For every worker the supervisor binds a
listening socket on the program's port (``SO_REUSEPORT``: the kernel spreads new
connections over the workers' sockets) and starts the worker on it (``{fd}`` in the
program's argv is the socket's descriptor; ``devkit.serve`` runs uvicorn on it).

- **Restart.** A worker that exits (``kill -9``, a crash, a failed start-up) is started
  again on the same socket, which the supervisor keeps open meanwhile: new connections
  wait in its backlog rather than being refused. Restarts back off (``backoff_first``
  seconds, doubling up to ``backoff_max``); a worker that served for ``stable_seconds``
  starts afresh at the first delay. After ``max_failures`` exits in a row without such a
  stable run, the supervisor gives up on that worker (state ``failed``), closes its
  socket (new connections are refused, or go to the program's other workers) and says so
  in its log; the program's other workers carry on.
- **Ready.** A worker is ``serving`` once it wrote ``ready`` to the pipe named by
  ``MOST_READY_FD`` (``devkit.serve`` does after the app's start-up), else ``starting``.
- **State.** Every change is written to the spec's ``state`` file (JSON, replaced
  atomically): each worker's pid, state and restarts, and every pid ever started, which
  ``make status`` shows and ``make stop`` checks.
- **Stop.** SIGTERM or SIGINT: every worker gets SIGTERM (uvicorn shuts down gracefully),
  SIGKILL after ``stop_timeout`` seconds, then the supervisor exits. Workers also get
  SIGTERM if the supervisor itself dies (``PR_SET_PDEATHSIG``), and they stay in its
  process group, so ``make stop`` can end every one of them, restarted ones included.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

READY_FD_ENV = "MOST_READY_FD"
POLL_SECONDS = 0.1
LISTEN_BACKLOG = 2048
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Policy:
    """How restarts back off and when the supervisor gives up on a worker."""

    backoff_first: float = 0.5
    backoff_max: float = 30.0
    stable_seconds: float = 60.0
    max_failures: int = 5
    stop_timeout: float = 10.0

    def delay(self, failures: int) -> float:
        """Seconds before restarting a worker that has just exited ``failures`` times in
        a row."""
        return min(self.backoff_max, self.backoff_first * 2 ** max(0, failures - 1))


@dataclass
class Program:
    name: str
    argv: list[str]
    port: int
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    host: str = "127.0.0.1"


@dataclass
class Worker:
    program: Program
    index: int
    sock: socket.socket
    proc: subprocess.Popen[bytes] | None = None
    ready_pipe: int | None = None
    state: str = "starting"  # starting, serving, backoff, failed, stopped
    started_at: float = 0.0
    serving_since: float | None = None
    restart_at: float = 0.0
    failures: int = 0  # exits in a row without a stable run
    restarts: int = 0

    @property
    def label(self) -> str:
        return f"{self.program.name}[{self.index}]"


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket other workers of the same program can bind beside."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, programs: list[Program], state_path: Path,
                 policy: Policy | None = None, log: TextIO | None = None) -> None:
        self.policy = policy or Policy()
        self.state_path = state_path
        self._log = log or sys.stdout
        self.started_pids: list[int] = []
        self.workers = [Worker(program, i, listening_socket(program.host, program.port))
                        for program in programs for i in range(1, program.workers + 1)]
        self._stopping = False

    # ------------------------------------------------------------------ logging, state

    def say(self, line: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._log.write(f"{stamp} supervisor: {line}\n")
        self._log.flush()

    def write_state(self) -> None:
        programs: dict[str, Any] = {}
        for w in self.workers:
            entry = programs.setdefault(w.program.name, {
                "port": w.program.port, "url": f"http://{w.program.host}:{w.program.port}",
                "log": w.program.log, "workers": []})
            entry["workers"].append({
                "index": w.index, "pid": w.proc.pid if w.proc else None, "state": w.state,
                "restarts": w.restarts, "failures": w.failures})
        data = {"pid": os.getpid(), "stopping": self._stopping, "programs": programs,
                "started_pids": self.started_pids}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------------ workers

    def spawn(self, w: Worker) -> None:
        fd = w.sock.fileno()
        argv = [a.replace("{fd}", str(fd)) for a in w.program.argv]
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        env = {**os.environ, **w.program.env, READY_FD_ENV: str(write_end)}
        log_path = w.program.log
        try:
            # preexec_fn is safe here: the supervisor is single-threaded.
            with (open(log_path, "ab") if log_path else contextlib.nullcontext()) as out:
                w.proc = subprocess.Popen(
                    argv, env=env, pass_fds=(fd, write_end), stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                )  # fmt: skip
        except OSError as exc:
            os.close(read_end)
            w.proc = None
            self.say(f"{w.label} could not be started: {exc}")
            self._exited(w, f"could not be started ({exc})")
            return
        finally:
            os.close(write_end)
        w.ready_pipe = read_end
        w.state, w.started_at, w.serving_since = "starting", time.monotonic(), None
        self.started_pids.append(w.proc.pid)
        self.say(f"{w.label} started, pid {w.proc.pid}, port {w.program.port}")

    def _close_pipe(self, w: Worker) -> None:
        if w.ready_pipe is not None:
            os.close(w.ready_pipe)
            w.ready_pipe = None

    def _check_ready(self, w: Worker) -> bool:
        if w.ready_pipe is None or w.state != "starting":
            return False
        try:
            data = os.read(w.ready_pipe, 64)
        except BlockingIOError:
            return False
        if b"ready" not in data:
            return False
        self._close_pipe(w)
        w.state, w.serving_since = "serving", time.monotonic()
        self.say(f"{w.label} serving (pid {w.proc.pid if w.proc else '?'}, "
                 f"{w.serving_since - w.started_at:.1f} s after its start)")
        return True

    def _exited(self, w: Worker, how: str) -> None:
        self._close_pipe(w)
        now = time.monotonic()
        if w.serving_since is not None and now - w.serving_since >= self.policy.stable_seconds:
            w.failures = 0
        w.failures += 1
        if w.failures >= self.policy.max_failures:
            # Nobody will serve its backlog: closing it refuses new connections at once
            # (the gateway answers 503) and the kernel sends them to the program's other
            # workers, where there are any.
            w.sock.close()
            w.state = "failed"
            self.say(f"{w.label} {how}; giving up after {w.failures} exits in a row "
                     f"(log: {w.program.log})")
            return
        delay = self.policy.delay(w.failures)
        w.state, w.restart_at = "backoff", now + delay
        self.say(f"{w.label} {how}; restarting in {delay:.1f} s "
                 f"(exit {w.failures} of at most {self.policy.max_failures} in a row)")

    def poll(self) -> bool:
        """One pass over the workers; True when something changed."""
        changed = False
        now = time.monotonic()
        for w in self.workers:
            if w.state in ("starting", "serving") and w.proc is not None:
                changed |= self._check_ready(w)
                code = w.proc.poll()
                if code is not None:
                    how = (f"killed by {signal.Signals(-code).name}" if code < 0
                           else f"exited with status {code}")
                    self._exited(w, f"(pid {w.proc.pid}) {how}")
                    changed = True
            elif w.state == "backoff" and now >= w.restart_at and not self._stopping:
                w.restarts += 1
                self.spawn(w)
                changed = True
        return changed

    # ------------------------------------------------------------------ run, stop

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.request_stop)
        for w in self.workers:
            self.spawn(w)
        self.write_state()
        while not self._stopping:
            if self.poll():
                self.write_state()
            time.sleep(POLL_SECONDS)
        self.stop()
        return 0

    def stop(self) -> None:
        self.say("stopping every worker")
        self.write_state()
        running = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for w in running:
            with contextlib.suppress(ProcessLookupError):
                w.proc.terminate()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.policy.stop_timeout
        for w in running:
            assert w.proc is not None
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{w.label} (pid {w.proc.pid}) ignored SIGTERM: killing it")
                w.proc.kill()
                w.proc.wait()
        for w in self.workers:
            self._close_pipe(w)
            w.sock.close()
            w.state = "stopped"
        self.write_state()
        self.say("stopped")


def load(spec_path: Path) -> tuple[list[Program], Path, Policy]:
    spec = json.loads(spec_path.read_text())
    programs = [Program(**p) for p in spec["programs"]]
    return programs, Path(spec["state"]), Policy(**spec.get("policy", {}))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m devkit.supervisor SPEC.json\n")
        return 2
    programs, state_path, policy = load(Path(args[0]))
    try:
        supervisor = Supervisor(programs, state_path, policy)
    except OSError as exc:  # a port another process holds, most likely
        sys.stderr.write(f"supervisor: cannot listen on every program's port: {exc}\n")
        return 2
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
