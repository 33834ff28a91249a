"""The route table covers every operation of the three services, and matches as routing
does."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from gateway import route_table
from gateway.routes import RouteTable, normalised
from gateway.settings import SERVICES
from servicekit.auth import ROLES

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def service_apps(var: Path) -> dict[str, FastAPI]:
    from grants.app import create_app as grants
    from grants.settings import GrantsSettings
    from ipshare.app import create_app as ipshare
    from ipshare.settings import IpshareSettings
    from sandbox.app import create_app as sandbox
    from sandbox.settings import SandboxSettings

    keys = var / "keys"
    return {
        "grants": grants(GrantsSettings(database_url=f"sqlite:///{var}/g.db", dev_key_dir=keys),
                         background=False),
        "sandbox": sandbox(SandboxSettings(database_url=f"sqlite:///{var}/s.db",
                                           dev_key_dir=keys), background=False),
        "ipshare": ipshare(IpshareSettings(database_url=f"sqlite:///{var}/i.db",
                                           dev_key_dir=keys), background=False),
    }


def operations(app: FastAPI, prefix: str) -> set[tuple[str, str]]:
    """Every operation a service documents, as ``(METHOD, /prefix/path with {})``."""
    return {(method.upper(), normalised(f"/{prefix}{path}"))
            for path, item in app.openapi()["paths"].items()
            for method in item if method in HTTP_METHODS}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    return service_apps(tmp_path_factory.mktemp("services"))


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_of_the_service_has_a_row_in_the_table(
    apps: dict[str, FastAPI], service: str
) -> None:
    table = {(method, normalised(path)) for method, path, _ in route_table.ROUTES}
    missing = sorted(operations(apps[service], service) - table)
    assert missing == [], (
        f"{service} serves operations the gateway's route table lacks (the gateway refuses "
        f"them): add a row for each to gateway/src/gateway/route_table.py: {missing}")


def test_every_row_names_platform_roles_or_an_access_kind() -> None:
    for method, path, access in route_table.ROUTES:
        assert method in {"GET", "POST", "PUT", "DELETE", "PATCH"}, path
        if isinstance(access, tuple):
            assert access and set(access) <= ROLES, (method, path)
        else:
            assert access in (route_table.PUBLIC, route_table.PROBE, route_table.INTERNAL)


def test_the_same_operation_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        RouteTable([("GET", "/grants/v1/calls/{a}", "public"),
                    ("GET", "/grants/v1/calls/{b}", ("admin",))])


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        RouteTable([("GET", "/grants/v1/calls", ("emperor",))])


def test_the_contracts_public_routes_are_public() -> None:
    table = RouteTable.default()
    for method, path in [("GET", "/grants/v1/calls"), ("GET", "/grants/v1/calls/c-1"),
                         ("GET", "/sandbox/v1/register"), ("GET", "/sandbox/v1/register/p-1"),
                         ("GET", "/sandbox/v1/sectors"), ("GET", "/health"),
                         ("GET", "/grants/health"), ("GET", "/ipshare/ready")]:
        route = table.match(method, path)
        assert route is not None and route.public, (method, path)


def test_head_is_answered_by_the_get_row() -> None:
    table = RouteTable.default()
    assert table.match("HEAD", "/ipshare/v1/assets/a-1") is table.match(
        "GET", "/ipshare/v1/assets/a-1")


def test_a_literal_segment_wins_over_a_parameter() -> None:
    table = RouteTable([("POST", "/sandbox/v1/pilots/{pilot_id}/exit", ("sandbox_applicant",)),
                        ("POST", "/sandbox/v1/pilots/{pilot_id}/{action}", ("reviewer",)),
                        ("POST", "/sandbox/v1/pilots/{pilot_id}/exit/accept", ("reviewer",))])
    assert table.match("POST", "/sandbox/v1/pilots/p/exit").template.endswith("/exit")
    assert table.match("POST", "/sandbox/v1/pilots/p/exit/accept").template.endswith("/accept")
    assert table.match("POST", "/sandbox/v1/pilots/p/suspend").template.endswith("{action}")


def test_a_parameter_is_one_segment_and_never_a_dot_segment() -> None:
    table = RouteTable.default()
    assert table.match("GET", "/grants/v1/calls/a/b") is None
    assert table.match("GET", "/grants/v1/calls/..") is None
    assert table.match("GET", "/grants/v1/calls/.") is None
    assert table.match("GET", "/ipshare/v1/assets/../agreements") is None
    assert table.match("GET", "/grants/v1/calls/..x") is not None  # only exact dot segments


def test_services_internal_paths_have_no_row() -> None:
    table = RouteTable.default()
    for service in SERVICES:
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert table.match("GET", f"/{service}{path}") is None


def test_allowed_methods_of_a_path_include_head_with_get() -> None:
    assert RouteTable.default().allowed_methods("/grants/v1/calls") == ["GET", "HEAD", "POST"]
