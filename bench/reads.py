"""Reads over HTTP against a bare FastAPI + psycopg app, measured in the same run.

``make bench`` (or ``uv run python bench/reads.py``) starts, on loopback only:

- a fresh PostgreSQL cluster (``start_postgres(detached=True)``: fsync on) with the
  ``ipshare`` and ``grants`` databases, migrated, and a single-node Kafka with the
  services' topics, stopped and deleted at the end;
- ipshare and grants as one uvicorn process each, configured as ``make stack``
  configures its workers (devkit/stack.py, devkit/serve.py): its environment,
  uvicorn's logging at ``info`` (an access-log line per request), the services' JSON
  logs at INFO, tracing (the SDK tracer provider, a server span per request),
  Prometheus metrics, the relay and the consumers running;
- the baseline, ``_bare.py``: a bare FastAPI app on an ``AsyncConnectionPool`` under
  the same uvicorn settings, reading the same rows from the same databases.

It seeds over HTTP with real JWTs (one distribution with its 4 lines; one grant with its
team of 2 and 3 milestones, through call, application, reviews and decision), checks
that the bare app answers the same JSON as the services, then measures, at a fixed
number of keep-alive connections (16 by default), requests per second of

- ``GET /health``: ipshare's and grants' against the bare app's;
- ``GET /v1/distributions/{id}``: ipshare against the bare app;
- ``GET /v1/grants/{id}``: grants against the bare app.

Each pair runs in interleaved rounds (the baseline first in odd rounds, second in even
ones) of a few seconds; a pair's ratio is the median of its rounds' ratios (on this
shared VM the machine's speed drifts by tens of percent within minutes, so only
figures taken seconds apart are compared). The load generator is ``_load.py``'s
callback-based HTTP/1.1 client on uvloop in this process (no per-request coroutine: it
needs a few tens of microseconds a request); its CPU is printed per phase, with the servers',
PostgreSQL's and the rest of the machine's.

Every process started here is stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _load import Phase, Target, drive, get_request
from income import _proc_table, free_port, out, pct, scratch_root, self_cpu, system_cpu, tree_cpu

BENCH_DIR = Path(__file__).resolve().parent
INSTITUTION, AGENCY = "HUST", "MOST"
SERVICES = ("ipshare", "grants")


# --------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Everything this run started, stopped in reverse order exactly once."""

    root: Path
    pg: Any = None
    kafka: Any = None
    launchers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for proc in self.launchers.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.launchers.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.kafka is not None:
            with contextlib.suppress(Exception):
                self.kafka.stop()
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as exc:  # noqa: BLE001 - fall back to a signal
                out(f"pg_ctl stop failed ({exc}); sending the postmaster SIGINT")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pg.pid, signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)


