"""Register and list pages stay flat as the pilots grow: 10^5 against 10^3, one run.

``uv run python bench/register.py`` starts, on loopback only:

- a PostgreSQL cluster (``devkit.localservers.start_postgres``, stopped at exit) with two
  databases migrated by ``sandbox.app.migrate``: ``small`` seeded with ``--small``
  pilots (10^3) and ``large`` with ``--large`` (10^5), written directly with COPY (an
  application, a pilot and its approval decision each; seven sectors, six statuses,
  one approval a minute back in time), then ANALYZEd;
- the sandbox service twice, one single-process uvicorn server per database
  (``_servers.py``), ``SANDBOX_LOG_LEVEL=WARNING``, relay on as in production.

It then reads pages at concurrency 1 over keep-alive HTTP (``http.client``: the client's
CPU stays off the service's), each page ``--requests`` times per round on each service,
alternating small and large request by request, in ``--rounds`` rounds (this shared VM's
speed drifts within seconds; interleaving puts both sizes in every stretch). Pages:

- the public register's first page, a page filtered by sector and status, a page deep in
  the register (its cursor at 90 % of the pilots), one entry;
- ``GET /v1/pilots`` for a reviewer (first page, filtered) and for a firm (its own);
- ``GET /v1/applications`` for a reviewer, filtered by sector and status.

It prints each page's median latency at both sizes and their ratio (pooled over the
rounds, and round by round), and exits 1 when a pooled ratio exceeds ``--max-ratio``
(1.2). Every process it started is stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

BENCH_DIR = Path(__file__).resolve().parent
SECTORS = [("fintech", "SBV"), ("telecom", "MIC"), ("ai", "MOST"), ("health", "MOH"),
           ("energy", "MOIT"), ("transport", "MOT"), ("other", "MOST")]
STATUSES = ["active", "active", "approved", "suspended", "expired", "terminated", "exited"]
FIRMS = 10  # owners the pilots are spread over: a firm fills a page at both sizes
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- seeding ---------------------------------------------------------------------------

def seed(dsn: str, n: int) -> None:
    """``n`` pilots with their applications and approval decisions, by COPY."""
    import psycopg

    apps, pilots, decisions = [], [], []
    for i in range(n):
        sector, agency = SECTORS[i % len(SECTORS)]
        status = STATUSES[(i // len(SECTORS)) % len(STATUSES)]
        app_id, pilot_id = str(uuid.UUID(int=2 * i + 1)), str(uuid.UUID(int=2 * i + 2))
        at = NOW - timedelta(minutes=i)
        starts = (at + timedelta(days=30)).date()
        ends = starts + timedelta(days=365)
        owner = f"firm-{i % FIRMS}"
        scope = json.dumps(["HN", "HCM"])
        number = f"{i + 1}/QĐ-TNKS-{agency}"
        apps.append((app_id, owner, f"org-{owner}", f"Firm {i}", f"{i:010d}", sector, agency,
                     "technology", "description", json.dumps([{"provision": "p",
                                                               "justification": "j"}]),
                     scope, 5000, 50_000_000, 18, "safeguards", "risk", "exit", "approved",
                     1, 90, 0, "approve", number, at.year, "rev", at.date(),
                     json.dumps(["condition"]), json.dumps(["HN"]), 1000, 10_000_000,
                     starts, ends, pilot_id, at, at, at, at))
        pilots.append((pilot_id, app_id, owner, f"org-{owner}", f"Firm {i}", f"{i:010d}",
                       sector, agency, "technology", scope, 5000, 50_000_000,
                       json.dumps(["HN"]), 1000, 10_000_000, json.dumps(["condition"]),
                       starts, ends, ends, 0, status, "quarterly", 15, 24, number, at.year,
                       at.date(), False, 0, 0, at, at))
        decisions.append((str(uuid.uuid4()), f"QĐ-TNKS-{agency}", number, at.year,
                          "approval", app_id, pilot_id, "rev", at.date(), at))
    columns = {
        "applications": "id, owner_id, organisation_id, firm_name, enterprise_code, sector, "
        "supervising_agency, technology, description, exemptions, scope_regions, "
        "scope_max_participants, scope_max_transaction_vnd, requested_months, safeguards, "
        "risk_assessment, exit_plan, status, submission, decision_deadline_days, "
        "decision_days_used, decision, decision_no, decision_year, decided_by, decided_on, "
        "conditions, limits_regions, limits_max_participants, limits_max_transaction_vnd, "
        "starts_on, ends_on, pilot_id, created_at, updated_at, submitted_at, decided_at",
        "pilots": "id, application_id, owner_id, organisation_id, firm_name, enterprise_code, "
        "sector, supervising_agency, technology, requested_regions, "
        "requested_max_participants, requested_max_transaction_vnd, limits_regions, "
        "limits_max_participants, limits_max_transaction_vnd, conditions, starts_on, "
        "ends_on, original_ends_on, extensions_used, status, report_frequency, "
        "report_grace_days, incident_deadline_hours, decision_no, decision_year, "
        "approved_on, report_overdue, breaches_count, incidents_count, created_at, "
        "updated_at",
        "decisions": "id, register_name, decision_no, decision_year, kind, application_id, "
        "pilot_id, decided_by, decided_on, decided_at",
    }
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for table, rows in (("applications", apps), ("pilots", pilots),
                            ("decisions", decisions)):
            with cur.copy(f"COPY {table} ({columns[table]}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def deep_cursor(dsn: str, fraction: float) -> str:
    """The register's cursor after ``fraction`` of its pilots, newest first."""
    import psycopg

    from servicekit.paging import encode_cursor

    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT count(*) FROM pilots").fetchone()[0]
        created, pilot_id = conn.execute(
            "SELECT created_at, id FROM pilots ORDER BY created_at DESC, id DESC "
            "OFFSET %s LIMIT 1", (int(total * fraction),)).fetchone()
    return encode_cursor(created.astimezone(UTC), pilot_id)


