"""Gateway variants side by side: their CPU per proxied request, load alternated in blocks.

    UV_PYTHON_DOWNLOADS=never uv run python bench/_hop.py as_is as_is@granian ... \\
        --pairs 6 --seconds 3 --concurrency 16 --kind GET

Starts one upstream (a raw ASGI app on uvicorn answering the GET of a distribution and
an income POST with fixed bodies of the service's sizes, so that the upstream costs the
machine little) and every variant, each as one server process on its own port, in
front of it; then, for ``--pairs`` rounds, drives each variant in turn (the order
reversed every other round) with the bench's callback client at ``--concurrency``
keep-alive connections for ``--seconds``, and takes the variant process's user + system
CPU from ``/proc`` over the requests it answered. A variant is a factory in this module
(``as_is`` is the gateway as it is), ``@uvicorn`` (default: uvicorn with the gateway's own
protocol, as the stack runs it), ``@asgi`` (uvicorn's own protocol) or ``@granian`` its server;
``direct`` is the stand-in upstream without a gateway (its CPU is the upstream's);
``raw`` is the least a Python hop costs (an httptools server protocol handing requests
to the gateway's upstream pool: no edge, no ASGI), the floor the others are judged by;
``no_limits``, ``no_record``, ``no_span`` and ``no_edge`` are the gateway with edge steps
skipped, to measure what each costs.
Prints, per variant, the median of its blocks' CPU per request, req/s and p50, and the
median of the rounds' ratios to the first variant. ``make bench`` does not run this file.

``base`` is the gateway of another checkout (``HOP_BASE_SRC``, its ``gateway/src``; a
``git worktree add --detach`` of the commit to compare with). The ``aiohttp16`` and
``@granian`` variants need packages the project does not depend on: ``uv pip install
aiohttp granian`` first.

``serve VARIANT PORT`` is how each server is started (a subprocess of this file).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/gateway.py would shadow the gateway package: this folder goes last on the path.
BENCH_DIR = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == BENCH_DIR:
    sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from income import free_port, officer_token, out, pct, scratch_root  # noqa: E402

DIST = "/v1/distributions/3ce23554-9992-48fa-9d88-61fabdaa898f"
AGREEMENT = "/v1/agreements/5b0c5f0e-8f44-4a57-9f55-1c1f7f7b37a1/income"
# About the service's answers: a distribution with 4 lines is ~1.4 kB of JSON.
BODY = (b'{"id":"3ce23554-9992-48fa-9d88-61fabdaa898f","lines":['
        + b",".join(b'{"seq":%d,"party":"r-%d","amount_vnd":123456789,"kind":"author"}' % (i, i)
                    for i in range(16)) + b"]}")


# --------------------------------------------------------------------------- apps


async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The stand-in service: 200 with BODY for a GET, 201 with BODY for a POST."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def upstream_app() -> Any:
    return upstream


def as_is() -> Any:
    from gateway.app import create_app

    return create_app()


# Ablations: the gateway as it is with edge steps skipped, to measure what each costs
# (bench/README.md, "The edge, trimmed"). Never a way to run the gateway.


def no_limits() -> Any:
    """No rate-limit counting."""
    from gateway.ratelimits import RateLimits

    RateLimits.over_now = lambda self, *args: None  # type: ignore[method-assign]
    return as_is()


def no_record() -> Any:
    """No access line, no metrics."""
    from gateway.edge import Edge

    Edge.leave = lambda self, *args: None  # type: ignore[method-assign]
    return as_is()


def no_span() -> Any:
    """No span: no trace context read, made or sent on."""
    import contextlib

    from opentelemetry.trace import INVALID_SPAN

    import gateway.server

    class NoSpan:
        span, ids = INVALID_SPAN, (0, 0)

        def __init__(self, *args: Any) -> None:
            pass

        def trace_headers(self) -> list[tuple[bytes, bytes]]:
            return []

        def name(self, *args: Any) -> None:
            pass

        def end(self, *args: Any) -> None:
            pass

        current = staticmethod(contextlib.nullcontext)

    gateway.server.ServerSpan = NoSpan  # type: ignore[assignment, misc]
    return as_is()


def no_edge() -> Any:
    """None of the edge's steps: the gateway's protocol and pool alone (beside ``raw``)."""
    from gateway.edge import Edge

    Edge.admit_now = lambda self, passage: None  # type: ignore[method-assign]
    Edge.leave = lambda self, *args: None  # type: ignore[method-assign]
    return no_span()


def base() -> Any:
    """The gateway of another checkout: ``HOP_BASE_SRC`` is its ``gateway/src``, put first
    on the path by ``serve``."""
    return as_is()


def _with_sender(make: Any) -> Any:
    """The gateway as it is, each upstream's requests sent by ``make(upstream)``."""
    from gateway.proxy import ProxyApp

    app = as_is()
    for route in app.routes:
        if isinstance(getattr(route, "app", None), ProxyApp):
            upstream = route.app.upstream
            upstream.sender = make(upstream)
    return app


