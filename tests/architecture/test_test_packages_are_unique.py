"""Test folders that are packages (an ``__init__.py``) have names of their own.

Under pytest's importlib mode a test module in a package is imported as that package's
module (``unit.test_handlers`` for ``services/sandbox/tests/unit``): two packages of
one name collide, and a relative import in one finds the other's modules. Each service
ran green alone while the whole suite failed to collect.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def package_name(folder: Path) -> str:
    """The dotted name pytest gives the package ``folder``: up to the first folder
    without an ``__init__.py``."""
    parts = []
    while (folder / "__init__.py").exists():
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts))


def test_no_two_test_packages_share_a_name() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = config["tool"]["pytest"]["ini_options"]["testpaths"]
    where: dict[str, list[str]] = defaultdict(list)
    for testpath in testpaths:
        for init in (ROOT / testpath).rglob("__init__.py"):
            if ".venv" in init.parts or "__pycache__" in init.parts:
                continue
            where[package_name(init.parent)].append(str(init.parent.relative_to(ROOT)))
    assert where, "no test package found: the walk is wrong"
    shared = {name: folders for name, folders in where.items() if len(folders) > 1}
    assert shared == {}
