"""Serve an ASGI app factory as single-process uvicorn servers, one per port.

    python bench/_servers.py FACTORY PORT[,PORT...] [LOG_LEVEL]

Each server is one process with its own listening socket on its own 127.0.0.1 port, as
replicas behind a load balancer; the income bench spreads its client connections over
the ports round-robin (connection *i* to port *i mod N*), so every server gets the same
share of them in every run.

Why not one port: ``uvicorn --workers N`` shares one socket between its workers, and
whichever is woken first accepts everything pending (all 16 connections landed on one
worker in about one run out of five). With one ``SO_REUSEPORT`` socket per server the
kernel splits the connections by a hash of their addresses: 16 connections fell 8/8 in
some runs and about 10/6 in others, and as each process is held near 0.6 cores by its
GIL, the busier one set the pace (see README.md).

``LOG_LEVEL`` is uvicorn's (``warning`` by default: no access log). ``info`` is what
``make stack`` runs with (uvicorn's default: a line per request on stdout).

This process stays as the parent: SIGTERM or SIGINT stops every server (each runs its
lifespan shutdown, as under uvicorn's own supervisor) and then it exits.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import socket
import sys
import threading

import uvicorn


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_one(factory: str, sock: socket.socket, log_level: str) -> None:
    config = uvicorn.Config(factory, factory=True, lifespan="on", log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])


def main(factory: str, ports: list[int], log_level: str = "warning") -> int:
    ctx = mp.get_context("spawn")  # as uvicorn's own supervisor
    sockets = [_listening_socket(port) for port in ports]
    servers = [ctx.Process(target=_serve_one, args=(factory, sock, log_level), name=f"server-{i}")
               for i, sock in enumerate(sockets)]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for server in servers:
        server.start()
    while not stop.wait(0.5):
        if any(not server.is_alive() for server in servers):
            break  # one died: stop the rest rather than run with fewer servers
    for server in servers:
        if server.is_alive() and server.pid is not None:
            server.terminate()  # SIGTERM: uvicorn shuts down gracefully
    for server in servers:
        server.join(15)
        if server.is_alive():
            server.kill()
            server.join()
    for sock in sockets:
        sock.close()
    return max((abs(s.exitcode or 0) for s in servers), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], [int(p) for p in sys.argv[2].split(",")], *sys.argv[3:4]))
