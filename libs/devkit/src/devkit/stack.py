"""``python -m devkit.stack up|down|status``: the local stack (``make stack`` / ``make stop``).

The same system as the embedded default, as separate processes on loopback: PostgreSQL
(one database per service) and a single-node Kafka started by ``devkit.localservers``
(the module the test suite uses), each service as one or more uvicorn workers, and the
real gateway in front (edge authentication, route table, rate limits), serving
``POST /dev/tokens`` too. A supervisor (``devkit.supervisor``) runs the gateway's and the
services' workers and restarts one that dies, as Kubernetes restarts a pod's container.

``up`` writes ``var/stack.env`` once every worker serves and every program answers
``/ready``, and records what it started in ``var/stack/pids.json``; ``down`` stops exactly
those, the supervisor's restarted workers included. A fresh PostgreSQL cluster and Kafka
log are made on each ``up`` and deleted by ``down``. ``STACK_DATABASE_URL`` /
``STACK_KAFKA_BOOTSTRAP`` use servers you run instead (their data is left alone).

Ports: ``PORT`` (gateway, 8000), ``STACK_GRANTS_PORT`` (8101), ``STACK_SANDBOX_PORT``
(8102), ``STACK_IPSHARE_PORT`` (8103); a port another process listens on is replaced by a
free one (one merely in TIME_WAIT after a ``down`` is reused). Workers per program:
``STACK_WORKERS_GATEWAY``, ``STACK_WORKERS_GRANTS``, ``STACK_WORKERS_SANDBOX``,
``STACK_WORKERS_IPSHARE`` (defaults in :func:`default_workers`). With more than one
gateway worker the stack also starts a Redis-protocol server (Valkey in deployments) for
the gateway's shared rate limits and revocations, unless
``GATEWAY_RATE_LIMIT_STORAGE_URL`` names one.
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
    start_redis,
)
from devkit.supervisor import Policy
from gateway.settings import SERVICES
from servicekit.devtokens import ensure_dev_keys
from servicekit.settings import default_var_dir

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
PROGRAMS = ("gateway", *SERVICES)
GATEWAY_PROTOCOL = "gateway.server:GatewayProtocol"
DEFAULT_PORTS = {"gateway": 8000, "grants": 8101, "sandbox": 8102, "ipshare": 8103}
PORT_ENV = {"gateway": "PORT", **{s: f"STACK_{s.upper()}_PORT" for s in SERVICES}}
WORKERS_ENV = {name: f"STACK_WORKERS_{name.upper()}" for name in PROGRAMS}
MAX_DEFAULT_WORKERS = 4
# Set in the environment of everything the supervisor starts: the var directory's path.
STACK_MARKER_ENV = "MOST_STACK"
# The supervisor's stop_timeout, plus time for it to report and exit.
SUPERVISOR_STOP_TIMEOUT_S = Policy().stop_timeout + 5.0


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

    @property
    def supervisor_spec(self) -> Path:
        return self.stack / "supervisor-spec.json"

    @property
    def supervisor_state(self) -> Path:
        return self.stack / "supervisor.json"


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

    ports, workers = _ports(), _workers()
    http = {name: f"http://127.0.0.1:{ports[name]}" for name in PROGRAMS}
    gateway_env = {"GATEWAY_PROFILE": "dev", "GATEWAY_DEV_KEY_DIR": str(key_dir),
                   **{f"GATEWAY_{svc.upper()}_URL": http[svc] for svc in SERVICES}}
    if workers["gateway"] > 1 and not os.environ.get("GATEWAY_RATE_LIMIT_STORAGE_URL"):
        gateway_env["GATEWAY_RATE_LIMIT_STORAGE_URL"] = _redis(layout, state)
    programs = [
        _program(layout, svc, ports[svc], workers[svc], {
            f"{svc.upper()}_DATABASE_URL": urls[svc],
            f"{svc.upper()}_KAFKA_BOOTSTRAP": kafka.bootstrap,
            f"{svc.upper()}_DEV_KEY_DIR": str(key_dir),
            f"{svc.upper()}_MIGRATE_ON_START": "false"})
        for svc in SERVICES
    ]
    programs.append(_program(layout, "gateway", ports["gateway"], workers["gateway"],
                             gateway_env))
    _supervisor(layout, state, programs)
    _wait_ready(layout, state, http)
    env = {
        "GATEWAY_URL": http["gateway"],
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        **{f"{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES},
        **{f"{svc.upper()}_URL": http[svc] for svc in SERVICES},
        "DEV_KEY_DIR": str(key_dir),
    }
    if "GATEWAY_RATE_LIMIT_STORAGE_URL" in gateway_env:
        env["GATEWAY_RATE_LIMIT_STORAGE_URL"] = gateway_env["GATEWAY_RATE_LIMIT_STORAGE_URL"]
    return env


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


def _redis(layout: Layout, state: State) -> str:
    out("Redis: starting one for the gateway workers' shared rate limits...")
    redis = start_redis(base_dir=layout.stack.resolve(), detached=True)
    root = redis.log_path.parent if redis.log_path else None
    state.add(name="redis", kind="redis", pid=redis.pid, match="redis-server",
              address=redis.url, root=root, log=redis.log_path)
    out(f"Redis: {redis.url}, pid {redis.pid}")
    return redis.url


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
    """Nothing listens on ``port``. ``SO_REUSEADDR`` as the servers bind, so connections
    of a stack stopped a moment ago (TIME_WAIT) do not count as a listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        wanted = int(os.environ.get(PORT_ENV[name]) or default)
        if _port_free(wanted) and wanted not in ports.values():
            ports[name] = wanted
        else:
            ports[name] = free_port()
            out(f"port {wanted} for {name} is busy: using {ports[name]}")
    return ports


