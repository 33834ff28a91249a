"""Services never import each other (tests included) and each keeps its tables on its own
metadata; the kit's tables alone are on SQLModel's."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from sqlmodel import SQLModel

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
# What a service may not import: the other services, and the gateway in front of them.
FOREIGN = {*SERVICES, "gateway"}


def _imported(path: Path) -> set[str]:
    """Top-level packages a module imports, statically or by a literal ``import_module``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in {"import_module", "__import__"}):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_services_are_found() -> None:
    assert {"grants", "sandbox", "ipshare"} <= set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_nothing_under_a_service_folder_imports_another_service(service: str) -> None:
    files = sorted((ROOT / "services" / service).rglob("*.py"))
    assert files
    imports = {str(f.relative_to(ROOT)): _imported(f) & (FOREIGN - {service}) for f in files}
    assert {f: sorted(names) for f, names in imports.items() if names} == {}


def _tables_of(module: object) -> list[type[SQLModel]]:
    return [cls for cls in vars(module).values()
            if isinstance(cls, type) and issubclass(cls, SQLModel) and hasattr(cls, "__table__")
            and cls.__module__ == module.__name__]  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_keeps_its_tables_on_its_own_metadata(service: str) -> None:
    models = importlib.import_module(f"{service}.models")
    tables = _tables_of(models)
    assert tables
    base = models.Base
    assert base.metadata is not SQLModel.metadata
    assert [t.__name__ for t in tables if not issubclass(t, base)] == []
    assert set(base.metadata.tables) == {t.__table__.name for t in tables}


def test_only_the_kits_tables_are_on_sqlmodels_metadata() -> None:
    importlib.import_module("servicekit.migrations")
    for service in SERVICES:
        importlib.import_module(f"{service}.app")
    kit = {mapper.class_.__table__.name: mapper.class_.__module__
           for mapper in SQLModel._sa_registry.mappers}
    assert {name: module for name, module in kit.items()
            if not module.startswith("servicekit.")} == {}
    assert set(SQLModel.metadata.tables) == set(kit)
    assert {"outbox", "processed_events", "idempotency_keys", "audit_log"} <= set(kit)
