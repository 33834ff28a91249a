"""Income posting over HTTP against its floor, measured in the same run.

``make bench`` (or ``uv run python bench/income.py``) starts, on loopback only:

- a fresh PostgreSQL cluster with **durable settings** (``start_postgres(detached=True)``:
  fsync and synchronous_commit on; the test-suite mode turns both off), stopped and
  deleted at the end;
- a single-node Kafka with topic ``ipshare.events.v1``;
- the ipshare service as N single-process uvicorn servers (N=2 by default, the box's
  cores), each on its own port (``_servers.py``), relay and consumers on,
  ``IPSHARE_LOG_LEVEL=WARNING``, ``--log-level warning``; the client spreads its
  connections over them round-robin.

It seeds over HTTP (one asset with 3 authors, one licence agreement per client
connection so the agreement's row lock does not serialise the run, a 30 % net policy),
then posts incomes with a real JWT (``DevIssuer``), a unique ``Idempotency-Key`` and a
unique reference per request, at concurrency 1 and 16. The floor's and the service's
phases run in interleaved rounds (3 by default) and are pooled.

The **floor** is measured in the same run: the very rows one posting wrote (copied from
the service's database: distribution, lines, ledger entries, audit record, outbox row,
idempotency record, with fresh ids) written by a bare psycopg loop, one transaction per
income, into a separate database migrated the same way; at 1 connection (its p50) and on
N connections at once (N = the service's workers), each in its own process.

Commit→ack lag: every outbox row's ``created_at`` (the unit of work's ``now``, taken
when the request starts, i.e. *before* the commit) against its ``sent_at`` (stamped by
the relay right after the broker acknowledged the batch). It is therefore an upper bound
of commit→ack that includes the request's own service time.

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio (uvloop): httpx
costs 1–3 ms CPU a request (architecture.md), which on 2 cores would be taken from the
service being measured. The CPU every component used in each phase is printed.

Every process started here is stopped on exit, on Ctrl-C and on SIGTERM (not on
SIGKILL: PostgreSQL runs in its own session so that Ctrl-C cannot stop it before the
bench does).

``--profile DIR`` runs each uvicorn server under cProfile (thread CPU time) and dumps
per-worker stats for the event loop's thread and for the thread pool; see README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INST = "HUST"
AUTHORS = [
    {"researcher_id": "r-an", "name": "Nguyễn Văn An", "contribution_bp": 5000},
    {"researcher_id": "r-binh", "name": "Trần Thị Bình", "contribution_bp": 3000},
    {"researcher_id": "r-cuong", "name": "Lê Văn Cường", "contribution_bp": 2000},
]
TOPIC = "ipshare.events.v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- CPU


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds) for every process we can read."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # utime + stime, and cutime + cstime: children that exited (floor connections'
        # backends, say) are added to their parent when reaped.
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        table[int(entry)] = (int(fields[1]), ticks / CLK_TCK)
    return table


def tree_cpu(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its live descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[str, float] = {}
    for name, root in roots.items():
        total, stack = 0.0, [root] if root else []
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children.get(pid, []))
        result[name] = total
    return result


def system_cpu() -> tuple[float, float]:
    """(busy, iowait) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, iowait / CLK_TCK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Everything this run started, stopped in reverse order exactly once."""

    root: Path
    pg: Any = None
    kafka: Any = None
    service: subprocess.Popen[bytes] | None = None
    workers: list[int] = field(default_factory=list)  # the servers' pids
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.service is not None and self.service.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.service.pid, signal.SIGTERM)  # master and its workers
            try:
                self.service.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.service.pid, signal.SIGKILL)
                self.service.wait()
        if self.kafka is not None:
            with contextlib.suppress(Exception):
                self.kafka.stop()
        if self.pg is not None:
            try:
                self.pg.stop()  # pg_ctl -m fast stop
            except Exception as exc:  # noqa: BLE001 - fall back to a signal
                out(f"pg_ctl stop failed ({exc}); sending the postmaster SIGINT")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pg.pid, signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)


def _sigterm(_signum: int, _frame: Any) -> None:
    """The first SIGTERM unwinds into the clean-up; later ones (``uv run`` passes its own
    on, so a ``pkill`` sends two) must not interrupt it and leave servers running."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(143)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- HTTP client