def default_workers(name: str, cpus: int | None = None) -> int:
    """Worker processes of ``name`` when ``STACK_WORKERS_<NAME>`` is not set.

    ipshare, whose income postings are the platform's hot write path, gets one per core;
    grants and sandbox one per two cores; each at most 4. The gateway gets one: its
    request path costs a fraction of a service's, and one process keeps its rate limits
    in memory (more workers share them in a Redis-protocol server the stack starts).
    On 2 cores: ipshare 2, the others 1.
    """
    cpus = cpus or os.cpu_count() or 1
    per_program = {"ipshare": cpus, "grants": cpus // 2, "sandbox": cpus // 2, "gateway": 1}
    return max(1, min(MAX_DEFAULT_WORKERS, per_program[name]))


def _workers() -> dict[str, int]:
    workers: dict[str, int] = {}
    for name in PROGRAMS:
        value = os.environ.get(WORKERS_ENV[name], "").strip()
        if not value:
            workers[name] = default_workers(name)
        elif value.isdigit() and int(value) >= 1:
            workers[name] = int(value)
        else:
            raise ValueError(f"{WORKERS_ENV[name]}={value!r}: a number of processes, 1 or more")
    return workers


def _program(layout: Layout, name: str, port: int, workers: int,
             env: dict[str, str]) -> dict[str, Any]:
    """A supervisor program: ``name``'s app on ``port`` in ``workers`` uvicorn processes."""
    argv = [sys.executable, "-m", "devkit.serve", f"{name}.app:create_app", "--fd", "{fd}"]
    if name == "gateway":  # as its image runs it (gateway.server)
        argv += ["--no-access-log", "--no-proxy-headers", "--http", GATEWAY_PROTOCOL]
    return {"name": name, "port": port, "workers": workers, "env": env,
            "log": str(layout.logs.resolve() / f"{name}.log"), "argv": argv}


def _supervisor(layout: Layout, state: State, programs: list[dict[str, Any]]) -> None:
    layout.supervisor_state.unlink(missing_ok=True)
    spec = {"state": str(layout.supervisor_state.resolve()), "programs": programs}
    layout.supervisor_spec.write_text(json.dumps(spec, indent=2) + "\n")
    log = layout.logs.resolve() / "supervisor.log"
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devkit.supervisor", str(layout.supervisor_spec.resolve())],
            env={**os.environ, STACK_MARKER_ENV: str(layout.var.resolve())},
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    state.add(name="supervisor", kind="supervisor", pid=proc.pid, match="devkit.supervisor",
              state=layout.supervisor_state.resolve(), log=log)
    for program in programs:
        out(f"{program['name']}: http://127.0.0.1:{program['port']}, "
            f"{program['workers']} worker{'s' if program['workers'] > 1 else ''}")
    out(f"supervisor: pid {proc.pid} (restarts a worker that dies; log {log})")


def supervisor_state(layout: Layout) -> dict[str, Any] | None:
    """What the supervisor last wrote: each program's workers, every pid it started."""
    try:
        return json.loads(layout.supervisor_state.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _wait_ready(layout: Layout, state: State, http: dict[str, str]) -> None:
    """Every worker serving, then every program's ``/ready`` answering 200."""
    supervisor = next(p for p in state.processes if p["kind"] == "supervisor")
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = dict(http)
    last: dict[str, str] = {}
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            if not is_ours(supervisor):
                raise RuntimeError(_failure(supervisor, "exited during start-up"))
            workers = (supervisor_state(layout) or {}).get("programs", {})
            for name, url in list(waiting.items()):
                states = [w["state"] for w in workers.get(name, {}).get("workers", [])]
                if "failed" in states:
                    raise RuntimeError(_failure(_log_entry(layout, name),
                                                "failed to start (the supervisor gave up)"))
                if not states or any(s != "serving" for s in states):
                    last[name] = f"workers {', '.join(states) or 'not started'}"
                    continue
                try:
                    response = client.get(url + "/ready")
                    if response.status_code == 200:
                        del waiting[name]
                        continue
                    last[name] = f"/ready answered {response.status_code}: {response.text}"
                except httpx.HTTPError as exc:
                    last[name] = f"/ready unreachable: {type(exc).__name__}"
            if waiting and time.monotonic() > deadline:
                failures = [_failure(_log_entry(layout, n), f"not ready after "
                                     f"{READY_TIMEOUT_S:.0f} s ({last.get(n, '')})")
                            for n in waiting]
                raise RuntimeError("\n".join(failures))
            if waiting:
                time.sleep(0.2)


def _log_entry(layout: Layout, name: str) -> dict[str, Any]:
    return {"name": name, "log": str(layout.logs.resolve() / f"{name}.log")}


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
        elif entry["kind"] == "supervisor":
            _stop_supervisor(entry)
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


def _stop_supervisor(entry: dict[str, Any]) -> None:
    """SIGTERM the supervisor, which stops its workers; then SIGKILL any process it ever
    started that still runs in its process group (one that outlived a killed supervisor)."""
    pid = int(entry["pid"])
    if is_ours(entry):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, SUPERVISOR_STOP_TIMEOUT_S):
            out(f"supervisor (pid {pid}) did not stop: killing it and its workers")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    try:
        started = json.loads(Path(entry["state"]).read_text())["started_pids"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        started = []
    left = [p for p in started if _alive(p) and _process_group(p) == pid]
    for worker in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
    for worker in left:
        _wait_gone(worker, STOP_TIMEOUT_S)
    extra = f"; killed {len(left)} left over" if left else ""
    out(f"stopped supervisor (pid {pid}) and the {len(started)} worker processes it "
        f"started{extra}")


def _process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


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
            out(f"{entry['name']:<10} pid {entry['pid']:<8} {'running' if alive else 'DEAD':<8} "
                f"{where}")
            if entry["kind"] == "supervisor" and alive:
                running = _status_workers(layout, client) and running
    if layout.env.exists():
        out(f"\n{layout.env}:\n{layout.env.read_text().rstrip()}")
    return 0 if running else 1


def _status_workers(layout: Layout, client: httpx.Client) -> bool:
    """Each program's readiness and its workers' pids, states and restarts."""
    programs = (supervisor_state(layout) or {}).get("programs", {})
    healthy = True
    for name, program in programs.items():
        try:
            code = client.get(program["url"] + "/ready").status_code
            ready = "ready" if code == 200 else f"not ready ({code})"
        except httpx.HTTPError as exc:
            ready = f"unreachable ({type(exc).__name__})"
        healthy = healthy and ready == "ready"
        out(f"  {name:<8} {program['url']} {ready}")
        for w in program["workers"]:
            healthy = healthy and w["state"] == "serving"
            out(f"    worker {w['index']}: pid {w['pid']}, {w['state']}, "
                f"{w['restarts']} restart{'' if w['restarts'] == 1 else 's'}")
    return healthy


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
