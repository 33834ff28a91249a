"""``python -m devkit.stack up|down|status``: the local stack (``make stack`` / ``make stop``).

The same system as the embedded default, as separate processes on loopback: PostgreSQL
(one database per service) and a single-node Kafka started by ``devkit.localservers``
(the module the test suite uses), each service under its own uvicorn, and the gateway as
a prefix router in front, serving ``POST /dev/tokens`` too.

``up`` writes ``var/stack.env`` once every process answers ``/ready``, and records every
process it started in ``var/stack/pids.json``; ``down`` stops exactly those. A fresh
PostgreSQL cluster and Kafka log are made on each ``up`` and deleted by ``down``.
``STACK_DATABASE_URL`` / ``STACK_KAFKA_BOOTSTRAP`` use servers you run instead (their
data is left alone). Ports: ``PORT`` (gateway, 8000), ``STACK_GRANTS_PORT`` (8101),
``STACK_SANDBOX_PORT`` (8102), ``STACK_IPSHARE_PORT`` (8103); a busy port is replaced
by a free one.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from devkit.localservers import (
    KafkaServer,
    PostgresServer,
    external_kafka,
    external_postgres,
    free_port,
    log_tail,
    start_kafka,
    start_postgres,
)
from gateway.settings import SERVICES
from servicekit.devtokens import ensure_dev_keys
from servicekit.settings import default_var_dir

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
DEFAULT_PORTS = {"gateway": 8000, "grants": 8101, "sandbox": 8102, "ipshare": 8103}
PORT_ENV = {"gateway": "PORT", **{s: f"STACK_{s.upper()}_PORT" for s in SERVICES}}


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Layout:
    var: Path

    @property
    def stack(self) -> Path:
        return self.var / "stack"

    @property
    def logs(self) -> Path:
        return self.stack / "logs"

    @property
    def pids(self) -> Path:
        return self.stack / "pids.json"

    @property
    def env(self) -> Path:
        return self.var / "stack.env"

    @property
    def keys(self) -> Path:
        return self.var / "dev-keys"


# --------------------------------------------------------------------------- state


class State:
    """``pids.json``: every process ``up`` started, written after each start."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.processes: list[dict[str, Any]] = []
        self.started_at = datetime.now(UTC).isoformat()

    @classmethod
    def load(cls, layout: Layout) -> State | None:
        if not layout.pids.exists():
            return None
        state = cls(layout)
        data = json.loads(layout.pids.read_text())
        state.processes = data.get("processes", [])
        state.started_at = data.get("started_at", "")
        return state

    def add(self, **entry: Any) -> None:
        self.processes.append({k: str(v) if isinstance(v, Path) else v for k, v in entry.items()})
        self.save()

    def save(self) -> None:
        self.layout.stack.mkdir(parents=True, exist_ok=True)
        tmp = self.layout.pids.with_suffix(".tmp")
        tmp.write_text(json.dumps(
            {"started_at": self.started_at, "processes": self.processes}, indent=2
        ) + "\n")  # fmt: skip
        os.replace(tmp, self.layout.pids)


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One ``up``/``down`` at a time."""
    layout.stack.mkdir(parents=True, exist_ok=True)
    with open(layout.stack / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_ours(entry: dict[str, Any]) -> bool:
    """The recorded process still runs, and is the one we started (not a reused pid)."""
    pid = int(entry["pid"])
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return False
    return entry["match"] in cmdline


# --------------------------------------------------------------------------- up


def up(layout: Layout) -> int:
    with locked(layout):
        previous = State.load(layout)
        if previous is not None:
            if previous.processes and all(is_ours(p) for p in previous.processes):
                out(f"stack already up (since {previous.started_at}); `make stop` ends it")
                if layout.env.exists():
                    out(layout.env.read_text().rstrip())
                return 0
            if any(is_ours(p) for p in previous.processes):
                out("a previous stack is partly running: stopping what is left of it first")
            else:
                out("a previous stack is gone: clearing what it left behind")
            _down(layout, previous)
        state = State(layout)
        started = time.monotonic()
        try:
            env = _start(layout, state)
        except BaseException as exc:  # noqa: BLE001 - reported, cleaned up, exit code
            out(f"\nstack failed to start: {exc}")
            out("stopping what was started...")
            _down(layout, state)
            if isinstance(exc, KeyboardInterrupt):
                return 130
            return 1
        _write_env(layout, env)
        out(f"\nstack up in {time.monotonic() - started:.1f} s; `make stop` ends it")
        for key, value in env.items():
            out(f"  {key}={value}")
        out(f"  (written to {layout.env}; logs in {layout.logs})")
        return 0


def _start(layout: Layout, state: State) -> dict[str, str]:
    var = layout.var.resolve()
    layout.logs.mkdir(parents=True, exist_ok=True)

    pg = _postgres(layout, state)
    kafka = _kafka(layout, state)

    out("databases, topics, migrations, dev keys...")
    urls = {svc: pg.url(svc) for svc in SERVICES}
    for svc in SERVICES:
        _create_database_if_missing(pg, svc)
        kafka.create_topic(f"{svc}.events.v1", partitions=3)
        kafka.create_topic(f"{svc}.deadletter.v1", partitions=3)
    for svc, migrate in _migrations().items():
        migrate(urls[svc])
    key_dir = var / "dev-keys"
    ensure_dev_keys(key_dir)

    ports = _ports()
    http: dict[str, str] = {}
    for svc in SERVICES:
        prefix = svc.upper()
        http[svc] = _uvicorn(
            layout, state, svc, f"{svc}.app:create_app", ports[svc],
            {f"{prefix}_DATABASE_URL": urls[svc], f"{prefix}_KAFKA_BOOTSTRAP": kafka.bootstrap,
             f"{prefix}_DEV_KEY_DIR": str(key_dir), f"{prefix}_MIGRATE_ON_START": "false"},
        )  # fmt: skip
    http["gateway"] = _uvicorn(
        layout, state, "gateway", "gateway.app:create_app", ports["gateway"],
        {"GATEWAY_PROFILE": "dev", "GATEWAY_DEV_KEY_DIR": str(key_dir),
         **{f"GATEWAY_{svc.upper()}_URL": http[svc] for svc in SERVICES}},
    )  # fmt: skip
    _wait_ready(state, http)
    return {
        "GATEWAY_URL": http["gateway"],
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        **{f"{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES},
        **{f"{svc.upper()}_URL": http[svc] for svc in SERVICES},
        "DEV_KEY_DIR": str(key_dir),
    }


def _postgres(layout: Layout, state: State) -> PostgresServer:
    if url := os.environ.get("STACK_DATABASE_URL"):
        out(f"PostgreSQL: using {url.split('@')[-1]} (STACK_DATABASE_URL)")
        return external_postgres(url)
    out("PostgreSQL: starting a fresh cluster...")
    pg = start_postgres(base_dir=layout.stack.resolve(), detached=True)
    root = pg.log_path.parent if pg.log_path else None
    state.add(
        name="postgres", kind="postgres", pid=pg.pid, match=str(root / "data"),
        address=f"{pg.host}:{pg.port}", root=root, data_dir=root / "data",
        bin_dir=pg._bin, log=pg.log_path,  # the bin dir: for pg_ctl stop in `down`
    )  # fmt: skip
    out(f"PostgreSQL: {pg.host}:{pg.port}, pid {pg.pid}")
    return pg


def _kafka(layout: Layout, state: State) -> KafkaServer:
    if bootstrap := os.environ.get("STACK_KAFKA_BOOTSTRAP"):
        out(f"Kafka: using {bootstrap} (STACK_KAFKA_BOOTSTRAP)")
        return external_kafka(bootstrap)
    out("Kafka: starting a single-node KRaft broker...")
    kafka = start_kafka(base_dir=layout.stack.resolve(), detached=True)
    root = kafka.log_path.parent if kafka.log_path else None
    state.add(name="kafka", kind="kafka", pid=kafka.pid, match="kafka.Kafka",
              address=kafka.bootstrap, root=root, log=kafka.log_path)
    out(f"Kafka: {kafka.bootstrap}, pid {kafka.pid}")
    return kafka


def _create_database_if_missing(pg: PostgresServer, name: str) -> None:
    with psycopg.connect(pg.dsn(pg.admin_db), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _migrations() -> dict[str, Callable[[str], None]]:
    from grants.app import migrate as grants
    from ipshare.app import migrate as ipshare
    from sandbox.app import migrate as sandbox

    return {"grants": grants, "sandbox": sandbox, "ipshare": ipshare}


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        wanted = int(os.environ.get(PORT_ENV[name], default))
        if _port_free(wanted) and wanted not in ports.values():
            ports[name] = wanted
        else:
            ports[name] = free_port()
            out(f"port {wanted} for {name} is busy: using {ports[name]}")
    return ports


def _uvicorn(layout: Layout, state: State, name: str, factory: str, port: int,
             extra_env: dict[str, str]) -> str:
    log = layout.logs.resolve() / f"{name}.log"
    cmd = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--lifespan", "on"]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **extra_env}, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    state.add(name=name, kind="uvicorn", pid=proc.pid, match=factory, url=url, log=log)
    out(f"{name}: {url}, pid {proc.pid}")
    return url


def _wait_ready(state: State, http: dict[str, str]) -> None:
    entries = {p["name"]: p for p in state.processes}
    waiting = dict(http)
    deadline = time.monotonic() + READY_TIMEOUT_S
    last: dict[str, str] = {}
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for name, url in list(waiting.items()):
                if not is_ours(entries[name]):
                    raise RuntimeError(_failure(entries[name], "exited during start-up"))
                try:
                    response = client.get(url + "/ready")
                    if response.status_code == 200:
                        del waiting[name]
                        continue
                    last[name] = f"/ready answered {response.status_code}: {response.text}"
                except httpx.HTTPError as exc:
                    last[name] = f"/ready unreachable: {type(exc).__name__}"
            if waiting and time.monotonic() > deadline:
                failures = [_failure(entries[n], f"not ready after {READY_TIMEOUT_S:.0f} s "
                                                 f"({last.get(n, '')})") for n in waiting]
                raise RuntimeError("\n".join(failures))
            if waiting:
                time.sleep(0.2)


def _failure(entry: dict[str, Any], what: str) -> str:
    log = Path(entry["log"])
    return f"{entry['name']} {what}; last lines of {log}:\n{log_tail(log, 25)}"


def _write_env(layout: Layout, env: dict[str, str]) -> None:
    tmp = layout.env.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    os.replace(tmp, layout.env)


# --------------------------------------------------------------------------- down


def down(layout: Layout) -> int:
    with locked(layout):
        state = State.load(layout)
        if state is None:
            out("stack is not running (no var/stack/pids.json)")
            return 0
        _down(layout, state)
        out("stack stopped")
        return 0


def _down(layout: Layout, state: State) -> None:
    """Stop every recorded process, newest first; then forget them."""
    for entry in reversed(state.processes):
        if entry["kind"] == "postgres":
            _stop_postgres(entry)
        else:
            _stop_process(entry)
        if entry.get("root"):
            shutil.rmtree(entry["root"], ignore_errors=True)
    layout.pids.unlink(missing_ok=True)
    layout.env.unlink(missing_ok=True)


def _signal(entry: dict[str, Any], sig: signal.Signals) -> None:
    pid = int(entry["pid"])
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:  # we started it as a session (and group) leader
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_process(entry: dict[str, Any]) -> None:
    if not is_ours(entry):
        return
    _signal(entry, signal.SIGTERM)
    if not _wait_gone(int(entry["pid"]), STOP_TIMEOUT_S):
        out(f"{entry['name']} (pid {entry['pid']}) ignored SIGTERM: killing it")
        _signal(entry, signal.SIGKILL)
        _wait_gone(int(entry["pid"]), STOP_TIMEOUT_S)
    out(f"stopped {entry['name']} (pid {entry['pid']})")


def _stop_postgres(entry: dict[str, Any]) -> None:
    if not is_ours(entry):
        return
    host, port = entry["address"].rsplit(":", 1)
    server = PostgresServer(
        host=host, port=int(port), pid=int(entry["pid"]),
        _data_dir=Path(entry["data_dir"]), _bin=Path(entry["bin_dir"]),
    )  # fmt: skip
    try:
        server.stop()  # pg_ctl -m fast stop, as the unprivileged user when we are root
    except RuntimeError as exc:
        out(f"pg_ctl stop failed ({exc}); sending the postmaster SIGINT (fast shutdown)")
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry["pid"]), signal.SIGINT)
    if not _wait_gone(int(entry["pid"]), STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry["pid"]), signal.SIGKILL)
    out(f"stopped postgres (pid {entry['pid']})")


# --------------------------------------------------------------------------- status


def status(layout: Layout) -> int:
    state = State.load(layout)
    if state is None:
        out("stack is not running")
        return 3
    running = True
    with httpx.Client(timeout=2.0) as client:
        for entry in state.processes:
            alive = is_ours(entry)
            running = running and alive
            where = entry.get("url") or entry.get("address", "")
            ready = ""
            if alive and entry.get("url"):
                try:
                    code = client.get(entry["url"] + "/ready").status_code
                    ready = "ready" if code == 200 else f"not ready ({code})"
                except httpx.HTTPError as exc:
                    ready = f"unreachable ({type(exc).__name__})"
            state_word = "running" if alive else "DEAD"
            out(f"{entry['name']:<9} pid {entry['pid']:<8} {state_word:<8} {where} {ready}")
    if layout.env.exists():
        out(f"\n{layout.env}:\n{layout.env.read_text().rstrip()}")
    return 0 if running else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.stack",
                                     description="The local stack: separate processes "
                                     "on PostgreSQL and Kafka, on loopback.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--var-dir", type=Path, default=default_var_dir())
    args = parser.parse_args(argv)
    layout = Layout(args.var_dir)
    return {"up": up, "down": down, "status": status}[args.command](layout)


if __name__ == "__main__":
    raise SystemExit(main())