class Http:
    """One keep-alive HTTP/1.1 connection; just enough for JSON requests to uvicorn."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}",
                f"content-length: {len(payload)}"]
        if body is not None:
            head.append("content-type: application/json")
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = None
        close = False
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise RuntimeError(f"response without content-length: {raw!r}")
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, 201s only
    errors: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies)


async def post_incomes(ports: list[int], token: str, agreements: list[str], concurrency: int,
                       seconds: float, seq: list[int]) -> LoadResult:
    """``concurrency`` connections posting incomes back to back for ``seconds``; connection
    *i* goes to the server on ``ports[i % len(ports)]`` (round-robin, as a load balancer
    spreading connections over replicas)."""
    auth = f"Bearer {token}"
    result = LoadResult(seconds=seconds)
    conns = [Http("127.0.0.1", ports[i % len(ports)]) for i in range(concurrency)]
    for c in conns:
        await c.open()
    rng = random.Random(concurrency)

    async def client(i: int, stop_at: float) -> None:
        conn = conns[i]
        path = f"/v1/agreements/{agreements[i % len(agreements)]}/income"
        while time.perf_counter() < stop_at:
            seq[0] += 1
            gross = rng.randrange(1_000_000, 10_000_000_000)
            body = {"period": "2026-Q4", "gross_vnd": gross, "costs_vnd": gross // 10,
                    "reference": f"BENCH-{seq[0]:09d}-{uuid.uuid4().hex[:8]}"}
            headers = {"authorization": auth, "idempotency-key": uuid.uuid4().hex}
            t0 = time.perf_counter()
            try:
                status, data = await conn.request("POST", path, headers, body)
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                key = type(exc).__name__
                result.errors[key] = result.errors.get(key, 0) + 1
                await conn.close()
                continue
            elapsed = time.perf_counter() - t0
            if status == 201:
                result.latencies.append(elapsed)
            else:
                key = f"HTTP {status}"
                if key not in result.errors:
                    out(f"  unexpected {status}: {data[:300]!r}")
                result.errors[key] = result.errors.get(key, 0) + 1

    result.started_at = datetime.now(UTC)
    t_start = time.perf_counter()
    await asyncio.gather(*(client(i, t_start + seconds) for i in range(concurrency)))
    result.seconds = time.perf_counter() - t_start
    result.ended_at = datetime.now(UTC)
    for c in conns:
        await c.close()
    return result


def run_load(ports: list[int], token: str, agreements: list[str], concurrency: int,
             seconds: float, seq: list[int]) -> LoadResult:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    return runner(post_incomes(ports, token, agreements, concurrency, seconds, seq))


# --------------------------------------------------------------------------- floor

# Tables one posting writes, in the order the service writes them; id columns that the
# database assigns (bigserial) are left out.
FLOOR_TABLES = ["distributions", "distribution_lines", "ledger_entries", "audit_log",
                "outbox", "idempotency_keys"]
SERIAL_ID_TABLES = {"ledger_entries", "audit_log", "outbox"}


def capture_template(dsn: str) -> dict[str, Any]:
    """The rows the service wrote for its most recent distribution."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        dist = conn.execute(
            "SELECT * FROM distributions ORDER BY created_at DESC LIMIT 1").fetchone()
        assert dist is not None, "the service wrote no distribution"
        did = dist["id"]
        rows = {
            "distributions": [dist],
            "distribution_lines": conn.execute(
                "SELECT * FROM distribution_lines WHERE distribution_id = %s ORDER BY seq",
                (did,)).fetchall(),
            "ledger_entries": conn.execute(
                "SELECT * FROM ledger_entries WHERE posting_id = %s ORDER BY seq",
                (did,)).fetchall(),
            "audit_log": conn.execute(
                "SELECT * FROM audit_log WHERE aggregate_type = 'distribution'"
                " AND aggregate_id = %s", (did,)).fetchall(),
            "outbox": conn.execute("SELECT * FROM outbox WHERE key = %s", (did,)).fetchall(),
            "idempotency_keys": conn.execute(
                "SELECT * FROM idempotency_keys WHERE body LIKE %s",
                (f"%{did}%",)).fetchall(),
        }
        for table, found in rows.items():
            assert found, f"no {table} row for distribution {did}"
        for table in SERIAL_ID_TABLES:
            for r in rows[table]:
                r.pop("id")
        parents = {
            "assets": conn.execute("SELECT * FROM assets WHERE id = %s",
                                   (dist["asset_id"],)).fetchall(),
            "asset_authors": conn.execute("SELECT * FROM asset_authors WHERE asset_id = %s",
                                          (dist["asset_id"],)).fetchall(),
            "agreements": conn.execute("SELECT * FROM agreements WHERE id = %s",
                                       (dist["agreement_id"],)).fetchall(),
        }
    return {"rows": rows, "parents": parents, "dist_id": did,
            "reference": dist["reference"]}


