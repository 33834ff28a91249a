"""``python -m gateway``: the whole system in one process (what ``make run`` starts).

``python -m gateway migrate`` only brings the embedded SQLite databases to head.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from servicekit.settings import default_var_dir

TOKEN_HINT = """\
MOST platform (embedded) on {url}
  a token:     curl -s -X POST {url}/dev/tokens -H 'content-type: application/json' \\
                 -d '{{"sub":"pm-1","name":"PM","org":"MOST","roles":["program_manager"]}}'
  first call:  curl -s {url}/grants/v1/calls
  API docs:    {url}/docs  (every service's operations, merged: {url}/openapi.json)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["run", "migrate"], default="run")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--var-dir", type=Path, default=default_var_dir())
    args = parser.parse_args(argv)

    if args.command == "migrate":
        return migrate(args.var_dir)

    import uvicorn

    from gateway.embedded import create_embedded_app
    from gateway.server import GatewayProtocol
    from gateway.settings import GatewaySettings
    from servicekit.telemetry import configure_logging

    settings = GatewaySettings()
    configure_logging(settings.log_level, json=settings.log_json)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    app = create_embedded_app(args.var_dir)
    sys.stderr.write(TOKEN_HINT.format(url=f"http://{args.host}:{args.port}"))
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, lifespan="on",
                http=GatewayProtocol, proxy_headers=False)
    return 0


def migrate(var_dir: Path) -> int:
    from gateway.embedded import sqlite_url
    from grants.app import migrate as migrate_grants
    from ipshare.app import migrate as migrate_ipshare
    from sandbox.app import migrate as migrate_sandbox

    var_dir.mkdir(parents=True, exist_ok=True)
    for name, migrate_service in (("grants", migrate_grants), ("sandbox", migrate_sandbox),
                                  ("ipshare", migrate_ipshare)):
        url = sqlite_url(var_dir, name)
        migrate_service(url)
        sys.stdout.write(f"{name}: {url} at head\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