# --- the service --------------------------------------------------------------------------

class Service:
    """One uvicorn server for the sandbox on ``url`` (its own database)."""

    def __init__(self, url: str, key_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "SANDBOX_DATABASE_URL": url, "SANDBOX_DEV_KEY_DIR": str(key_dir),
               "SANDBOX_MIGRATE_ON_START": "false", "SANDBOX_LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_servers.py"), "sandbox.app:create_app",
             str(self.port)], env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/health", {})[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the sandbox service did not start")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, path: str, headers: dict[str, str],
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        c = conn or self.connection()
        c.request("GET", path, headers=headers)
        response = c.getresponse()
        body = response.read()
        if conn is None:
            c.close()
        return response.status, body

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --- the measurement ------------------------------------------------------------------------

def pages(small_cursor: str, large_cursor: str, reviewer: dict, firm: dict
          ) -> list[tuple[str, dict[str, str], str, str]]:
    """(name, headers, small path, large path)."""
    def q(path: str, **params: object) -> str:
        return f"{path}?{urlencode(params)}" if params else path

    entry = str(uuid.UUID(int=2 * 500 + 2))  # a pilot present at both sizes
    # Every page is full at both sizes (the filtered ones hold 20 of the 1,000).
    filtered = {"sector": "fintech", "status": "active", "limit": 20}
    return [
        ("register, first page", {}, q("/v1/register", limit=50), q("/v1/register", limit=50)),
        ("register, sector+status", {}, q("/v1/register", **filtered),
         q("/v1/register", **filtered)),
        ("register, deep page (90 %)", {}, q("/v1/register", limit=50, cursor=small_cursor),
         q("/v1/register", limit=50, cursor=large_cursor)),
        ("register, one entry", {}, f"/v1/register/{entry}", f"/v1/register/{entry}"),
        ("pilots, reviewer", reviewer, q("/v1/pilots", limit=50), q("/v1/pilots", limit=50)),
        ("pilots, reviewer, filtered", reviewer,
         q("/v1/pilots", status="suspended", sector="telecom", limit=20),
         q("/v1/pilots", status="suspended", sector="telecom", limit=20)),
        ("pilots, a firm's own", firm, q("/v1/pilots", limit=50), q("/v1/pilots", limit=50)),
        ("applications, reviewer, filtered", reviewer,
         q("/v1/applications", sector="ai", status="approved", limit=20),
         q("/v1/applications", sector="ai", status="approved", limit=20)),
    ]