def _adapt(value: Any) -> Any:
    from psycopg.types.json import Json

    return Json(value) if isinstance(value, dict | list) else value


def _insert_sql(table: str, columns: list[str]) -> str:
    cols = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO {table} ({cols}) VALUES ({", ".join(["%s"] * len(columns))})'


def copy_parents(dsn: str, template: dict[str, Any]) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        for table in ("assets", "asset_authors", "agreements"):
            for row in template["parents"][table]:
                conn.execute(_insert_sql(table, list(row)), [_adapt(v) for v in row.values()])


class FloorWriter:
    """Writes one income's rows, with fresh ids, in one transaction per call."""

    def __init__(self, dsn: str, template: dict[str, Any]) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn)
        self.old_id: str = template["dist_id"]
        self.old_ref: str = template["reference"]
        self.statements = []
        for table in FLOOR_TABLES:
            rows = template["rows"][table]
            columns = list(rows[0])
            self.statements.append((_insert_sql(table, columns), columns, rows))

    def _fresh(self, value: Any, new_id: str, new_ref: str) -> Any:
        if isinstance(value, str):
            if self.old_id in value or self.old_ref in value:
                return value.replace(self.old_id, new_id).replace(self.old_ref, new_ref)
            return value
        if isinstance(value, dict):
            return {k: self._fresh(v, new_id, new_ref) for k, v in value.items()}
        return value

    def write_one(self, n: int) -> None:
        from psycopg.types.json import Json

        new_id = str(uuid.uuid4())
        new_ref = f"FLOOR-{n:09d}-{new_id[:8]}"[: len(self.old_ref)].ljust(len(self.old_ref), "x")
        now = datetime.now(UTC)
        cur = self.conn.cursor()
        for sql, columns, rows in self.statements:
            params = []
            for row in rows:
                values = []
                for col in columns:
                    v = row[col]
                    if col in ("created_at", "at"):
                        v = now
                    elif col == "sent_at":
                        v = None
                    elif col == "event_id":
                        v = str(uuid.uuid4())
                    elif col == "key" and "route" in row:  # the idempotency key
                        v = uuid.uuid4().hex
                    else:
                        v = self._fresh(v, new_id, new_ref)
                    values.append(Json(v) if isinstance(v, dict) else v)
                params.append(values)
            if len(params) == 1:
                cur.execute(sql, params[0])
            else:
                cur.executemany(sql, params)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _floor_worker(dsn: str, template: dict[str, Any], worker: int, start_at: float,
                  stop_at: float, results: Any) -> None:
    writer = FloorWriter(dsn, template)
    n = worker * 10_000_000
    while time.monotonic() < start_at:  # warm-up, not counted
        n += 1
        writer.write_one(n)
    cpu0 = time.process_time()
    latencies = []
    while time.monotonic() < stop_at:
        n += 1
        t0 = time.perf_counter()
        writer.write_one(n)
        latencies.append(time.perf_counter() - t0)
    results.put((latencies, time.process_time() - cpu0))
    writer.close()


@dataclass
class FloorResult:
    connections: int
    seconds: float
    latencies: list[float]
    cpu: float  # seconds of the writer processes

    @property
    def tx_per_s(self) -> float:
        return len(self.latencies) / self.seconds


