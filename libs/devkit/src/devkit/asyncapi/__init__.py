"""The official AsyncAPI parser (npm ``@asyncapi/parser``), run on ``docs/asyncapi.yaml``.

``package.json`` and ``package-lock.json`` beside this module pin the parser and every
package under it (by integrity hash); :func:`ensure_parser` installs them once with
``npm ci`` under ``<repo>/.cache/asyncapi`` (or ``$MOST_CACHE_DIR/asyncapi``), again
only when the lock file changes. No install script runs, and npm's audit, funding and
update notices are off (nothing is reported anywhere; the parser itself sends nothing).
:func:`parse` runs ``parse.mjs`` with node and returns what the parser said.

Needs node 20 and npm on PATH, and the npm registry once per lock file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from devkit.cache import build_once, cache_folder

FILES = ("package.json", "package-lock.json", "parse.mjs")
# Nothing phones home: npm's notices and any analytics a package might consult.
QUIET = {"npm_config_audit": "false", "npm_config_fund": "false",
         "npm_config_update_notifier": "false", "DO_NOT_TRACK": "1",
         "ASYNCAPI_METRICS": "false"}


def _here(name: str) -> Path:
    return Path(__file__).with_name(name)


def _environment() -> dict[str, str]:
    return {**os.environ, **QUIET}


def ensure_parser(cache_dir: Path | None = None) -> Path:
    """The folder holding ``parse.mjs`` and its ``node_modules``, installed if needed."""
    cache = cache_dir or cache_folder("asyncapi")
    stamp = hashlib.sha256(b"".join(_here(f).read_bytes() for f in FILES)).hexdigest()
    marker = cache / ".complete"

    def install() -> None:
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} (node 20 and npm) is needed to run the AsyncAPI "
                                   "parser on docs/asyncapi.yaml")
        marker.unlink(missing_ok=True)
        shutil.rmtree(cache / "node_modules", ignore_errors=True)
        for name in FILES:
            shutil.copyfile(_here(name), cache / name)
        proc = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=cache, env=_environment(), capture_output=True, text=True, timeout=600,
            check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"npm ci of the AsyncAPI parser failed:\n{proc.stdout}"
                               f"{proc.stderr}")

    build_once(cache, marker, stamp, install)
    return cache


def parse(document: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """What the parser says of ``document``: ``valid``, ``diagnostics`` (severity, code,
    message, path) and, when valid, its ``version``, ``channels``, ``messages`` and
    ``operations``."""
    folder = ensure_parser(cache_dir)
    proc = subprocess.run(["node", str(folder / "parse.mjs"), str(document)], cwd=folder,
                          env=_environment(), capture_output=True, text=True, timeout=300,
                          check=False)
    if not proc.stdout.strip():
        raise RuntimeError(f"the AsyncAPI parser said nothing:\n{proc.stderr}")
    return json.loads(proc.stdout)
