"""What the dev tools fetch once and keep (the Kafka jars, the AsyncAPI parser).

``cache_folder(name)`` is ``$MOST_CACHE_DIR/<name>``, else ``<repo>/.cache/<name>`` (the uv
workspace's root), else ``~/.cache/most/<name>``. ``build_once`` fills a cache folder
once per version of its inputs, one process at a time.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path


def cache_folder(name: str) -> Path:
    """The folder ``name``'s files are cached in."""
    if env := os.environ.get("MOST_CACHE_DIR"):
        return Path(env) / name
    for parent in Path(__file__).resolve().parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return parent / ".cache" / name
    return Path.home() / ".cache" / "most" / name


def build_once(cache: Path, marker: Path, stamp: str, build: Callable[[], None]) -> None:
    """Run ``build`` unless ``marker`` already holds ``stamp`` (the inputs' digest), then
    write it there. Processes wait for each other on ``cache/.lock``: one builds, the
    others find it built."""
    if marker.exists() and marker.read_text() == stamp:
        return
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == stamp:
            return
        build()
        marker.write_text(stamp)