def run_floor(dsn: str, template: dict[str, Any], connections: int, seconds: float,
              warmup: float = 1.0) -> FloorResult:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start_at = time.monotonic() + 1.5 + warmup  # processes start within 1.5 s
    stop_at = start_at + seconds
    procs = [ctx.Process(target=_floor_worker,
                         args=(dsn, template, i, start_at, stop_at, results), daemon=True)
             for i in range(connections)]
    for p in procs:
        p.start()
    latencies: list[float] = []
    cpu = 0.0
    try:
        for _ in procs:
            lat, used = results.get(timeout=seconds + warmup + 30)
            latencies += lat
            cpu += used
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    return FloorResult(connections, seconds, latencies, cpu)


def pooled_floor(results: list[FloorResult]) -> FloorResult:
    """Several rounds of one floor phase as one: their transactions over their time."""
    return FloorResult(results[0].connections, sum(r.seconds for r in results),
                       [x for r in results for x in r.latencies], sum(r.cpu for r in results))


def pooled_load(results: list[LoadResult]) -> LoadResult:
    """Several rounds of one service phase as one (errors added up)."""
    pooled = LoadResult(seconds=sum(r.seconds for r in results),
                        latencies=[x for r in results for x in r.latencies])
    for r in results:
        for k, v in r.errors.items():
            pooled.errors[k] = pooled.errors.get(k, 0) + v
    return pooled


# --------------------------------------------------------------------------- set-up


def scratch_root(prefix: str) -> Path:
    """A fresh folder under /tmp for one run's servers and data."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o755)  # traversable by the unprivileged PostgreSQL user
    return root


def officer_token(key_dir: Path) -> str:
    """A real JWT of an institution officer of ``INST``, signed with the dev key in
    ``key_dir`` (created if missing), which the servers verify."""
    from servicekit.devtokens import DevIssuer, ensure_dev_keys

    ensure_dev_keys(key_dir)
    return DevIssuer(key_dir).issue("off-bench", name="Bench Officer", org=INST,
                                    roles=["institution"])


def start_infrastructure(procs: Processes) -> None:
    """A durable PostgreSQL and a Kafka with the topics the service uses, in ``procs``."""
    from devkit.localservers import start_kafka, start_postgres

    t0 = time.perf_counter()
    # detached=True: fsync and synchronous_commit stay on (the test mode turns them off);
    # we stop it ourselves.
    procs.pg = start_postgres(base_dir=procs.root, detached=True)
    out(f"PostgreSQL {procs.pg.host}:{procs.pg.port} (fsync on, synchronous_commit on), "
        f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    procs.kafka = start_kafka(base_dir=procs.root)
    for topic in (TOPIC, "ipshare.deadletter.v1", "grants.events.v1"):
        procs.kafka.create_topic(topic, partitions=3)
    out(f"Kafka {procs.kafka.bootstrap}, {time.perf_counter() - t0:.1f} s")


def service_env(procs: Processes, db: str, key_dir: Path) -> dict[str, str]:
    """The servers' environment: database ``db``, the Kafka, the dev keys, quiet logs."""
    return {
        **os.environ,
        "IPSHARE_DATABASE_URL": procs.pg.url(db),
        "IPSHARE_KAFKA_BOOTSTRAP": procs.kafka.bootstrap,
        "IPSHARE_DEV_KEY_DIR": str(key_dir),
        "IPSHARE_MIGRATE_ON_START": "false",
        "IPSHARE_LOG_LEVEL": "WARNING",
    }


