"""docker-compose.yml, checked offline against the Compose Specification's schema and
against the code it runs: images and their Dockerfiles, ports, healthchecks, every
environment variable a setting of the component it is given to, the settings valid as
the process would read them, and every address one container gives another pointing at
that container's real port (Keycloak's realm and JWKS, Valkey, Kafka, PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from devkit.manifests import (
    COMPOSE_REALM,
    DOCKERFILES,
    ROOT,
    dockerfiles,
    jwks_url,
    load_settings,
    prefix,
    realm,
    realm_audience,
    setting_names,
)

SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
COMPONENTS = tuple(DOCKERFILES)  # the containers that run a project image's app
SERVICES = ("grants", "sandbox", "ipshare")
# What each service container must set (the rest keeps the code's defaults): how it
# reaches its database, broker and identity provider, and the settings the services
# gained this week, so compose shows them.
REQUIRED = {"PROFILE", "DATABASE_URL", "KAFKA_BOOTSTRAP", "JWT_ISSUER", "JWT_AUDIENCE",
            "JWT_JWKS_URL", "REVOCATION_FILE", "MIGRATE_ON_START", "OTLP_ENDPOINT",
            "BUSINESS_TIMEZONE", "RELAY_RETRY_MAX_SECONDS", "RELAY_DEGRADED_AFTER_SECONDS"}
REQUIRED_BY = {"sandbox": {"SCHEDULER_SECONDS"}}
GATEWAY_REQUIRED = {"PROFILE", "GRANTS_URL", "SANDBOX_URL", "IPSHARE_URL", "JWT_ISSUER",
                    "JWT_AUDIENCE", "JWT_JWKS_URL", "REVOCATION_FILE",
                    "RATE_LIMIT_STORAGE_URL", "OTLP_ENDPOINT"}
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def interpolate(node: Any) -> Any:
    """Compose's variable interpolation with nothing set: ``${X:-default}`` → default,
    ``$$`` → ``$``."""
    if isinstance(node, dict):
        return {k: interpolate(v) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v) for v in node]
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", node).replace("$$", "$")
    return node


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def container_port(service: dict[str, Any]) -> int:
    [mapping] = service["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source (a ./path in the repository, or a named volume)."""
    result = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        result[target] = source
    return result


def mounted_file(service: dict[str, Any], path: str) -> Path:
    """The repository file the container sees at ``path`` (through a bind mount of the
    file itself or of a directory above it)."""
    for target, source in mounts(service).items():
        if source.startswith("./") and (path == target or path.startswith(target + "/")):
            return ROOT / source[2:] / path[len(target):].lstrip("/")
    raise AssertionError(f"{path} is not in any bind mount of {sorted(mounts(service))}")


# ----------------------------------------------------------------------------- schema


def test_compose_file_follows_the_compose_specification(raw: dict[str, Any],
                                                        compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for document in (raw, compose):  # as written, and with its variables' defaults
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(document)]
        assert errors == []


