"""``python -m devkit.serve FACTORY --fd N``: one uvicorn process on a socket it is handed.

The local stack's supervisor (``devkit.supervisor``) binds each worker's listening socket
itself and passes it down, so the port stays bound while a worker restarts (connections
wait in the socket's backlog instead of being refused). Once the app's lifespan start-up
has finished and the server accepts, this writes ``ready`` to the file descriptor named
by ``MOST_READY_FD`` (a pipe the supervisor reads), so the supervisor knows it serves.
A start-up that fails exits with status 3, as the ``uvicorn`` command does.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket

import uvicorn

READY_FD_ENV = "MOST_READY_FD"
STARTUP_FAILURE = 3


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that tells a pipe when it has started serving."""

    def __init__(self, config: uvicorn.Config, ready_fd: int | None) -> None:
        super().__init__(config)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._ready_fd is not None:
            fd, self._ready_fd = self._ready_fd, None
            with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
                os.write(fd, b"ready\n")
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.serve", description=__doc__)
    parser.add_argument("factory", help="module:callable returning the ASGI app")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        help="no uvicorn access line (an app that writes its own)")
    parser.add_argument("--http", default="auto",
                        help="uvicorn's HTTP protocol: auto, or module:Class (the gateway's)")
    parser.add_argument("--no-proxy-headers", dest="proxy_headers", action="store_false",
                        help="ignore X-Forwarded-* (an app that decides whom to trust)")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)  # family and type read from the descriptor
    ready_fd = os.environ.pop(READY_FD_ENV, None)
    config = uvicorn.Config(args.factory, factory=True, lifespan="on",
                            log_level=args.log_level, access_log=args.access_log,
                            http=args.http, proxy_headers=args.proxy_headers)
    server = NotifyingServer(config, int(ready_fd) if ready_fd else None)
    logging.getLogger("uvicorn.error").info("serving %s on %s:%d", args.factory,
                                            *sock.getsockname()[:2])
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