def launch_servers(factory: str, ports: list[int], env: dict[str, str],
                   log_path: Path) -> subprocess.Popen[bytes]:
    """Single-process uvicorn servers for ``factory``, one per port (``_servers.py``: how
    connections fall on a shared socket or port is otherwise left to chance), in a
    session of their own."""
    cmd = [sys.executable, str(Path(__file__).parent / "_servers.py"), factory,
           ",".join(map(str, ports))]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def start_servers(procs: Processes, workers: int, key_dir: Path,
                  profile_dir: Path | None) -> tuple[str, str, list[int]]:
    from ipshare.app import migrate
    from servicekit.devtokens import ensure_dev_keys

    start_infrastructure(procs)
    for db in ("ipshare", "floor"):
        procs.pg.create_database(db)
        migrate(procs.pg.url(db))
    ensure_dev_keys(key_dir)

    ports = [free_port() for _ in range(workers)]
    env = service_env(procs, "ipshare", key_dir)
    factory = "ipshare.app:create_app"
    if profile_dir is not None:
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        factory = "income:profiled_app"
    procs.service = launch_servers(factory, ports, env, procs.root / "ipshare.log")
    for port in ports:
        wait_ready(procs, port)
    procs.workers = server_pids(procs.service.pid)
    return procs.pg.dsn("ipshare"), procs.pg.dsn("floor"), ports


def server_pids(launcher: int) -> list[int]:
    """The launcher's uvicorn servers (its children but multiprocessing's tracker)."""
    pids = []
    for pid, (ppid, _) in sorted(_proc_table().items()):
        if ppid == launcher:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                pids.append(pid)
    return pids


def wait_ready(procs: Processes, port: int, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            assert procs.service is not None
            if procs.service.poll() is not None:
                raise RuntimeError("the service exited:\n" + service_log(procs))
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the service is not ready:\n" + service_log(procs))
            time.sleep(0.2)


def service_log(procs: Processes) -> str:
    path = procs.root / "ipshare.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def seed(port: int, token: str, agreements: int) -> list[str]:
    import httpx

    auth = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as c:
        r = c.put(f"/v1/institutions/{INST}/policy", headers=auth,
                  json={"researcher_share_bp": 3000, "basis": "net"})
        r.raise_for_status()
        r = c.post("/v1/assets", headers=auth, json={
            "kind": "patent", "title": "Salinity sensor for the Mekong delta",
            "authors": AUTHORS, "source_grant_id": None})
        r.raise_for_status()
        asset = r.json()["id"]
        ids = []
        for i in range(agreements):
            r = c.post(f"/v1/assets/{asset}/agreements", headers=auth, json={
                "kind": "licence", "counterparty": f"Licensee {i}",
                "signed_on": "2026-11-01", "terms": "5% royalty on net sales"})
            r.raise_for_status()
            ids.append(r.json()["id"])
    return ids


def wait_drained(dsn: str, timeout: float = 30.0) -> int:
    """Wait until the relay has published every outbox row; returns how many are left."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            left = row[0] if row else 0
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


def lag_for(dsn: str, start: datetime, end: datetime) -> list[float]:
    """created_at → sent_at of every outbox row staged between ``start`` and ``end``."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM sent_at - created_at) FROM outbox"
            " WHERE created_at >= %s AND created_at < %s AND sent_at IS NOT NULL"
            " AND event_type LIKE %s", (start, end, "%distribution.posted%")).fetchall()
    return [float(r[0]) for r in rows]