def _httpx(pool: int) -> Any:
    import httpx

    from gateway.proxy import HttpxSender

    return _with_sender(lambda up: HttpxSender(httpx.AsyncHTTPTransport(limits=httpx.Limits(
        max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=4.0)),
        up.base_url))


def httpx16() -> Any:
    """httpx's transport, as the gateway used before, pool 16, keep-alive 4 s."""
    return _httpx(16)


def httpx4() -> Any:
    return _httpx(4)


class AiohttpSender:
    """aiohttp's client: pool ``limit``, keep-alive 4 s, bodies as sent."""

    def __init__(self, base_url: str, limit: int = 16) -> None:
        self.base_url, self.limit = base_url, limit
        self.session: Any = None

    async def request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                      body: bytes, *, timeout: float) -> Any:
        import aiohttp
        from multidict import CIMultiDict

        from gateway.upstream import Answer

        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=4.0),
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept",
                                                          "Accept-Encoding"))
        sent = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
        async with self.session.request(method, self.base_url + target, headers=sent,
                                        data=body or None,
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            data = await r.read()
            return Answer(r.status, [(k.lower(), v) for k, v in r.raw_headers], data)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


def aiohttp16() -> Any:
    return _with_sender(lambda up: AiohttpSender(up.base_url))


class _RawProxy:
    """The least a Python hop can cost: an httptools server protocol handing each request,
    unchanged but for ``host``, to the gateway's upstream pool (no edge, no ASGI)."""

    def __init__(self, pool: Any) -> None:
        import httptools

        self.pool, self.transport = pool, None
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Any) -> None:
        self.transport = None

    def eof_received(self) -> None:
        pass

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name not in (b"host", b"content-length"):
            self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        import asyncio

        method = self.parser.get_method().decode()
        url, headers, body = self.url, self.headers, b"".join(self.body)
        self.url, self.headers, self.body = b"", [], []
        asyncio.get_running_loop().create_task(self._forward(method, url, headers, body))

    async def _forward(self, method: str, url: bytes, headers: Any, body: bytes) -> None:
        target = url.decode("latin-1").removeprefix("/ipshare")
        answer = await self.pool.request(method, target, headers, body, timeout=10.0)
        head = [b"HTTP/1.1 %d OK\r\ncontent-length: %d\r\n" % (answer.status,
                                                                  len(answer.body))]
        head += [b"%s: %s\r\n" % (k, v) for k, v in answer.headers
                 if k not in (b"content-length", b"connection", b"date", b"server")]
        if self.transport is not None:
            self.transport.write(b"".join(head) + b"\r\n" + answer.body)


