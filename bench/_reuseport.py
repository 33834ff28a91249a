"""Serve an ASGI app factory as N single-process uvicorn servers on one port.

    python bench/_reuseport.py FACTORY PORT WORKERS

Each server has its own listening socket, bound with ``SO_REUSEPORT``, so the kernel
spreads new connections across them (by a hash of the connection's addresses), as a
load balancer spreads them across replicas. ``uvicorn --workers N`` instead shares one
socket between its workers, and whichever is woken first accepts everything pending: the
16 keep-alive connections the income bench opens at once all landed on one worker in
about one run out of five (0.24× the floor instead of 0.39–0.41×; see README.md).

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
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_one(factory: str, sock: socket.socket) -> None:
    config = uvicorn.Config(factory, factory=True, lifespan="on", log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def main(factory: str, port: int, workers: int) -> int:
    ctx = mp.get_context("spawn")  # as uvicorn's own supervisor
    sockets = [_listening_socket(port) for _ in range(workers)]
    servers = [ctx.Process(target=_serve_one, args=(factory, sock), name=f"server-{i}")
               for i, sock in enumerate(sockets)]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for server in servers:
        server.start()
    while not stop.wait(0.5):
        if any(not server.is_alive() for server in servers):
            break  # one died: stop the rest rather than run with fewer workers
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
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
