"""The gateway's hop, and incomes through ``make stack``'s gateway against their floor.

``make bench`` (or ``uv run python bench/gateway.py``) brings up the local stack exactly
as ``make stack`` does (``python -m devkit.stack up``, into a scratch var directory, on
free ports): a fresh PostgreSQL (fsync on) and Kafka, every service under the supervisor
with its default number of worker processes (ipshare: one per core), and the real
gateway in front (edge authentication, route table, rate limits, access log, metrics,
tracing). The rate limits are set here, explicitly, high enough never to refuse a
request (``--rate-limit``), so that their checks run but do not shape the load. It is
stopped with ``python -m devkit.stack down`` at the end, also on an exception, Ctrl-C or
SIGTERM.

It seeds ipshare over HTTP with a real JWT (a 30 % net policy, one asset with 3 authors,
one licence agreement per client connection), then measures, on the same service
processes, the same request sent to ipshare directly and through the gateway:

- ``GET /v1/distributions/{id}`` (one distribution with 4 lines), and
- ``POST /v1/agreements/{id}/income`` (a unique ``Idempotency-Key`` and reference each),

each at concurrency 1 and 16 (keep-alive connections), and the **floor**: the rows one
posting writes (copied from ipshare's database, as ``income.py`` does), written by a
bare psycopg loop on 4 connections (4 processes) into a second database of the same
PostgreSQL; and the direct GET at concurrency 16 beside a **burner**, a stand-in process
doing Python work for as many cores as the gateway used through the gateway, with no hop:
what sharing the cores with a process of that size costs the service by itself; and the
GET at concurrency 16 through two **bare proxies** with no edge at all in front of the
same ipshare processes, ``_hop.py``'s ``raw`` (the least a Python hop costs) and, when it
is installed, nginx: what the hop alone costs on these cores, whatever a gateway does. Every
phase runs in interleaved rounds (the order reversed every other round), a few seconds
each; a pair's ratio is the median of its rounds' ratios (the pooled one is printed
beside it): on this shared VM the machine's speed drifts by tens of percent within
minutes, so only figures taken seconds apart are compared.

The goals (issue 19): through the gateway ≥ 0.85× direct throughput at concurrency 16,
≤ 1 ms added p50 at concurrency 1, and incomes through the gateway at concurrency 16
≥ 0.45× the 4-connection floor. Because the load generator shares the machine's cores,
the output also gives the CPU each component used per phase and **the gateway's CPU per
request** (its worker processes' user + system time from ``/proc`` over the requests of
the phase), which stays comparable when other work on the machine skews the rates.

The load generator is ``_load.py``'s callback-based HTTP/1.1 client on uvloop in this
process (tens of microseconds a request; no httpx: its 1–3 ms a request would come off
the cores the servers run on). The exit status is 1 when a request failed or the books
do not check.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named for what it measures, and Python puts its folder first on the path:
# the gateway package must come before it, the bench helpers (income.py) still be found.
BENCH_DIR = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == BENCH_DIR:
    sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

from _load import Load, Phase, Target, drive, get_request  # noqa: E402
from income import (  # noqa: E402
    FloorWriter,
    _proc_table,
    _sigterm,
    capture_template,
    check_books,
    copy_parents,
    free_port,
    officer_token,
    out,
    pct,
    scratch_root,
    seed,
    self_cpu,
    system_cpu,
)

GOAL_THROUGHPUT = 0.85  # through the gateway / direct, at concurrency 16
GOAL_ADDED_P50_MS = 1.0  # at concurrency 1
GOAL_FLOOR = 0.45  # incomes through the gateway at c=16 / the floor on 4 connections
BURNER = "direct GET c={c} beside a burner"
BARE = "GET c={c} through a bare {proxy} proxy"
ROOT = BENCH_DIR.parent


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """``make stack`` in a scratch var directory; ``down`` exactly once."""

    var: Path
    env: dict[str, str] = field(default_factory=dict)
    up_done: bool = False
    stopped: bool = False

    def up(self, extra_env: dict[str, str]) -> None:
        ports = {"PORT": free_port(), "STACK_GRANTS_PORT": free_port(),
                 "STACK_SANDBOX_PORT": free_port(), "STACK_IPSHARE_PORT": free_port()}
        env = {**os.environ, **{k: str(v) for k, v in ports.items()}, **extra_env}
        self.up_done = True  # from here on, down() has something to stop
        with open(self.var / "stack-up.log", "wb") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "devkit.stack", "up", "--var-dir", str(self.var)],
                env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError("make stack failed:\n"
                               + (self.var / "stack-up.log").read_text()[-4000:])
        for line in (self.var / "stack.env").read_text().splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value

    def down(self) -> None:
        if self.stopped or not self.up_done:
            return
        self.stopped = True
        subprocess.run([sys.executable, "-m", "devkit.stack", "down", "--var-dir",
                        str(self.var)], cwd=ROOT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       check=False)
        shutil.rmtree(self.var, ignore_errors=True)

    def port(self, program: str) -> int:
        key = "GATEWAY_URL" if program == "gateway" else f"{program.upper()}_URL"
        return int(self.env[key].rsplit(":", 1)[1])

    def pids(self) -> dict[str, list[int]]:
        """The worker processes of each program, and PostgreSQL's and Kafka's servers."""
        state = json.loads((self.var / "stack" / "supervisor.json").read_text())
        pids = {name: [w["pid"] for w in program["workers"]]
                for name, program in state["programs"].items()}
        recorded = json.loads((self.var / "stack" / "pids.json").read_text())["processes"]
        for entry in recorded:
            if entry["kind"] in ("postgres", "kafka"):
                pids[entry["kind"]] = [int(entry["pid"])]
        return pids

    def log(self, program: str) -> str:
        path = self.var / "stack" / "logs" / f"{program}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def cpu_of(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group's processes and their live descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    used: dict[str, float] = {}
    for name, roots in groups.items():
        total, stack = 0.0, list(roots)
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children.get(pid, []))
        used[name] = total
    return used


# --------------------------------------------------------------------------- load


def income_request(port: int, prefix: str, token: str,
                   agreements: list[str]) -> Callable[[int], bytes]:
    """A POST of a fresh income, on the connection's own agreement."""
    heads = [(f"POST {prefix}/v1/agreements/{a}/income HTTP/1.1\r\n"
              f"host: 127.0.0.1:{port}\r\nauthorization: Bearer {token}\r\n"
              "content-type: application/json\r\n").encode() for a in agreements]
    seq = iter(range(10**12))

    def build(conn: int) -> bytes:
        n = next(seq)
        gross = 1_000_000 + (n * 7_919_113) % 9_999_000_000
        body = (b'{"period":"2026-Q4","gross_vnd":%d,"costs_vnd":%d,"reference":"GW-%s"}'
                % (gross, gross // 10, uuid.uuid4().hex[:20].encode()))
        return (heads[conn % len(heads)] + b"idempotency-key: " + uuid.uuid4().hex.encode()
                + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)

    return build


# --------------------------------------------------------------------------- phases


def measure(phase: Phase, groups: dict[str, list[int]], run: Callable[[], Load],
            ) -> None:
    before, mine, machine = cpu_of(groups), self_cpu(), system_cpu()[0]
    load = run()
    after = cpu_of(groups)
    used = {k: after[k] - before[k] for k in groups}
    used["bench"] = self_cpu() - mine + load.helpers_cpu
    used["machine"] = system_cpu()[0] - machine
    phase.rounds.append(load)
    for k, v in used.items():
        phase.cpu[k] = phase.cpu.get(k, 0.0) + v


def _floor_writer(dsn: str, template: dict[str, Any], index: int, commands: Any,
                  results: Any) -> None:
    """One floor connection in its own process: for each ``(start_at, stop_at)`` it is
    sent (``time.monotonic``, the same clock in every process), one income's rows per
    transaction back to back; it answers with the latencies and the CPU it used."""
    writer = FloorWriter(dsn, template)
    n = index * 10_000_000
    warm_until = time.monotonic() + 1.0
    while time.monotonic() < warm_until:
        n += 1
        writer.write_one(n)
    results.put(None)  # ready
    while (window := commands.get()) is not None:
        start_at, stop_at = window
        while time.monotonic() < start_at:
            time.sleep(0.001)
        cpu0, latencies = time.process_time(), []
        while time.monotonic() < stop_at:
            n += 1
            t0 = time.perf_counter()
            writer.write_one(n)
            latencies.append(time.perf_counter() - t0)
        results.put((latencies, time.process_time() - cpu0))
    writer.close()


class Floor:
    """The floor's writer processes, started once (a process's start-up on a loaded
    machine can take seconds) and run for each round's window."""

    def __init__(self, dsn: str, template: dict[str, Any], connections: int) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(connections)]
        self.procs = [ctx.Process(target=_floor_writer, daemon=True,
                                  args=(dsn, template, i, self.commands[i], self.results))
                      for i in range(connections)]
        for proc in self.procs:
            proc.start()
        for _ in self.procs:
            self.results.get(timeout=120)

    def run(self, seconds: float) -> Load:
        start_at = time.monotonic() + 0.05
        for commands in self.commands:
            commands.put((start_at, start_at + seconds))
        load = Load(seconds=seconds)
        for _ in self.procs:
            latencies, cpu = self.results.get(timeout=seconds + 60)
            load.latencies += latencies
            load.helpers_cpu += cpu
        return load

    def stop(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def _burn(commands: Any, results: Any) -> None:
    """A stand-in for the gateway's CPU without its hop: for each ``(cores, start_at,
    stop_at)`` it is sent, Python work (dict reads and writes over a working set) for
    ``cores`` of every millisecond and asleep for the rest; it answers with the CPU it
    used (less than asked when the machine does not give it its share)."""
    table = {i: str(i) for i in range(50_000)}
    results.put(None)  # ready
    while (window := commands.get()) is not None:
        cores, start_at, stop_at = window
        while time.monotonic() < start_at:
            time.sleep(0.001)
        cpu0, busy, i = time.process_time(), min(cores, 1.0) * 0.001, 0
        while (now := time.monotonic()) < stop_at:
            until = now + busy
            while time.monotonic() < until:
                i = (i + 7919) % 50_000
                table[i] = table[i][::-1]
            time.sleep(0.001 - busy)
        results.put(time.process_time() - cpu0)


class Burner:
    """``_burn`` in a process of its own, started once, run beside a phase's load."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.commands, self.results = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_burn, args=(self.commands, self.results), daemon=True)
        self.proc.start()
        self.results.get(timeout=120)
        self.asked: list[float] = []  # cores asked for, and used, round by round
        self.used: list[float] = []

    def beside(self, cores: float, seconds: float, run: Callable[[], Load]) -> Load:
        start_at = time.monotonic()
        self.commands.put((cores, start_at, start_at + seconds))
        load = run()
        cpu = self.results.get(timeout=seconds + 60)
        load.helpers_cpu += cpu
        self.asked.append(cores)
        self.used.append(cpu / seconds)
        return load

    def stop(self) -> None:
        self.commands.put(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream ipshare {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location /ipshare/ {{
            proxy_pass http://ipshare/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


class BareProxies:
    """Proxies with no edge at all in front of ipshare's port, ``/ipshare/...`` as the
    gateway maps it: what the hop alone costs on these cores, whatever a gateway does.
    ``Python`` is ``_hop.py``'s ``raw`` (an httptools server protocol handing each request
    to the gateway's upstream pool: the least a Python hop costs); ``nginx`` (one worker,
    kept-alive upstream connections, no log) when it is installed."""

    def __init__(self, upstream: int, scratch: Path) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        port = free_port()
        self.procs["Python"] = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_hop.py"), "serve", "raw", str(port)],
            env={**os.environ, "GATEWAY_IPSHARE_URL": f"http://127.0.0.1:{upstream}"},
            cwd=BENCH_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.ports["Python"] = port
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        if nginx:
            folder = scratch / "nginx"
            folder.mkdir(parents=True, exist_ok=True)
            port = free_port()
            (folder / "nginx.conf").write_text(NGINX_CONF.format(dir=folder, port=port,
                                                                 upstream=upstream))
            self.procs["nginx"] = subprocess.Popen(
                [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            self.ports["nginx"] = port
        deadline = time.monotonic() + 30
        for name, port in self.ports.items():
            while not _listening(port):
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bare {name} proxy did not start")
                time.sleep(0.1)

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs.values()]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def fetch(port: int, path: str, token: str) -> bytes:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10.0,
                  headers={"authorization": f"Bearer {token}"})
    if r.status_code != 200:
        raise RuntimeError(f"GET {path} on {port}: {r.status_code} {r.text}")
    return r.content


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--floor-connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="each phase's time in each round (default 4)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of every phase (default 3)")
    parser.add_argument("--rate-limit", default="1000000/second",
                        help="every GATEWAY_RATE_LIMIT_* limit during the run")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="before measuring, keep the stack up this many seconds "
                             "(to attach a profiler) with the pids printed")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the results (markdown) to this file")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _sigterm)
    stack = Stack(var=scratch_root("most-bench-gateway-"))
    atexit.register(stack.down)
    started = time.perf_counter()
    try:
        return _run(args, stack, started)
    except KeyboardInterrupt:
        out("\ninterrupted: stopping everything started")
        return 130
    finally:
        stack.down()
        out(f"stopped the stack; total {time.perf_counter() - started:.0f} s")


def _run(args: argparse.Namespace, stack: Stack, started: float) -> int:
    import psycopg

    from ipshare.app import migrate as migrate_ipshare

    limits = {f"GATEWAY_RATE_LIMIT_{kind}_PER_{per}": args.rate_limit
              for kind in ("READ", "WRITE") for per in ("SUBJECT", "ADDRESS")}
    out(f"gateway bench: make stack on {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; every gateway rate limit {args.rate_limit}")
    stack.up(limits)
    pids = stack.pids()
    gw, ip = stack.port("gateway"), stack.port("ipshare")
    out(f"stack up in {time.perf_counter() - started:.0f} s: gateway :{gw} "
        f"({len(pids['gateway'])} worker), ipshare :{ip} ({len(pids['ipshare'])} workers)")

    token = officer_token(Path(stack.env["DEV_KEY_DIR"]))
    agreements = seed(ip, token, args.concurrency)
    service_url = stack.env["IPSHARE_DATABASE_URL"]
    service_dsn = service_url.replace("postgresql+psycopg://", "postgresql://")
    floor_url = service_url.rsplit("/", 1)[0] + "/floor"
    with psycopg.connect(service_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE floor")
    migrate_ipshare(floor_url)
    floor_dsn = floor_url.replace("postgresql+psycopg://", "postgresql://")

    targets = {
        "direct POST": Target("direct POST", ip, income_request(ip, "", token, agreements),
                              201),
        "gateway POST": Target("gateway POST", gw, income_request(gw, "/ipshare", token,
                                                                  agreements), 201),
    }
    # Warm-up: every path's first requests prepare statements, fill pools and caches.
    for target in targets.values():
        warm = drive(target, args.concurrency, 2.0)
        if not warm.latencies:
            raise RuntimeError(f"warm-up of {target.name} posted nothing: {warm.errors}\n"
                               f"{stack.log('gateway')}\n{stack.log('ipshare')}")
    template = capture_template(service_dsn)
    copy_parents(floor_dsn, template)
    dist = f"/v1/distributions/{template['dist_id']}"
    direct_body, gateway_body = fetch(ip, dist, token), fetch(gw, "/ipshare" + dist, token)
    if json.loads(direct_body) != json.loads(gateway_body):
        raise RuntimeError(f"the gateway's answer differs:\n{direct_body!r}\n{gateway_body!r}")
    targets["direct GET"] = Target("direct GET", ip, get_request(ip, dist, token), 200)
    targets["gateway GET"] = Target("gateway GET", gw,
                                    get_request(gw, "/ipshare" + dist, token), 200)
    for name in ("direct GET", "gateway GET"):
        drive(targets[name], args.concurrency, 1.0)
    out(f"seeded {len(agreements)} agreements, distribution {template['dist_id']}; "
        f"set-up {time.perf_counter() - started:.0f} s")

    bare = BareProxies(ip, stack.var)
    atexit.register(bare.stop)
    for proxy, port in bare.ports.items():
        name = BARE.format(c=args.concurrency, proxy=proxy)
        targets[name] = Target(name, port, get_request(port, "/ipshare" + dist, token), 200)
        if json.loads(fetch(port, "/ipshare" + dist, token)) != json.loads(direct_body):
            raise RuntimeError(f"the bare {proxy} proxy's answer differs")
        drive(targets[name], args.concurrency, 1.0)
    groups = {"gateway": pids["gateway"], "ipshare": pids["ipshare"],
              "postgres": pids["postgres"], "kafka": pids["kafka"], "proxy": bare.pids()}
    if args.hold:
        out(f"holding {args.hold:.0f} s: pids {groups}")
        time.sleep(args.hold)

    c = args.concurrency
    plan: list[tuple[str, Callable[[], Load]]] = []
    for kind in ("GET", "POST"):
        for conns in (1, c):
            for via in ("direct", "gateway"):
                target = targets[f"{via} {kind}"]
                plan.append((f"{via} {kind} c={conns}",
                             lambda t=target, n=conns: drive(t, n, args.seconds)))
    floor_name = f"floor c={args.floor_connections}"
    floor = Floor(floor_dsn, template, args.floor_connections)
    plan.append((floor_name, lambda: floor.run(args.seconds)))
    # Direct, beside a process burning the CPU the gateway used through it so far: what
    # sharing the cores with any process of that size costs, without a hop.
    burner = Burner()

    def beside_burner() -> Load:
        through = phases[f"gateway GET c={c}"]
        cores = through.cpu["gateway"] / through.seconds if through.seconds else 0.3
        return burner.beside(cores, args.seconds,
                             lambda: drive(targets["direct GET"], c, args.seconds))

    after_gateway = [name for name, _ in plan].index(f"gateway GET c={c}") + 1
    plan.insert(after_gateway, (BURNER.format(c=c), beside_burner))
    for proxy in reversed(bare.ports):
        name = BARE.format(c=c, proxy=proxy)
        plan.insert(after_gateway, (name, lambda t=targets[name]: drive(t, c, args.seconds)))
    phases = {name: Phase(name) for name, _ in plan}
    try:
        for r in range(args.rounds):
            order = plan if r % 2 == 0 else list(reversed(plan))
            out(f"round {r + 1} of {args.rounds}: {', '.join(name for name, _ in order)}")
            for name, run in order:
                measure(phases[name], groups, run)
    finally:
        floor.stop()
        burner.stop()
        bare.stop()

    posted = sum(p.requests for name, p in phases.items() if "POST" in name)
    lines = report(args, phases, floor_name, pids, burner, list(bare.ports))
    n_dist, ledger_total, unbalanced = check_books(service_dsn)
    errors = {name: p.errors for name, p in phases.items() if p.errors}
    lines += ["", f"Checks: {n_dist} distributions in ipshare's database (≥ {posted} 201s "
              f"measured, plus the warm-up's); ledger total {ledger_total} đồng, "
              f"{unbalanced} unbalanced postings; errors: {errors or 'none'}."]
    out()
    for line in lines:
        out(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        out(f"\nwritten to {args.out}")
    ok = not errors and n_dist >= posted and ledger_total == 0 and unbalanced == 0
    if not ok:
        out("CHECKS FAILED")
    return 0 if ok else 1


def _median_ratio(a: Phase, b: Phase) -> tuple[float, list[float]]:
    """b's rate over a's, round by round: (median, the rounds')."""
    rounds = [rb.rate / ra.rate if ra.rate else float("nan")
              for ra, rb in zip(a.rounds, b.rounds, strict=True)]
    return statistics.median(rounds), rounds


def beside_burner_lines(phases: dict[str, Phase], c: int, burner: Burner) -> list[str]:
    """What sharing the cores with a process the gateway's size costs ipshare, no hop."""
    alone, beside = phases[f"direct GET c={c}"], phases[BURNER.format(c=c)]
    through = phases[f"gateway GET c={c}"]
    ratio, rounds = _median_ratio(alone, beside)
    return [
        f"**Sharing the cores, without a hop**: direct GET at c={c} beside a process "
        f"burning the CPU the gateway used through it (asked "
        f"{', '.join(f'{x:.2f}' for x in burner.asked)} cores, it got "
        f"{', '.join(f'{x:.2f}' for x in burner.used)}) ran at **{ratio:.2f}×** direct "
        f"alone (rounds {', '.join(f'{x:.2f}' for x in rounds)}); ipshare's CPU per "
        f"request was {alone.per_request_us('ipshare'):.0f} µs alone, "
        f"{beside.per_request_us('ipshare'):.0f} beside it and "
        f"{through.per_request_us('ipshare'):.0f} through the gateway. That ratio is about "
        "the most any gateway using that much CPU could reach on these cores."]


def bare_lines(phases: dict[str, Phase], c: int, proxies: list[str]) -> list[str]:
    """What a hop costs with no edge at all: the GET through each bare proxy."""
    alone = phases[f"direct GET c={c}"]
    through = []
    for proxy in proxies:
        phase = phases[BARE.format(c=c, proxy=proxy)]
        ratio, rounds = _median_ratio(alone, phase)
        through.append(
            f"a bare {proxy} proxy **{ratio:.2f}×** direct (rounds "
            f"{', '.join(f'{x:.2f}' for x in rounds)}; the proxy's CPU "
            f"{phase.per_request_us('proxy'):.0f} µs a request, ipshare's "
            f"{phase.per_request_us('ipshare'):.0f})")
    return [f"**A hop with no edge at all** (GET at c={c}): through " + "; through ".join(
        through) + ". A proxy that only forwards bounds what a gateway doing more could "
        "reach on these cores."]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


SERVERS = ("gateway", "proxy", "ipshare", "postgres", "kafka")


def servers_us(phase: Phase) -> float:
    """CPU per request of every server on the request's path (not the load generator)."""
    return sum(phase.per_request_us(k) for k in SERVERS)


def report(args: argparse.Namespace, phases: dict[str, Phase], floor_name: str,
           pids: dict[str, list[int]], burner: Burner, proxies: list[str]) -> list[str]:
    c = args.concurrency
    lines = [
        f"## Gateway bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; `make stack`: gateway "
        f"{len(pids['gateway'])} worker, ipshare {len(pids['ipshare'])} workers, PostgreSQL "
        f"fsync on; gateway rate limits {args.rate_limit}; {args.rounds} interleaved rounds "
        f"of {args.seconds:g} s per phase; a ratio is the median of the rounds' ratios (the "
        "pooled one in brackets).",
        "",
        "| request | conns | direct req/s | gateway req/s | ratio (pooled) | rounds "
        "| p50 direct / gateway ms | added p50 ms | p99 direct / gateway ms "
        "| gateway CPU µs/req | ipshare CPU µs/req direct / via gateway "
        "| servers' CPU µs/req direct / via gateway | ratio by CPU |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for kind in ("GET", "POST"):
        for conns in (1, c):
            d, g = phases[f"direct {kind} c={conns}"], phases[f"gateway {kind} c={conns}"]
            ratio, rounds = _median_ratio(d, g)
            added = statistics.median(
                statistics.median(rg.latencies) - statistics.median(rd.latencies)
                for rd, rg in zip(d.rounds, g.rounds, strict=True)
                if rd.latencies and rg.latencies) if d.requests and g.requests else float("nan")
            lines.append(
                f"| {kind} | {conns} | {d.rate:.0f} | {g.rate:.0f} | **{ratio:.2f}×** "
                f"({g.rate / d.rate if d.rate else float('nan'):.2f}×) "
                f"| {', '.join(f'{x:.2f}' for x in rounds)} "
                f"| {ms(pct(d.latencies, .5))} / {ms(pct(g.latencies, .5))} "
                f"| {'**' if conns == 1 else ''}{ms(added)}{'**' if conns == 1 else ''} "
                f"| {ms(pct(d.latencies, .99))} / {ms(pct(g.latencies, .99))} "
                f"| {g.per_request_us('gateway'):.0f} "
                f"| {d.per_request_us('ipshare'):.0f} / {g.per_request_us('ipshare'):.0f} "
                f"| {servers_us(d):.0f} / {servers_us(g):.0f} "
                f"| {servers_us(d) / servers_us(g):.2f}× |")
            if conns == c:
                met = ratio >= GOAL_THROUGHPUT
                verdicts.append(f"{kind} at c={c}: {ratio:.2f}× direct (goal ≥ "
                                f"{GOAL_THROUGHPUT}×: {'met' if met else 'missed'})")
            else:
                met = added * 1e3 <= GOAL_ADDED_P50_MS
                verdicts.append(f"{kind} at c=1: +{ms(added)} ms p50 (goal ≤ "
                                f"{GOAL_ADDED_P50_MS:g} ms: {'met' if met else 'missed'})")
    fl, gp = phases[floor_name], phases[f"gateway POST c={c}"]
    ratio, rounds = _median_ratio(fl, gp)
    pooled = gp.rate / fl.rate if fl.rate else float("nan")
    lines += [
        "",
        f"Incomes through the gateway at c={c} against the floor (bare psycopg, one "
        f"transaction per income, {args.floor_connections} connections): "
        f"{gp.rate:.0f} incomes/s against {fl.rate:.0f} tx/s, **{ratio:.2f}×** "
        f"({pooled:.2f}× pooled; rounds {', '.join(f'{x:.2f}' for x in rounds)}); "
        f"goal ≥ {GOAL_FLOOR}×: {'met' if ratio >= GOAL_FLOOR else 'missed'}. Direct at "
        f"c={c}: {_median_ratio(fl, phases[f'direct POST c={c}'])[0]:.2f}× the floor.",
        "",
        "Goals: " + "; ".join(verdicts) + ".",
        "",
        *beside_burner_lines(phases, c, burner),
        "",
        *bare_lines(phases, c, proxies),
        "",
        "`ratio by CPU` is the throughput ratio a machine given over to these servers "
        "would show when they are CPU-bound: the servers' CPU per request direct over "
        "the same through the gateway (gateway, ipshare, PostgreSQL, Kafka; not the load "
        "generator). On a machine shared with other work the rates follow each process's "
        "share of the cores as much as its cost.",
        "",
        "CPU per phase in cores (CPU seconds / wall seconds); `bench` is the load generator "
        "(and the floor's writer processes, or the burner), `proxy` the bare proxies, "
        "`other` the rest of the machine's busy time:",
        "",
        "| phase | req/s | gateway | proxy | ipshare | postgres | kafka | bench | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    parts = ("gateway", "proxy", "ipshare", "postgres", "kafka", "bench")
    for name, p in phases.items():
        ours = sum(p.cpu[k] for k in parts)
        lines.append(f"| {name} | {p.rate:.0f} | "
                     + " | ".join(f"{p.cpu[k] / p.seconds:.2f}" for k in parts)
                     + f" | {max(0.0, p.cpu['machine'] - ours) / p.seconds:.2f} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
