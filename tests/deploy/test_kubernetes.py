"""deploy/, checked offline: every kustomization renders (``kubectl kustomize``, kustomize
v5), core kinds validate strictly against Kubernetes' schemas (``kubernetes-validate``),
the Strimzi and CloudNativePG resources against their operators' CRD schemas (vendored
in data/crds, made strict as ``kubectl apply --validate=strict`` would), and what the
manifests say agrees with the code: images and ports with the Dockerfiles, probes with
the services' endpoints, every ConfigMap key a setting and every setting in a ConfigMap,
the settings valid in the prod profile, and each address pointing at a real Service,
topic, database, identity provider realm and Valkey.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from devkit.manifests import (
    DEPLOY_REALM,
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

KUBERNETES_VERSION = "1.32"  # the oldest release the manifests are written for
CRDS = Path(__file__).parent / "data" / "crds"
OVERLAYS = ("staging", "production")
TARGETS = ("base", *(f"overlays/{o}" for o in OVERLAYS))
COMPONENTS = tuple(DOCKERFILES)
SERVICES = ("grants", "sandbox", "ipshare")
# Settings a ConfigMap leaves out on purpose, and why.
NOT_IN_CONFIGMAPS = {
    "SERVICE_NAME": "the service's identity in the code (its topic and consumer group)",
    "DEV_KEY_DIR": "the development token issuer's keys: dev profile only",
    "SECTORS_FILE": "unset: the sector profiles the sandbox image ships are in force",
    "DATABASE_URL": "from the CloudNativePG Secret <service>-db-app, in the Deployment",
    "RATE_LIMIT_STORAGE_URL": "carries Valkey's password: set in the Deployment",
    "JWT_PUBLIC_KEY_FILE": "the realm's keys come from Keycloak's JWKS (JWT_JWKS_URL)",
}
# ... and which component each of those applies to.
LEFT_OUT_OF = {"SERVICE_NAME": SERVICES, "DEV_KEY_DIR": COMPONENTS, "SECTORS_FILE": ("sandbox",),
               "DATABASE_URL": SERVICES, "RATE_LIMIT_STORAGE_URL": ("gateway",),
               "JWT_PUBLIC_KEY_FILE": COMPONENTS}
# Secrets the environment creates before the first apply (docs/operations.md).
EXTERNAL_SECRETS = {"valkey-auth", "keycloak-admin"}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not on PATH: the kustomizations cannot be rendered here "
           "(install kubectl, whose `kubectl kustomize` is kustomize v5)")


@cache
def rendered(target: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / target)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def base_name(name: str) -> str:
    """A generated ConfigMap's or Secret's name without kustomize's hash suffix."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def app_deployment(docs: tuple[dict[str, Any], ...], component: str) -> dict[str, Any]:
    return of_kind(docs, "Deployment")[component]


def environment(docs: tuple[dict[str, Any], ...], container: dict[str, Any]
                ) -> dict[str, str]:
    """A container's environment: its ConfigMaps, then its own ``env`` (a secret's value
    as ``secret--NAME--KEY``, ``$(VAR)`` expanded as Kubernetes does)."""
    configmaps = {base_name(n): c for n, c in of_kind(docs, "ConfigMap").items()}
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values.update(configmaps[base_name(source["configMapRef"]["name"])]["data"])
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)],
                                         var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            values[var["name"]] = f"secret--{ref['name']}--{ref['key']}"
    return values


# ----------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("target", TARGETS)
def test_the_kustomization_renders(target: str) -> None:
    kinds = {d["kind"] for d in rendered(target)}
    assert {"Deployment", "Service", "ConfigMap", "Kafka", "KafkaTopic", "Cluster",
            "StatefulSet"} <= kinds


@pytest.mark.parametrize("target", TARGETS)
def test_core_kinds_validate_strictly_against_kubernetes_schemas(target: str) -> None:
    errors, validated = [], 0
    for doc in rendered(target):
        if doc["apiVersion"].split("/")[0] in CRD_GROUPS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            validated += 1
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} "
                          f"{'.'.join(map(str, exc.path))}: {exc.message}")
    assert errors == []
    assert validated >= 20