def _serve_raw(port: int) -> None:
    import asyncio

    import uvloop

    from gateway.settings import GatewaySettings
    from gateway.upstream import Pool

    url = GatewaySettings().upstream_urls()["ipshare"].rsplit(":", 1)
    host, upstream_port = url[0].split("//")[1], int(url[1].split("/")[0])

    async def main() -> None:
        pool = Pool(host, upstream_port, max_connections=32, keepalive_expiry=4.0,
                    connect_timeout=2.0, pool_timeout=5.0)
        server = await asyncio.get_running_loop().create_server(
            lambda: _RawProxy(pool), "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


# --------------------------------------------------------------------------- serve

# Variants served by granian: its options and target.
GRANIAN = {
    "as_is": ["--no-access-log", "gateway.app:create_app"],
    "as_is_rust": ["--no-access-log", "--task-impl", "rust", "gateway.app:create_app"],
}



def serve(variant: str, port: int) -> None:
    name, _, server = variant.partition("@")
    if name == "raw":
        _serve_raw(port)
        return
    if name == "base":
        sys.path.insert(0, os.environ["HOP_BASE_SRC"])
    if server in ("", "uvicorn", "asgi"):
        import uvicorn

        # As make stack runs the gateway: uvicorn at info, without its access line, on
        # the gateway's own protocol unless "@asgi" asks for uvicorn's.
        protocol = ("gateway.server:GatewayProtocol" if server != "asgi"
                    and name != "upstream_app" else "httptools")
        uvicorn.run(f"_hop:{name}", factory=True, host="127.0.0.1", port=port,
                    log_level="info" if name != "upstream_app" else "warning",
                    access_log=False, lifespan="on", http=protocol, proxy_headers=False)
    else:
        raise SystemExit(f"unknown server {server!r}")


# --------------------------------------------------------------------------- harness


def _load_client() -> Any:
    spec = importlib.util.spec_from_file_location("gateway_bench", BENCH_DIR / "gateway.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gateway_bench"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kind", choices=["GET", "POST"], default="GET")
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args(argv)
    bench = _load_client()

    root = scratch_root("most-hop-")
    key_dir = root / "dev-keys"
    token = officer_token(key_dir)
    up_port = free_port()
    env = {**os.environ, "GATEWAY_DEV_KEY_DIR": str(key_dir),
           "HOP_BASE_SRC": os.environ.get("HOP_BASE_SRC", "/work/wt/hop-base/gateway/src"),
           "GATEWAY_IPSHARE_URL": f"http://127.0.0.1:{up_port}",
           **{f"GATEWAY_RATE_LIMIT_{k}_PER_{p}": "1000000/second"
              for k in ("READ", "WRITE") for p in ("SUBJECT", "ADDRESS")}}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}

    def start(name: str, port: int) -> None:
        log = open(root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        factory, _, server = name.partition("@")
        if server == "granian":  # its CLI, from a folder where no gateway.py shadows it
            cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--loop", "uvloop", *GRANIAN[factory]]
            cwd = root
        else:
            cmd, cwd = [sys.executable, __file__, "serve", name, str(port)], BENCH_DIR
        procs[name] = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

    try:
        start("upstream_app", up_port)
        for variant in args.variants:
            if variant == "direct":  # the stand-in upstream itself, no gateway
                ports[variant] = up_port
                continue
            ports[variant] = free_port()
            start(variant, ports[variant])
        _wait(procs, {"upstream_app": up_port,
                      **{v: p for v, p in ports.items() if v != "direct"}}, root)
        path = DIST if args.kind == "GET" else AGREEMENT
        targets = {}
        for variant, port in ports.items():
            prefix = "" if variant == "direct" else "/ipshare"
            if args.kind == "GET":
                build = bench.get_request(port, prefix + path, token)
            else:
                build = bench.income_request(port, prefix, token, [path.split("/")[3]])
            targets[variant] = bench.Target(variant, port, build,
                                            200 if args.kind == "GET" else 201)
            bench.drive(targets[variant], args.concurrency, 1.0)  # warm-up
        if args.hold:
            out(f"holding {args.hold:.0f} s: pids "
                f"{ {v: procs[v].pid for v in args.variants} }")
            time.sleep(args.hold)
        blocks: dict[str, list[tuple[float, float, float]]] = {v: [] for v in args.variants}
        for r in range(args.pairs):
            order = args.variants if r % 2 == 0 else list(reversed(args.variants))
            for variant in order:
                roots = {variant: [procs["upstream_app" if variant == "direct" else variant].pid]}
                before = bench.cpu_of(roots)[variant]
                load = bench.drive(targets[variant], args.concurrency, args.seconds)
                used = bench.cpu_of(roots)[variant] - before
                if load.errors:
                    out(f"  {variant}: errors {load.errors}")
                n = len(load.latencies)
                blocks[variant].append((used / n * 1e6 if n else float("nan"), load.rate,
                                        pct(load.latencies, 0.5) * 1e3))
            out(f"round {r + 1}: " + ", ".join(
                f"{v} {blocks[v][-1][0]:.0f} µs {blocks[v][-1][1]:.0f}/s" for v in args.variants))
        first = args.variants[0]
        out(f"\n{args.kind} at c={args.concurrency}, {args.pairs} rounds of {args.seconds:g} s; "
            f"medians (ratios: median of the rounds' ratios to {first})")
        out("| variant | CPU µs/req | req/s | p50 ms | CPU ratio | req/s ratio |")
        out("|---|---:|---:|---:|---:|---:|")
        for v in args.variants:
            cpu = [b[0] for b in blocks[v]]
            rate = [b[1] for b in blocks[v]]
            p50 = [b[2] for b in blocks[v]]
            cpu_ratio = statistics.median(a[0] / b[0] for a, b in zip(blocks[v], blocks[first],
                                                                       strict=True))
            rate_ratio = statistics.median(a[1] / b[1] for a, b in zip(blocks[v], blocks[first],
                                                                        strict=True))
            out(f"| {v} | {statistics.median(cpu):.0f} | {statistics.median(rate):.0f} "
                f"| {statistics.median(p50):.2f} | {cpu_ratio:.2f} | {rate_ratio:.2f} |")
        return 0
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _wait(procs: dict[str, subprocess.Popen[bytes]], ports: dict[str, int],
          root: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    for name, port in ports.items():
        while True:
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{(root / f'{name}.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n"
                                   f"{(root / f'{name}.log').read_text()}")
            time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(main())