def time_pair(small: Service, small_path: str, large: Service, large_path: str,
              headers: dict[str, str], n: int, large_first: bool) -> tuple[list[float],
                                                                           list[float]]:
    """``n`` requests to each service, alternating one by one (so both sizes meet the
    same moment of this shared machine's speed); the latencies of each."""
    conns = {"small": small.connection(), "large": large.connection()}
    services = {"small": (small, small_path), "large": (large, large_path)}
    times: dict[str, list[float]] = {"small": [], "large": []}
    order = ("large", "small") if large_first else ("small", "large")
    try:
        for _ in range(n):
            for size in order:
                service, path = services[size]
                start = time.perf_counter()
                status, body = service.get(path, headers, conns[size])
                times[size].append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return times["small"], times["large"]
    finally:
        for conn in conns.values():
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-ratio", type=float, default=1.2)
    args = parser.parse_args()

    from devkit.localservers import start_postgres
    from sandbox.app import migrate
    from servicekit.devtokens import DevIssuer

    key_dir = Path(tempfile.mkdtemp(prefix="sandbox-bench-keys-"))
    issuer = DevIssuer(key_dir)
    reviewer = {"Authorization": "Bearer " + issuer.issue(
        "rev-1", name="Reviewer", org="MOST", roles=["reviewer"])}
    firm = {"Authorization": "Bearer " + issuer.issue(
        "firm-7", name="Firm 7", org="org-firm-7", roles=["sandbox_applicant"])}  # owns 1/10

    pg = start_postgres()
    services: list[Service] = []

    def stop_all() -> None:
        for service in services:
            service.stop()
        pg.stop()

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sizes = {"small": args.small, "large": args.large}
    cursors = {}
    for name, n in sizes.items():
        pg.create_database(name)
        migrate(pg.url(name))
        started = time.monotonic()
        seed(pg.dsn(name), n)
        cursors[name] = deep_cursor(pg.dsn(name), 0.9)
        out(f"seeded {name}: {n} pilots in {time.monotonic() - started:.1f} s")
    small, large = Service(pg.url("small"), key_dir), Service(pg.url("large"), key_dir)
    services += [small, large]

    measured = pages(cursors["small"], cursors["large"], reviewer, firm)
    for _name, headers, small_path, large_path in measured:  # warm-up
        time_pair(small, small_path, large, large_path, headers, 5, False)
    pooled: dict[str, dict[str, list[float]]] = {m[0]: {"small": [], "large": []}
                                                 for m in measured}
    per_round: dict[str, list[float]] = {m[0]: [] for m in measured}
    for round_no in range(args.rounds):
        for name, headers, small_path, large_path in measured:
            got_small, got_large = time_pair(small, small_path, large, large_path, headers,
                                             args.requests, large_first=bool(round_no % 2))
            pooled[name]["small"] += got_small
            pooled[name]["large"] += got_large
            per_round[name].append(statistics.median(got_large)
                                   / statistics.median(got_small))

    out()
    out(f"Page latency at {args.large:,} pilots against {args.small:,} (concurrency 1, "
        f"{args.rounds} interleaved rounds x {args.requests} requests; medians)")
    out()
    out(f"| page | p50 at {args.small:,} (ms) | p50 at {args.large:,} (ms) | ratio | "
        "ratio by round |")
    out("|---|---:|---:|---:|---|")
    worst = 0.0
    for name in pooled:
        s, g = (statistics.median(pooled[name][k]) for k in ("small", "large"))
        ratio = g / s
        worst = max(worst, ratio)
        rounds = " ".join(f"{r:.2f}" for r in per_round[name])
        out(f"| {name} | {s * 1000:.2f} | {g * 1000:.2f} | {ratio:.2f} | {rounds} |")
    out()
    verdict = "PASS" if worst <= args.max_ratio else "FAIL"
    out(f"{verdict}: the worst ratio is {worst:.2f} (limit {args.max_ratio})")
    out(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{date.today().isoformat()}")
    return 0 if worst <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