def test_strict_validation_refuses_an_unknown_field() -> None:
    deployment = copy.deepcopy(app_deployment(rendered("overlays/production"), "grants"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {
        "httpGet": {"path": "/ready", "port": "http"}}  # a typo of readinessProbe
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def strict(schema: Any) -> Any:
    """A structural schema that, like the API server's strict field validation, refuses
    fields it does not list (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    validators = {}
    for path in CRDS.glob("*.json"):
        schema = json.loads(path.read_text())
        crd = schema.pop("x-crd")
        schema = strict(schema)
        schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by the API
        validators[(f"{crd['group']}/{crd['version']}", crd["kind"])] = \
            jsonschema.Draft7Validator(schema)
    return validators


CRD_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io"}


@pytest.mark.parametrize("target", TARGETS)
def test_strimzi_and_cloudnativepg_resources_validate_against_their_crds(target: str) -> None:
    errors, validated = [], set()
    for doc in rendered(target):
        if doc["apiVersion"].split("/")[0] not in CRD_GROUPS:
            continue
        validator = crd_validators().get((doc["apiVersion"], doc["kind"]))
        assert validator is not None, f"no vendored CRD schema for {doc['apiVersion']} " \
                                      f"{doc['kind']} (tests/deploy/data/README.md)"
        errors += [f"{doc['kind']}/{doc['metadata']['name']} "
                   f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                   for e in validator.iter_errors(doc)]
        validated.add(doc["kind"])
    assert errors == []
    assert validated == {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster"}


def test_the_crd_schemas_refuse_a_misspelt_or_missing_field() -> None:
    docs = rendered("base")
    topic = copy.deepcopy(next(iter(of_kind(docs, "KafkaTopic").values())))
    topic["spec"]["replica"] = topic["spec"].pop("replicas")
    cluster = copy.deepcopy(next(iter(of_kind(docs, "Cluster").values())))
    cluster["spec"]["storage"]["sizee"] = cluster["spec"]["storage"].pop("size")
    kafka = copy.deepcopy(next(iter(of_kind(docs, "Kafka").values())))
    del kafka["spec"]["kafka"]["listeners"]  # required by the CRD
    for doc in (topic, cluster, kafka):
        validator = crd_validators()[(doc["apiVersion"], doc["kind"])]
        assert list(validator.iter_errors(doc)), doc["kind"]


# ----------------------------------------------------------------------------- the code


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_each_app_runs_its_image_on_the_port_its_dockerfile_exposes(target: str,
                                                                    component: str) -> None:
    docs = rendered(target)
    dockerfile = dockerfiles()[component]
    deployment = app_deployment(docs, component)
    for container in containers(deployment):
        assert re.fullmatch(rf"(.+/)?most/{component}(:.+)?", container["image"]), \
            container["image"]
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    [port] = app["ports"]
    assert (port["name"], port["containerPort"]) == ("http", dockerfile.expose)
    assert app["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    [service] = [s for s in of_kind(docs, "Service").values()
                 if s["spec"]["selector"] == {"app.kubernetes.io/name": component}]
    assert service["metadata"]["name"] == component
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == \
        [(dockerfile.expose, "http")]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_every_configmap_key_is_a_setting_and_every_setting_is_configured(
    target: str, component: str
) -> None:
    docs = rendered(target)
    app = app_deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]
    configmap = of_kind(docs, "ConfigMap")[f"{component}-config"]["data"]
    assert set(configmap) - setting_names(component) == set(), "not settings"
    own_env = {v["name"] for v in app.get("env", [])} & setting_names(component)
    left_out = {prefix(component) + name for name in NOT_IN_CONFIGMAPS
                if component in LEFT_OUT_OF[name]}
    missing = setting_names(component) - set(configmap) - own_env - left_out
    assert missing == set(), (
        f"settings of {component} that deploy/base/{component}/configmap.yaml does not "
        f"list: {sorted(missing)}; add each with its production value")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_each_app_reads_valid_production_settings(target: str, component: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered(target)
    for container in containers(app_deployment(docs, component)):
        env = {k: v for k, v in environment(docs, container).items()
               if k in setting_names(component)}
        if container["name"] != component:  # the migration wait: the database URL only
            assert set(env) == {f"{prefix(component)}DATABASE_URL"}
            continue
        settings = load_settings(component, {
            k: f"postgresql://app@db/{v}" if k.endswith("_DATABASE_URL") else v
            for k, v in env.items()}, monkeypatch)
        assert settings.profile == "prod"  # the prod profile's own checks passed too
        if component != "gateway":
            assert settings.migrate_on_start is False  # the migrate Job owns the schema


@pytest.mark.parametrize("target", TARGETS)
def test_migration_jobs_run_alembic_of_their_own_service(target: str) -> None:
    docs = rendered(target)
    for component in SERVICES:
        job = of_kind(docs, "Job")[f"{component}-migrate"]
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert re.fullmatch(rf"(.+/)?most/{component}(:.+)?", container["image"])
        config = container["command"][container["command"].index("-c") + 1]
        assert config == f"services/{component}/alembic.ini" and (ROOT / config).is_file()
        assert [v["name"] for v in container["env"]] == [f"{prefix(component)}DATABASE_URL"]


# ----------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("target", TARGETS)
def test_every_referenced_secret_and_configmap_exists_or_is_the_environments(target: str,
                                                                             ) -> None:
    docs = rendered(target)
    configmaps = set(of_kind(docs, "ConfigMap"))
    secrets = set(of_kind(docs, "Secret")) | {f"{c}-app" for c in of_kind(docs, "Cluster")}
    documented = (ROOT / "docs/operations.md").read_text()
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values(),
                     *of_kind(docs, "StatefulSet").values()]:
        spec = workload["spec"]["template"]["spec"]
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets:
                    assert ref["name"] in EXTERNAL_SECRETS, ref["name"]
                    assert f"`{ref['name']}`" in documented, \
                        f"docs/operations.md does not say how to create {ref['name']}"
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_and_targets_find_their_pods(target: str) -> None:
    docs = rendered(target)
    pods = [w["spec"]["template"]["metadata"]["labels"]
            for kind in ("Deployment", "StatefulSet") for w in of_kind(docs, kind).values()]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for service in of_kind(docs, "Service").values():
        assert selects(service["spec"]["selector"]), service["metadata"]["name"]
    for pdb in of_kind(docs, "PodDisruptionBudget").values():
        assert selects(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]
    for hpa in of_kind(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in of_kind(docs, "Deployment")
    for policy in of_kind(docs, "NetworkPolicy").values():
        assert selects(policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                assert selects(peer["podSelector"]["matchLabels"])


def service_url(docs: tuple[dict[str, Any], ...], name: str, port_name: str) -> str:
    service = of_kind(docs, "Service")[name]
    [port] = [p["port"] for p in service["spec"]["ports"] if p["name"] == port_name]
    return f"http://{name}:{port}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_gateway_reaches_each_service_keycloak_and_valkey(target: str) -> None:
    docs = rendered(target)
    gateway = app_deployment(docs, "gateway")["spec"]["template"]["spec"]["containers"][0]
    env = environment(docs, gateway)
    for component in SERVICES:
        assert env[f"GATEWAY_{component.upper()}_URL"] == service_url(docs, component, "http")
    the_realm = realm(DEPLOY_REALM)
    assert env["GATEWAY_JWT_JWKS_URL"] == jwks_url(service_url(docs, "keycloak", "http"),
                                                   the_realm["realm"])
    store = urlsplit(env["GATEWAY_RATE_LIMIT_STORAGE_URL"])
    valkey = of_kind(docs, "Service")["valkey"]
    assert (store.scheme, store.hostname, store.port) == (
        "redis", "valkey", valkey["spec"]["ports"][0]["port"])
    assert store.password == "secret--valkey-auth--password"
    statefulset = of_kind(docs, "StatefulSet")["valkey"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert "--appendonly" in container["args"] and "$(VALKEY_PASSWORD)" in container["args"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


@pytest.mark.parametrize("target", TARGETS)
def test_every_app_trusts_the_realm_keycloak_serves(target: str) -> None:
    docs = rendered(target)
    keycloak = of_kind(docs, "Deployment")["keycloak"]
    [container] = keycloak["spec"]["template"]["spec"]["containers"]
    kc = environment(docs, container)
    the_realm = realm(DEPLOY_REALM)
    issuer = f"{kc['KC_HOSTNAME']}/realms/{the_realm['realm']}"
    for component in COMPONENTS:
        app = app_deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]
        env = environment(docs, app)
        assert env[f"{prefix(component)}JWT_ISSUER"] == issuer, component
        assert env[f"{prefix(component)}JWT_AUDIENCE"] == realm_audience(the_realm)
        assert env[f"{prefix(component)}JWT_JWKS_URL"] == jwks_url(
            service_url(docs, "keycloak", "http"), the_realm["realm"]), component
    realm_map = next(c for n, c in of_kind(docs, "ConfigMap").items()
                     if base_name(n) == "keycloak-realm")
    assert json.loads(realm_map["data"]["most-realm.json"]) == the_realm
    assert "--import-realm" in container["args"]
    assert kc["KC_DB_URL_HOST"] == "keycloak-db-rw" and "keycloak-db" in of_kind(docs, "Cluster")
    assert kc["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"  # JWKS at keycloak:8080


@pytest.mark.parametrize("target", TARGETS)
def test_services_reach_their_own_database_and_the_brokers_plain_listener(target: str,
                                                                          ) -> None:
    docs = rendered(target)
    [kafka] = of_kind(docs, "Kafka").values()
    [plain] = [listener for listener in kafka["spec"]["kafka"]["listeners"]
               if listener["name"] == "plain"]
    for component in SERVICES:
        app = app_deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]
        env = environment(docs, app)
        assert env[f"{prefix(component)}KAFKA_BOOTSTRAP"] == \
            f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
        assert env[f"{prefix(component)}DATABASE_URL"] == f"secret--{component}-db-app--uri"
        cluster = of_kind(docs, "Cluster")[f"{component}-db"]
        assert cluster["spec"]["bootstrap"]["initdb"]["database"] == component


@pytest.mark.parametrize("target", TARGETS)
def test_every_services_topics_are_declared_for_durability(target: str) -> None:
    docs = rendered(target)
    [kafka] = of_kind(docs, "Kafka").values()
    brokers = sum(p["spec"]["replicas"] for p in of_kind(docs, "KafkaNodePool").values()
                  if "broker" in p["spec"]["roles"])
    assert any("controller" in p["spec"]["roles"]
               for p in of_kind(docs, "KafkaNodePool").values())
    topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic").values()}
    for component in SERVICES:
        for topic in (f"{component}.events.v1", f"{component}.deadletter.v1"):
            spec = topics[topic]["spec"]
            assert topics[topic]["metadata"]["labels"]["strimzi.io/cluster"] == \
                kafka["metadata"]["name"]
            assert spec["replicas"] == 3 <= brokers
            assert spec["config"]["min.insync.replicas"] == 2
    for pool in of_kind(docs, "KafkaNodePool").values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
