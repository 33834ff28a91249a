"""Each service (and the gateway) reads its settings one way: its ``create_app()``, the
factory its image runs, builds its settings class from its environment prefix when it is
given none. A settings module holds the class and nothing else to call."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
SETTINGS_MODULES = {**{s: ROOT / "services" / s / "src" / s / "settings.py" for s in SERVICES},
                    "gateway": ROOT / "gateway" / "src" / "gateway" / "settings.py"}


@pytest.mark.parametrize("member", sorted(SETTINGS_MODULES))
def test_a_settings_module_offers_no_second_way_to_read_the_settings(member: str) -> None:
    tree = ast.parse(SETTINGS_MODULES[member].read_text())
    functions = [node.name for node in tree.body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert functions == [], f"{member}: read the settings through create_app()"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_built_without_settings_reads_its_environment(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = service.upper()
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv(f"{prefix}_DATABASE_URL", url)
    monkeypatch.setenv(f"{prefix}_DEV_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv(f"{prefix}_READY_TIMEOUT_SECONDS", "0.75")

    settings = importlib.import_module(f"{service}.app").create_app().state.kit.settings

    assert (settings.service_name, settings.database_url) == (service, url)
    assert settings.ready_timeout_seconds == 0.75