def launch(procs: Processes, name: str, factory: str, env: dict[str, str]) -> int:
    """One uvicorn process for ``factory`` (``_servers.py``, uvicorn's logging at
    ``info`` as under ``make stack``), in a session of its own; returns its port."""
    port = free_port()
    cmd = [sys.executable, str(BENCH_DIR / "_servers.py"), factory, str(port), "info"]
    log = open(procs.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    procs.launchers[name] = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    return port


def wait_ready(procs: Processes, name: str, port: int, path: str,
               timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if procs.launchers[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{procs.log(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://127.0.0.1:{port}{path}").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} is not ready:\n{procs.log(name)}")
            time.sleep(0.2)


def server_pid(launcher: int) -> int:
    """The launcher's one uvicorn server process."""
    for pid, (ppid, _) in sorted(_proc_table().items()):
        if ppid == launcher and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError(f"no server under launcher {launcher}")


def start(procs: Processes) -> dict[str, int]:
    """PostgreSQL, Kafka, the two services and the bare app; their ports by name."""
    from devkit.localservers import start_kafka, start_postgres
    from grants.app import migrate as migrate_grants
    from ipshare.app import migrate as migrate_ipshare
    from servicekit.devtokens import ensure_dev_keys

    t0 = time.perf_counter()
    procs.pg = start_postgres(base_dir=procs.root, detached=True)
    procs.kafka = start_kafka(base_dir=procs.root)
    for svc in SERVICES:
        procs.kafka.create_topic(f"{svc}.events.v1", partitions=3)
        procs.kafka.create_topic(f"{svc}.deadletter.v1", partitions=3)
    for svc, migrate in (("ipshare", migrate_ipshare), ("grants", migrate_grants)):
        procs.pg.create_database(svc)
        migrate(procs.pg.url(svc))
    key_dir = procs.root / "dev-keys"
    ensure_dev_keys(key_dir)
    out(f"PostgreSQL {procs.pg.host}:{procs.pg.port} (fsync on), Kafka "
        f"{procs.kafka.bootstrap}, migrated; {time.perf_counter() - t0:.0f} s")

    ports: dict[str, int] = {}
    for svc in SERVICES:
        prefix = svc.upper()
        # devkit/stack.py's environment for a service, nothing more.
        env = {**os.environ, f"{prefix}_DATABASE_URL": procs.pg.url(svc),
               f"{prefix}_KAFKA_BOOTSTRAP": procs.kafka.bootstrap,
               f"{prefix}_DEV_KEY_DIR": str(key_dir), f"{prefix}_MIGRATE_ON_START": "false"}
        ports[svc] = launch(procs, svc, f"{svc}.app:create_app", env)
    env = {**os.environ, "BARE_IPSHARE_DSN": procs.pg.dsn("ipshare"),
           "BARE_GRANTS_DSN": procs.pg.dsn("grants"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR),
                                                       os.environ.get("PYTHONPATH")]))}
    ports["bare"] = launch(procs, "bare", "_bare:create_app", env)
    for svc in SERVICES:
        wait_ready(procs, svc, ports[svc], "/ready")
    wait_ready(procs, "bare", ports["bare"], "/health")
    return ports


# --------------------------------------------------------------------------- seeding


def tokens(key_dir: Path) -> dict[str, str]:
    from servicekit.devtokens import DevIssuer

    issuer = DevIssuer(key_dir)
    cast = {"officer": ("off-bench", INSTITUTION, "institution"),
            "pm": ("pm-bench", AGENCY, "program_manager"),
            "lead": ("r-lead", INSTITUTION, "researcher"),
            "rev1": ("rev-1", "VAST", "reviewer"), "rev2": ("rev-2", "NAFOSTED", "reviewer")}
    return {who: issuer.issue(sub, name=sub, org=org, roles=[role])
            for who, (sub, org, role) in cast.items()}


def _ok(r: Any) -> Any:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r.json()


def seed_distribution(c: Any, token: str) -> str:
    """One income posted on one licence: a distribution with 4 lines (``c``: an
    ``httpx.Client`` on ipshare)."""
    auth = {"authorization": f"Bearer {token}"}
    _ok(c.put(f"/v1/institutions/{INSTITUTION}/policy", headers=auth,
              json={"researcher_share_bp": 3000, "basis": "net"}))
    asset = _ok(c.post("/v1/assets", headers=auth, json={
        "kind": "patent", "title": "Salinity sensor for the Mekong delta",
        "source_grant_id": None, "authors": [
            {"researcher_id": "r-an", "name": "Nguyễn Văn An", "contribution_bp": 5000},
            {"researcher_id": "r-binh", "name": "Trần Thị Bình", "contribution_bp": 3000},
            {"researcher_id": "r-cuong", "name": "Lê Văn Cường",
             "contribution_bp": 2000}]}))
    agreement = _ok(c.post(f"/v1/assets/{asset['id']}/agreements", headers=auth, json={
        "kind": "licence", "counterparty": "Licensee", "signed_on": "2026-11-01",
        "terms": "5% royalty on net sales"}))
    dist = _ok(c.post(f"/v1/agreements/{agreement['id']}/income",
                      headers={**auth, "idempotency-key": "bench-reads-1"},
                      json={"period": "2026-Q4", "gross_vnd": 1_234_567_890,
                            "costs_vnd": 123_456_789, "reference": "INV-BENCH-1"}))
    return dist["id"]


def seed_grant(c: Any, t: dict[str, str]) -> str:
    """A call, an application (team of 2, 3 milestones), two reviews, an award (``c``:
    an ``httpx.Client`` on grants)."""

    def h(who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {t[who]}"}

    now = datetime.now(UTC)
    call = _ok(c.post("/v1/calls", headers=h("pm"), json={
        "title": "Smart agriculture 2027", "budget_vnd": 3_000_000_000,
        "max_award_vnd": 1_000_000_001, "min_reviews": 2,
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=90)).isoformat()}))
    _ok(c.post(f"/v1/calls/{call['id']}/open", headers=h("pm")))
    due = [(now + timedelta(days=d)).date().isoformat() for d in (60, 180, 300)]
    app = _ok(c.post("/v1/applications", headers=h("lead"), json={
        "call_id": call["id"], "title": "Rice yield forecasting for the Mekong delta",
        "abstract": "Machine learning on satellite and field data.",
        "institution_id": INSTITUTION, "requested_vnd": 1_000_000_001,
        "risk_level": "high",
        "team": [{"researcher_id": "r-lead", "name": "Phạm Minh Lead", "role": "PI",
                  "contribution_bp": 7000},
                 {"researcher_id": "r-member", "name": "Đỗ Thu Member", "role": "member",
                  "contribution_bp": 3000}],
        "milestones": [{"title": f"Milestone {i + 1}", "deliverable": f"Deliverable {i + 1}",
                        "verification": "demonstration to the agency", "due_date": d,
                        "tranche_bp": bp} for i, (d, bp) in enumerate(
                            zip(due, (3333, 3333, 3334), strict=True))]}))
    _ok(c.post(f"/v1/applications/{app['id']}/submit", headers=h("lead")))
    for who in ("rev1", "rev2"):
        _ok(c.post(f"/v1/applications/{app['id']}/reviews", headers=h(who), json={
            "scores": {"novelty": 5, "feasibility": 4}, "recommendation": "fund",
            "comment": "solid", "conflict_of_interest": False}))
    decided = _ok(c.post(f"/v1/applications/{app['id']}/decision", headers=h("pm"),
                         json={"decision": "approve", "awarded_vnd": 1_000_000_001}))
    return decided["grant_id"]


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Read:
    """One GET to measure: where it goes and the token it carries."""

    name: str
    port: int
    path: str
    token: str | None

    def target(self, length: int) -> Target:
        """The load's target: this GET, answered 200 with a body of ``length`` bytes."""
        return Target(self.name, self.port, get_request(self.port, self.path, self.token),
                      200, length)


# --------------------------------------------------------------------------- phases


def measure(phase: Phase, roots: dict[str, int | None], connections: int,
            seconds: float) -> None:
    before, mine, machine = tree_cpu(roots), self_cpu(), system_cpu()[0]
    load = drive(phase.target, connections, seconds)
    after = tree_cpu(roots)
    used = {k: after[k] - before[k] for k in roots}
    used["bench"] = self_cpu() - mine
    used["machine"] = system_cpu()[0] - machine
    phase.rounds.append(load)
    for k, v in used.items():
        phase.cpu[k] = phase.cpu.get(k, 0.0) + v


def same_json(a: Any, b: Any) -> bool:
    return json.loads(a) == json.loads(b)


def fetch(read: Read) -> bytes:
    import httpx

    headers = {"authorization": f"Bearer {read.token}"} if read.token else {}
    r = httpx.get(f"http://127.0.0.1:{read.port}{read.path}", headers=headers,
                  timeout=10.0)
    if r.status_code != 200:
        raise RuntimeError(f"{read.name}: {r.status_code} {r.text}")
    return r.content


# --------------------------------------------------------------------------- main


GOALS = {"health": 0.8, "distribution": 0.5, "grant": 0.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="each target's time in each round (default 4)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved rounds of every pair (default 4)")
    parser.add_argument("--only", choices=sorted(GOALS), action="append",
                        help="measure only these pairs (default: all)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="before measuring, keep the servers up this many seconds "
                             "(to attach a profiler) with the pids printed")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the results (markdown) to this file")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _sigterm)
    procs = Processes(root=scratch_root("most-bench-reads-"))
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
    import httpx

    out(f"reads bench: one uvicorn process per app, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}")
    ports = start(procs)
    t = tokens(procs.root / "dev-keys")
    with httpx.Client(base_url=f"http://127.0.0.1:{ports['ipshare']}", timeout=10) as c:
        dist_id = seed_distribution(c, t["officer"])
    with httpx.Client(base_url=f"http://127.0.0.1:{ports['grants']}", timeout=10) as c:
        grant_id = seed_grant(c, t)
    out(f"seeded distribution {dist_id}, grant {grant_id}; set-up "
        f"{time.perf_counter() - started:.0f} s")

    pairs = {
        "health": [(Read("bare /health", ports["bare"], "/health", None),
                    Read("ipshare /health", ports["ipshare"], "/health", None)),
                   (Read("bare /health", ports["bare"], "/health", None),
                    Read("grants /health", ports["grants"], "/health", None))],
        "distribution": [(Read("bare distribution", ports["bare"],
                                 f"/v1/distributions/{dist_id}", None),
                          Read("ipshare distribution", ports["ipshare"],
                                 f"/v1/distributions/{dist_id}", t["officer"]))],
        "grant": [(Read("bare grant", ports["bare"], f"/v1/grants/{grant_id}", None),
                   Read("grants grant", ports["grants"], f"/v1/grants/{grant_id}",
                          t["pm"]))],
    }
    chosen = args.only or list(GOALS)
    # The bare app answers the same JSON (its rows are the same); every measured answer
    # then has the length of the first.
    phases: dict[str, Phase] = {}
    for kind in chosen:
        for base, svc in pairs[kind]:
            base_body, svc_body = fetch(base), fetch(svc)
            if kind != "health" and not same_json(base_body, svc_body):
                raise RuntimeError(f"the bare app's answer differs from {svc.name}'s:\n"
                                   f"{base_body!r}\n{svc_body!r}")
            for read, body in ((base, base_body), (svc, svc_body)):
                phases.setdefault(read.name, Phase(read.name, read.target(len(body))))
    pids = {name: server_pid(proc.pid) for name, proc in procs.launchers.items()}
    roots: dict[str, int | None] = {**pids, "postgres": procs.pg.pid,
                                    "kafka": procs.kafka.pid}
    if args.hold:
        out(f"holding {args.hold:.0f} s: server pids {pids}")
        time.sleep(args.hold)

    # Warm-up: every target once for a second (first requests compile statements, fill
    # caches and pools).
    for phase in phases.values():
        drive(phase.target, args.connections, 1.0)

    order = [name for kind in chosen for pair in pairs[kind] for name in
             (pair[0].name, pair[1].name)]
    order = list(dict.fromkeys(order))  # the bare /health once per round
    for r in range(args.rounds):
        names = order if r % 2 == 0 else list(reversed(order))
        out(f"round {r + 1} of {args.rounds}: {', '.join(names)}")
        for name in names:
            measure(phases[name], roots, args.connections, args.seconds)

    lines = report(args, phases, pairs, chosen)
    out()
    for line in lines:
        out(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        out(f"\nwritten to {args.out}")
    errors = {name: p.errors for name, p in phases.items() if p.errors}
    if errors:
        out(f"ERRORS: {errors}")
    return 1 if errors else 0


def report(args: argparse.Namespace, phases: dict[str, Phase],
           pairs: dict[str, list[tuple[Read, Read]]], chosen: list[str]) -> list[str]:
    lines = [
        f"## Reads bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; one uvicorn process "
        f"per app as `make stack` runs them; {args.connections} keep-alive connections; "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s per target; the ratio is "
        "the median of the rounds' ratios (the pooled one in brackets). The CPU ratio is "
        "the bare server's CPU per request over the service's: the throughput ratio of two "
        "CPU-bound servers, less sensitive to how the machine's other work shares the "
        "cores between them.",
        "",
        "| request | bare req/s | service req/s | ratio (pooled) | rounds | goal "
        "| CPU ratio | p50 / p99 ms, bare | p50 / p99 ms, service |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    def cpu_each(p: Phase) -> float:
        """The CPU its server used per request answered."""
        return p.cpu[p.name.split(" ", 1)[0]] / p.requests if p.requests else 0.0

    for kind in chosen:
        for base, svc in pairs[kind]:
            b, s = phases[base.name], phases[svc.name]
            per_round = [sr.rate / br.rate for br, sr in zip(b.rounds, s.rounds, strict=True)]
            ratio = statistics.median(per_round)
            met = "met" if ratio >= GOALS[kind] else "missed"
            lines.append(
                f"| {svc.name} | {b.rate:.0f} | {s.rate:.0f} | **{ratio:.2f}×** "
                f"({s.rate / b.rate:.2f}×) | {', '.join(f'{x:.2f}' for x in per_round)} "
                f"| ≥ {GOALS[kind]}× {met} | {cpu_each(b) / cpu_each(s):.2f}× "
                f"| {pct(b.latencies, .5) * 1e3:.2f} / {pct(b.latencies, .99) * 1e3:.2f} "
                f"| {pct(s.latencies, .5) * 1e3:.2f} / {pct(s.latencies, .99) * 1e3:.2f} |")
    servers = [k for k in next(iter(phases.values())).cpu if k not in ("bench", "machine")]
    lines += [
        "",
        "CPU per phase in cores (CPU seconds / wall seconds), and the server's CPU per "
        "request; `bench` is the load generator, `other` the rest of the machine's busy "
        "time:",
        "",
        "| phase | req/s | " + " | ".join(servers) + " | bench | other | server µs/req |",
        "|---|---:|" + "---:|" * len(servers) + "---:|---:|---:|",
    ]
    for name, p in phases.items():
        server = name.split(" ", 1)[0]
        ours = sum(p.cpu[k] for k in servers) + p.cpu["bench"]
        per_req = p.cpu[server] / p.requests * 1e6 if p.requests else float("nan")
        lines.append(
            f"| {name} | {p.rate:.0f} | "
            + " | ".join(f"{p.cpu[k] / p.seconds:.2f}" for k in servers)
            + f" | {p.cpu['bench'] / p.seconds:.2f} "
            f"| {max(0.0, p.cpu['machine'] - ours) / p.seconds:.2f} | {per_req:.0f} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
