"""The code's own facts that docker-compose.yml and deploy/ must agree with: settings
classes, Dockerfiles, the identity provider's realm files. Used by tests/deploy."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from grants.settings import GrantsSettings
from ipshare.settings import IpshareSettings
from sandbox.settings import SandboxSettings

ROOT = Path(__file__).resolve().parents[4]

# The code's settings classes by the component their image runs.
SETTINGS: dict[str, type[BaseSettings]] = {
    "grants": GrantsSettings, "sandbox": SandboxSettings, "ipshare": IpshareSettings,
    "gateway": GatewaySettings,
}
DOCKERFILES = {"grants": "services/grants/Dockerfile", "sandbox": "services/sandbox/Dockerfile",
               "ipshare": "services/ipshare/Dockerfile", "gateway": "gateway/Dockerfile"}


def prefix(component: str) -> str:
    return SETTINGS[component].model_config["env_prefix"]


def setting_names(component: str) -> set[str]:
    """Every environment variable the component's settings class reads."""
    return {prefix(component) + name.upper() for name in SETTINGS[component].model_fields}


def load_settings(component: str, env: dict[str, str],
                  monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """The component's settings as its process would read them from ``env`` alone."""
    for name in list(os.environ):
        if name.upper().startswith(prefix(component)):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SETTINGS[component]()


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    expose: int
    command: list[str]
    healthcheck_url: str

    @property
    def app(self) -> str:
        """The ASGI factory its command serves (``grants.app:create_app``)."""
        return next(arg for arg in self.command if arg.endswith(":create_app"))

    @property
    def command_port(self) -> int:
        return int(self.command[self.command.index("--port") + 1])


def read_dockerfile(component: str) -> Dockerfile:
    path = ROOT / DOCKERFILES[component]
    text = path.read_text()
    [expose] = re.findall(r"^EXPOSE (\d+)$", text, re.M)
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, re.M)
    [health] = re.findall(r"urlopen\('([^']+)'", text)
    return Dockerfile(path, int(expose), json.loads(cmd), health)


def dockerfiles() -> dict[str, Dockerfile]:
    return {component: read_dockerfile(component) for component in DOCKERFILES}


def realm(path: str) -> dict[str, Any]:
    return json.loads((ROOT / path).read_text())


DEPLOY_REALM = "deploy/base/keycloak/most-realm.json"
COMPOSE_REALM = "deploy/compose/keycloak/most-realm.json"
COMPOSE_REALM_PUBLIC_KEY = "deploy/compose/keycloak/most-realm-public.pem"


def jwks_url(keycloak: str, realm_name: str) -> str:
    return f"{keycloak}/realms/{realm_name}/protocol/openid-connect/certs"


def realm_audience(realm_doc: dict[str, Any]) -> str:
    """The audience the realm's platform client scope puts in every access token."""
    [scope] = [s for s in realm_doc["clientScopes"] if s["name"] == "most-platform"]
    [mapper] = [m for m in scope["protocolMappers"]
                if m["protocolMapper"] == "oidc-audience-mapper"]
    return mapper["config"]["included.client.audience"]
