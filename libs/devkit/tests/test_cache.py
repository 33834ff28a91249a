"""The dev tools' cache: a folder is built once per version of its inputs, by one process
at a time, and a failed build is tried again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from devkit.cache import build_once, cache_folder


def test_a_cache_is_built_once_per_stamp_and_again_for_a_new_one(tmp_path: Path):
    builds: list[str] = []
    marker = tmp_path / ".complete"
    for stamp in ("v1", "v1", "v2", "v2"):
        build_once(tmp_path, marker, stamp, lambda s=stamp: builds.append(s))
    assert builds == ["v1", "v2"]
    assert marker.read_text() == "v2"


def test_a_failed_build_is_not_marked_and_runs_again(tmp_path: Path):
    marker = tmp_path / ".complete"

    def fail() -> None:
        raise RuntimeError("the registry is down")

    with pytest.raises(RuntimeError, match="registry"):
        build_once(tmp_path, marker, "v1", fail)
    assert not marker.exists()
    builds: list[str] = []
    build_once(tmp_path, marker, "v1", lambda: builds.append("v1"))
    assert builds == ["v1"]


def test_builders_that_arrive_together_build_once(tmp_path: Path):
    builds: list[int] = []

    def slow_build() -> None:
        builds.append(1)
        time.sleep(0.3)

    threads = [threading.Thread(target=build_once,
                                args=(tmp_path, tmp_path / ".complete", "v1", slow_build))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert builds == [1]


def test_the_cache_folder_is_under_most_cache_dir_when_it_is_set(tmp_path: Path,
                                                                 monkeypatch):
    monkeypatch.setenv("MOST_CACHE_DIR", str(tmp_path))
    assert cache_folder("kafka") == tmp_path / "kafka"


def test_the_cache_folder_is_the_repository_s_own_otherwise(monkeypatch):
    monkeypatch.delenv("MOST_CACHE_DIR", raising=False)
    folder = cache_folder("asyncapi")
    assert folder.name == "asyncapi" and folder.parent.name == ".cache"
    assert (folder.parent.parent / "pyproject.toml").is_file()
