"""What an image installs and runs holds no development code: no devkit (local servers,
the pytest plugin, test helpers, the stack launcher), no pgserver, no pytest.

The images install one member each (``uv sync --frozen --no-dev --package X`` in its
Dockerfile); the lock says what that brings in, so these tests read the lock.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = {"devkit", "pgserver", "pytest"}
RUNTIME_SOURCES = [ROOT / "libs/servicekit/src", ROOT / "gateway/src",
                   *ROOT.glob("services/*/src"), *ROOT.glob("services/*/migrations")]
DEV_IMPORTS = {"devkit", "pytest", "_pytest"}


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools/bin/uv")
    if not Path(uv).is_file():
        pytest.fail("uv is needed to read the lock: run the suite with `uv run pytest`")
    return uv


def _exported(*args: str) -> set[str]:
    """The distribution names ``uv export --frozen`` lists for ``args``."""
    proc = subprocess.run(
        [_uv(), "export", "--frozen", "--no-hashes", "--no-header", *args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = set()
    for line in proc.stdout.splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        requirement = line.removeprefix("-e ")
        if requirement.startswith("./"):
            names.add(Path(requirement).name)  # a workspace member: its folder's name
        else:
            names.add(re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].lower())
    return names


def _image_packages() -> dict[str, str]:
    """Each Dockerfile and the member its ``uv sync --no-dev --package`` installs."""
    packages = {}
    for dockerfile in sorted([ROOT / "gateway/Dockerfile", *ROOT.glob("services/*/Dockerfile")]):
        found = re.findall(r"uv sync --frozen --no-dev --package (\S+)", dockerfile.read_text())
        assert len(set(found)) == 1, f"{dockerfile}: expected one installed member, got {found}"
        packages[str(dockerfile.relative_to(ROOT))] = found[0]
    return packages


def test_the_development_environment_has_the_dev_only_packages() -> None:
    # The checks below read the names the same way: with the dev group they are there.
    assert _exported() >= DEV_ONLY


@pytest.mark.parametrize("dockerfile", sorted(_image_packages()))
def test_an_image_installs_no_dev_only_package(dockerfile: str) -> None:
    package = _image_packages()[dockerfile]
    installed = _exported("--no-dev", "--package", package)
    assert package in installed
    assert "servicekit" in installed
    assert installed & DEV_ONLY == set()


@pytest.mark.parametrize("package", ["servicekit", "gateway", "grants", "sandbox", "ipshare"])
def test_no_runtime_member_depends_on_dev_code_even_through_an_extra(package: str) -> None:
    assert _exported("--no-dev", "--all-extras", "--package", package) & DEV_ONLY == set()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_runtime_module_imports_devkit_or_pytest() -> None:
    files = [f for src in RUNTIME_SOURCES for f in sorted(src.rglob("*.py"))]
    assert len(files) > 50
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & DEV_IMPORTS) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}