def check_books(dsn: str) -> tuple[int, int, int]:
    """(distributions, ledger total, unbalanced postings) of the service's database."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM distributions").fetchone()
        total = conn.execute("SELECT coalesce(sum(amount_vnd), 0) FROM ledger_entries"
                             ).fetchone()
        bad = conn.execute("SELECT count(*) FROM (SELECT posting_id FROM ledger_entries"
                           " GROUP BY posting_id HAVING sum(amount_vnd) <> 0) x").fetchone()
    return (n[0] if n else 0), int(total[0] if total else 0), (bad[0] if bad else 0)


# --------------------------------------------------------------------------- profiling


def profiled_app() -> Any:
    """uvicorn factory for ``--profile``: the real app, each worker under cProfile.

    The event loop's thread and every thread started after start-up (the thread pool
    running the sync endpoints and dependencies) get a profiler; each worker dumps
    ``$BENCH_PROFILE_DIR/worker-<pid>-loop.prof`` and ``worker-<pid>-threads.prof`` at
    shutdown (view with ``python -m pstats``).
    """
    import cProfile
    import pstats
    import threading

    from ipshare.app import create_app

    app = create_app()
    # CPU time of each thread, not wall time: waiting for the GIL or the database
    # would otherwise show as cost of whatever call was waiting.
    main_profiler = cProfile.Profile(time.thread_time)
    thread_profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profiler(*_args: Any) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            thread_profilers.append(profiler)
        profiler.enable()  # replaces this hook for the calling thread

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> Any:
        async with inner(a) as state:
            threading.setprofile(start_thread_profiler)
            main_profiler.enable()
            try:
                yield state
            finally:
                threading.setprofile(None)  # type: ignore[arg-type]
                main_profiler.disable()
                directory = Path(os.environ["BENCH_PROFILE_DIR"])
                directory.mkdir(parents=True, exist_ok=True)
                pstats.Stats(main_profiler).dump_stats(
                    directory / f"worker-{os.getpid()}-loop.prof")
                with lock:
                    if thread_profilers:
                        stats = pstats.Stats(thread_profilers[0])
                        for profiler in thread_profilers[1:]:
                            stats.add(profiler)
                        stats.dump_stats(directory / f"worker-{os.getpid()}-threads.prof")

    app.router.lifespan_context = lifespan
    return app


# --------------------------------------------------------------------------- main


@dataclass
class Phase:
    name: str
    seconds: float
    cpu: dict[str, float]

    def cores(self, component: str) -> float:
        return self.cpu.get(component, 0.0) / self.seconds


def measure_cpu(procs: Processes, fn: Any) -> tuple[Any, Phase]:
    roots = {"service": procs.service.pid if procs.service else None,
             "postgres": procs.pg.pid if procs.pg else None,
             "kafka": procs.kafka.pid if procs.kafka else None,
             **{f"server {i}": pid for i, pid in enumerate(procs.workers)}}
    before, self_before, sys_before = tree_cpu(roots), self_cpu(), system_cpu()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    after, self_after, sys_after = tree_cpu(roots), self_cpu(), system_cpu()
    cpu = {k: after[k] - before[k] for k in roots}
    cpu["bench"] = self_after - self_before
    cpu["machine"] = sys_after[0] - sys_before[0]
    cpu["iowait"] = sys_after[1] - sys_before[1]
    return result, Phase("", seconds, cpu)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="uvicorn server processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="the service at --concurrency (default 20)")
    parser.add_argument("--seconds-c1", type=float, default=10.0,
                        help="the service and the floor at concurrency 1 (default 10)")
    parser.add_argument("--floor-seconds", type=float, default=12.0,
                        help="the floor on --workers connections (default 12)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the four phases; each phase's time "
                             "is split over them (default 3)")
    parser.add_argument("--agreements", type=int, default=0,
                        help="agreements to post on (default: one per connection)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the workers under cProfile, dump stats to this folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the results (markdown) to this file")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _sigterm)
    root = scratch_root("most-bench-")
    procs = Processes(root=root)
    atexit.register(procs.stop)
    started = time.perf_counter()
    try:
        return _run(args, procs, started)
    except KeyboardInterrupt:
        out("\ninterrupted: stopping everything started")
        return 130
    finally:
        procs.stop()
        out(f"stopped every process started; total {time.perf_counter() - started:.0f} s")


def _run(args: argparse.Namespace, procs: Processes, started: float) -> int:
    key_dir = procs.root / "dev-keys"
    out(f"income bench: {args.workers} uvicorn servers, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}")
    service_dsn, floor_dsn, ports = start_servers(procs, args.workers, key_dir, args.profile)
    token = officer_token(key_dir)
    n_agreements = args.agreements or args.concurrency
    agreements = seed(ports[0], token, n_agreements)
    out(f"service on 127.0.0.1 ports {', '.join(map(str, ports))}; seeded 1 asset (3 "
        f"authors), {n_agreements} licence agreements; set-up "
        f"{time.perf_counter() - started:.0f} s")

    seq = [0]
    warm = run_load(ports, token, agreements, args.concurrency, 3.0, seq)
    if not warm.ok:
        raise RuntimeError(f"warm-up posted nothing: {warm.errors}\n{service_log(procs)}")
    template = capture_template(service_dsn)
    copy_parents(floor_dsn, template)
    out(f"warm-up: {warm.ok} incomes; floor template: "
        + ", ".join(f"{len(template['rows'][t])} {t}" for t in FLOOR_TABLES))

    # The four phases run in interleaved rounds, so that the floor and the service are
    # measured over the same stretch of time: on a shared VM the machine's speed drifts
    # by tens of percent within minutes, and a ratio of figures taken minutes apart
    # measures the drift as much as the service.
    phases: dict[str, Phase] = {}
    rounds: dict[str, list[Any]] = {}

    def phase(name: str, fn: Any) -> None:
        result, p = measure_cpu(procs, fn)
        rounds.setdefault(name, []).append(result)
        total = phases.setdefault(name, Phase(name, 0.0, {}))
        total.seconds += p.seconds
        for k, v in p.cpu.items():
            total.cpu[k] = total.cpu.get(k, 0.0) + v

    n = args.rounds
    # The floor's two phases keep distinct names when --workers is 1.
    f1, fn_, s1, sn = ("floor c=1", f"floor on {args.workers} conns", "service c=1",
                       f"service c={args.concurrency}")
    for r in range(n):
        out(f"round {r + 1} of {n}: {f1}, {fn_}, {s1}, {sn}...")
        phase(f1, lambda: run_floor(floor_dsn, template, 1, args.seconds_c1 / n))
        phase(fn_, lambda: run_floor(floor_dsn, template, args.workers, args.floor_seconds / n))
        phase(s1, lambda: run_load(ports, token, agreements, 1, args.seconds_c1 / n, seq))
        phase(sn, lambda: run_load(ports, token, agreements, args.concurrency,
                                   args.seconds / n, seq))
    floor1, floorn = pooled_floor(rounds[f1]), pooled_floor(rounds[fn_])
    svc1, svcn = pooled_load(rounds[s1]), pooled_load(rounds[sn])

    left = wait_drained(service_dsn)
    lag1 = [x for r in rounds[s1] for x in lag_for(service_dsn, r.started_at, r.ended_at)]
    lagn = [x for r in rounds[sn] for x in lag_for(service_dsn, r.started_at, r.ended_at)]
    n_dist, ledger_total, unbalanced = check_books(service_dsn)
    expected = warm.ok + svc1.ok + svcn.ok
    per_round = [
        ((sv.ok / sv.seconds) / fl.tx_per_s,
         statistics.median(s1r.latencies) / statistics.median(f1r.latencies)
         if s1r.latencies and f1r.latencies else float("nan"))
        for fl, sv, f1r, s1r in zip(rounds[fn_], rounds[sn], rounds[f1], rounds[s1],
                                    strict=True)]

    svc_rate = svcn.ok / svcn.seconds
    floor_p50 = statistics.median(floor1.latencies)
    svc_p50 = statistics.median(svc1.latencies) if svc1.latencies else float("nan")
    lines = [
        f"## Income bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, ipshare as "
        f"{args.workers} single-process uvicorn servers (one port each, client connections "
        "spread round-robin), PostgreSQL fsync on, Kafka acks=all; "
        f"floor on {args.workers} connections; service at concurrency {args.concurrency} "
        f"on {n_agreements} agreements; {args.rounds} interleaved rounds of the four "
        "phases, pooled.",
        "",
        "| measure | floor (bare psycopg) | service (HTTP) | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| sustained tx/s, floor on {args.workers} conns vs service at c={args.concurrency} "
        f"| {floorn.tx_per_s:.0f} | {svc_rate:.0f} | {svc_rate / floorn.tx_per_s:.2f}× "
        f"| ≥ 0.6× |",
        f"| tx/s at c=1 | {floor1.tx_per_s:.0f} | {svc1.ok / svc1.seconds:.0f} "
        f"| {(svc1.ok / svc1.seconds) / floor1.tx_per_s:.2f}× | |",
        f"| p50 ms at c=1 | {ms(floor_p50)} | {ms(svc_p50)} | {svc_p50 / floor_p50:.2f}× "
        f"| ≤ 2× |",
        f"| p99 ms at c=1 | {ms(pct(floor1.latencies, 0.99))} "
        f"| {ms(pct(svc1.latencies, 0.99))} | | |",
        f"| p50 ms at c={args.concurrency} (floor: c={args.workers}) "
        f"| {ms(statistics.median(floorn.latencies))} "
        f"| {ms(pct(svcn.latencies, 0.5))} | | |",
        f"| p99 ms at c={args.concurrency} (floor: c={args.workers}) "
        f"| {ms(pct(floorn.latencies, 0.99))} | {ms(pct(svcn.latencies, 0.99))} | | |",
        f"| commit→ack lag ms p50 / p99, c=1 | | {ms(pct(lag1, 0.5))} / {ms(pct(lag1, 0.99))}"
        " | | |",
        f"| commit→ack lag ms p50 / p99, c={args.concurrency} | "
        f"| {ms(pct(lagn, 0.5))} / {ms(pct(lagn, 0.99))} | | |",
        "",
        "CPU used per phase (cores = CPU seconds / wall seconds; `bench` is the load "
        "generator, or the floor's writer processes; `other processes` is the rest of the "
        "machine's busy time, i.e. whatever else runs on the box):",
        "",
        "| phase | wall s | requests | service | postgres | kafka | bench | other "
        "processes | iowait |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    counts = {f1: len(floor1.latencies), fn_: len(floorn.latencies),
              s1: svc1.ok, sn: svcn.ok}
    for name, p in phases.items():
        bench_cpu = p.cpu["bench"]
        if name.startswith("floor"):
            bench_cpu += (floor1 if name == f1 else floorn).cpu
        ours = sum(p.cpu[k] for k in ("service", "postgres", "kafka")) + bench_cpu
        lines.append(f"| {name} | {p.seconds:.1f} | {counts[name]} | {p.cores('service'):.2f} "
                     f"| {p.cores('postgres'):.2f} | {p.cores('kafka'):.2f} "
                     f"| {bench_cpu / p.seconds:.2f} "
                     f"| {max(0.0, p.cpu['machine'] - ours) / p.seconds:.2f} "
                     f"| {p.cores('iowait'):.2f} |")
    servers = [k for k in phases[sn].cpu if k.startswith("server ")]

    def ms_each(name: str, component: str) -> str:
        n = counts[name]
        return f"{phases[name].cpu[component] * 1000 / n:.2f}" if n else "-"

    def per_income(name: str) -> str:
        return " / ".join(ms_each(name, k) for k in ("service", "postgres", "kafka"))

    lines += [
        "",
        f"CPU per income, service / PostgreSQL / Kafka, ms: {per_income('service c=1')} "
        f"at c=1, {per_income(sn)} at c={args.concurrency}; the floor's PostgreSQL, "
        f"counted the same way (every PostgreSQL process, WAL writer included): "
        f"{ms_each(f1, 'postgres')} at c=1, {ms_each(fn_, 'postgres')} at c={args.workers}.",
        f"Service CPU by server process at c={args.concurrency} "
        f"({args.concurrency // args.workers} or more connections each): "
        + " / ".join(f"{phases[sn].cores(k):.2f}" for k in servers)
        + " cores.",
        "Ratios round by round (throughput at c=" + str(args.concurrency) + "; p50 at c=1): "
        + "; ".join(f"{t:.2f}×, {p:.2f}×" for t, p in per_round) + ".",
    ]
    errors = {**warm.errors}
    for r in (svc1, svcn):
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    lines += [
        "",
        f"Checks: {n_dist} distributions for {expected} 201 answers; ledger total "
        f"{ledger_total} đồng, {unbalanced} unbalanced postings; {left} outbox rows unsent "
        f"after the drain; errors: {errors or 'none'}.",
        "Lag is outbox created_at (request start, before the commit) → sent_at (stamped "
        "after the broker ack): an upper bound of commit→ack.",
    ]
    out()
    for line in lines:
        out(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        out(f"\nwritten to {args.out}")
    ok = n_dist == expected and ledger_total == 0 and unbalanced == 0 and left == 0
    if not ok:
        out("CHECKS FAILED")
    if args.profile:
        out(f"profiles in {args.profile} (written when the workers stop)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