def test_the_schema_refuses_what_compose_refuses(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    broken["services"]["grants"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert len(list(validator.iter_errors(broken))) == 2


def test_every_reference_names_something_defined(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    volumes = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        depends = service.get("depends_on", {})
        assert set(depends) <= names, f"{name} depends on an undefined service"
        for source in mounts(service).values():
            if source.startswith("./"):
                assert (ROOT / source[2:]).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_app_container_runs_its_image_on_the_port_its_dockerfile_exposes(
    services: dict[str, dict[str, Any]], component: str
) -> None:
    dockerfile = dockerfiles()[component]
    service = services[component]
    assert service["build"]["dockerfile"] == DOCKERFILES[component]
    assert service["image"].split(":")[0] == f"most/{component}"
    assert dockerfile.app == f"{component}.app:create_app"
    assert container_port(service) == dockerfile.expose == dockerfile.command_port
    test = service["healthcheck"]["test"]
    [url] = re.findall(r"urlopen\('([^']+)'", " ".join(test))
    assert urlsplit(url).port == dockerfile.expose
    assert urlsplit(url).path in ("/ready", "/health")


def test_every_project_image_is_built_from_the_dockerfile_that_builds_it(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        if image.startswith("most/"):
            component = image.split(":")[0].removeprefix("most/")
            assert service["build"]["dockerfile"] == DOCKERFILES[component], name


def test_every_long_running_server_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name in (*COMPONENTS, "postgres", "kafka", "keycloak", "valkey"):
        assert services[name]["healthcheck"]["test"], name


@pytest.mark.parametrize("job", [f"{s}-migrate" for s in SERVICES])
def test_migration_jobs_run_alembic_of_their_own_service(services: dict[str, Any],
                                                         job: str) -> None:
    service = services[job]
    component = job.removesuffix("-migrate")
    assert service["image"].split(":")[0] == f"most/{component}"
    config = service["command"][service["command"].index("-c") + 1]
    assert (ROOT / config).is_file() and config == f"services/{component}/alembic.ini"
    assert set(env(service)) <= setting_names(component)
    assert services[component]["depends_on"][job]["condition"] == \
        "service_completed_successfully"


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_variable_given_to_an_app_is_one_of_its_settings(
    services: dict[str, Any], component: str
) -> None:
    unknown = set(env(services[component])) - setting_names(component)
    assert unknown == set(), f"not settings of {component}: {sorted(unknown)}"


@pytest.mark.parametrize("component", SERVICES)
def test_each_service_sets_what_it_needs_and_its_new_settings(
    services: dict[str, Any], component: str
) -> None:
    wanted = {prefix(component) + n for n in REQUIRED | REQUIRED_BY.get(component, set())}
    assert wanted - set(env(services[component])) == set()


def test_the_gateway_sets_what_it_needs(services: dict[str, Any]) -> None:
    wanted = {"GATEWAY_" + n for n in GATEWAY_REQUIRED}
    assert wanted - set(env(services["gateway"])) == set()


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_app_reads_its_settings_as_valid_production_settings(
    services: dict[str, Any], component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(component, env(services[component]), monkeypatch)
    assert settings.profile == "prod"  # the prod profile's own checks passed too
    if component != "gateway":
        assert settings.migrate_on_start is False  # the migrate jobs own the schema


# ----------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("component", SERVICES)
def test_services_reach_their_own_database_and_the_broker(services: dict[str, Any],
                                                          component: str) -> None:
    variables = env(services[component])
    url = urlsplit(variables[f"{prefix(component)}DATABASE_URL"])
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{component}")
    assert url.password == url.username == component
    initdb = (ROOT / "deploy/compose/initdb.sql").read_text()
    assert re.search(rf"CREATE ROLE {component} .*PASSWORD '{component}'", initdb)
    assert re.search(rf"CREATE DATABASE {component} OWNER {component}", initdb)
    assert env(services[f"{component}-migrate"])[f"{prefix(component)}DATABASE_URL"] == \
        variables[f"{prefix(component)}DATABASE_URL"]
    kafka = env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    internal = re.search(r"INTERNAL://([^,]+)", kafka).group(1)
    assert variables[f"{prefix(component)}KAFKA_BOOTSTRAP"] == internal


def test_the_gateway_reaches_each_service_on_its_container_port(services: dict[str, Any],
                                                                 ) -> None:
    variables = env(services["gateway"])
    for component in SERVICES:
        assert variables[f"GATEWAY_{component.upper()}_URL"] == \
            f"http://{component}:{dockerfiles()[component].expose}"
        assert services["gateway"]["depends_on"][component]["condition"] == "service_healthy"


def test_the_gateway_shares_its_limits_and_revocations_through_valkey(
    services: dict[str, Any],
) -> None:
    url = urlsplit(env(services["gateway"])["GATEWAY_RATE_LIMIT_STORAGE_URL"])
    assert (url.scheme, url.hostname, url.port) == ("redis", "valkey", 6379)
    valkey = services["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    assert "--appendonly" in valkey["command"]  # revocations survive a restart
    assert mounts(valkey)["/data"] in {*services, "valkeydata"}
    assert services["gateway"]["depends_on"]["valkey"]["condition"] == "service_healthy"


def test_every_app_reads_keycloaks_jwks_and_trusts_its_realm(
    services: dict[str, Any],
) -> None:
    keycloak = services["keycloak"]
    realm_file = mounts(keycloak)["/opt/keycloak/data/import/most-realm.json"]
    assert realm_file == f"./{COMPOSE_REALM}"
    assert "--import-realm" in keycloak["command"]
    the_realm = realm(COMPOSE_REALM)
    kc = env(keycloak)
    issuer = f"{kc['KC_HOSTNAME']}/realms/{the_realm['realm']}"
    assert kc["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"  # JWKS at keycloak:8080
    for component in COMPONENTS:
        variables = env(services[component])
        assert variables[f"{prefix(component)}JWT_JWKS_URL"] == jwks_url(
            f"http://keycloak:{kc['KC_HTTP_PORT']}", the_realm["realm"]), component
        assert f"{prefix(component)}JWT_PUBLIC_KEY_FILE" not in variables, component
        assert services[component]["depends_on"]["keycloak"]["condition"] == \
            "service_healthy", component
        assert variables[f"{prefix(component)}JWT_ISSUER"] == issuer, component
        assert variables[f"{prefix(component)}JWT_AUDIENCE"] == realm_audience(the_realm)
    # The host port and the issuer move together.
    raw_issuer = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
        "services"]["grants"]["environment"]["GRANTS_JWT_ISSUER"]
    assert "${KEYCLOAK_HOST_PORT:-8080}" in raw_issuer
    assert keycloak["ports"] == ["127.0.0.1:8080:8080"]


@pytest.mark.parametrize("component", SERVICES)
def test_services_read_the_revocation_file(
    services: dict[str, Any], component: str
) -> None:
    service = services[component]
    variables = env(service)
    revoked = mounted_file(service, variables[f"{prefix(component)}REVOCATION_FILE"])
    assert json.loads(revoked.read_text()) == {"jti": [], "sub": []}


def test_everything_listens_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), name
