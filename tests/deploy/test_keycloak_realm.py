"""The identity provider's realm files: the contract's roles, the ``org`` claim and the
platform audience, one realm for every environment (compose adds only a development key
pair, users and a password-grant client), and tokens of the shape Keycloak issues from
it accepted by the services and the gateway.

Keycloak 26.7.2 imported both files (``kc.sh start-dev --import-realm``, and the deploy
realm through the admin API): a password grant for the compose user ``pm-1`` gave an
access token with exactly the claims ``exp, iat, jti, iss, aud ("most-platform"), sub
("pm-1"), typ, azp, sid, scope, org ("MOST"), roles (["program_manager"]), name``, which
``servicekit.auth.TokenVerifier`` accepted with most-realm-public.pem and
``servicekit.jwks.JwksKeys`` (the gateway's and the services') accepted from the realm's
JWKS; the deploy realm generated its own RS256, HS512 and AES keys. The test below signs
a token of that shape with the compose key.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devkit.manifests import (
    COMPOSE_REALM,
    COMPOSE_REALM_PUBLIC_KEY,
    DEPLOY_REALM,
    ROOT,
    realm,
    realm_audience,
)
from servicekit.auth import ROLES, TokenVerifier
from servicekit.problems import Unauthenticated
from servicekit.settings import PLATFORM_AUDIENCE

ISSUER = "http://127.0.0.1:8080/realms/most"


@pytest.fixture(scope="module", params=[DEPLOY_REALM, COMPOSE_REALM])
def any_realm(request: pytest.FixtureRequest) -> dict[str, Any]:
    return realm(request.param)


def platform_scope(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The platform client scope's mappers by name."""
    [scope] = [s for s in doc["clientScopes"] if s["name"] == "most-platform"]
    return {m["name"]: m for m in scope["protocolMappers"]}


def clients(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["clientId"]: c for c in doc["clients"]}


def test_the_realm_defines_exactly_the_contracts_roles(any_realm: dict[str, Any]) -> None:
    roles = any_realm["roles"]["client"]["most-platform"]
    assert {r["name"] for r in roles} == ROLES
    assert not any(r["composite"] for r in roles)  # no role grants another


def test_tokens_carry_the_roles_org_name_subject_and_platform_audience(
    any_realm: dict[str, Any],
) -> None:
    mappers = platform_scope(any_realm)
    roles = mappers["roles"]
    assert roles["protocolMapper"] == "oidc-usermodel-client-role-mapper"
    assert roles["config"]["usermodel.clientRoleMapping.clientId"] == "most-platform"
    assert roles["config"]["claim.name"] == "roles"
    assert roles["config"]["multivalued"] == roles["config"]["access.token.claim"] == "true"
    org = mappers["org"]
    assert org["protocolMapper"] == "oidc-usermodel-attribute-mapper"
    assert (org["config"]["user.attribute"], org["config"]["claim.name"]) == ("org", "org")
    assert org["config"]["multivalued"] == "false"
    assert realm_audience(any_realm) == PLATFORM_AUDIENCE
    assert mappers["sub"]["protocolMapper"] == "oidc-sub-mapper"
    assert mappers["name"]["protocolMapper"] == "oidc-full-name-mapper"
    for mapper in mappers.values():
        assert mapper["config"]["access.token.claim"] == "true", mapper["name"]
    # Every client users sign in with gets the scope; the API client issues nothing.
    for client in clients(any_realm).values():
        if client["clientId"] != "most-platform":
            assert "most-platform" in client["defaultClientScopes"], client["clientId"]
    api = clients(any_realm)["most-platform"]
    assert not (api["standardFlowEnabled"] or api["directAccessGrantsEnabled"]
                or api["serviceAccountsEnabled"] or api["implicitFlowEnabled"])


def test_only_an_administrator_sets_a_users_org(any_realm: dict[str, Any]) -> None:
    [provider] = any_realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    profile = json.loads(provider["config"]["kc.user.profile.config"][0])
    [org] = [a for a in profile["attributes"] if a["name"] == "org"]
    assert org["permissions"]["edit"] == ["admin"]  # a user cannot move to another org
    assert org["multivalued"] is False
    assert any_realm["editUsernameAllowed"] is False
    assert any_realm["registrationAllowed"] is False


def test_the_deployed_realm_has_no_users_no_keys_and_no_password_grant() -> None:
    deployed = realm(DEPLOY_REALM)
    assert "users" not in deployed
    assert "org.keycloak.keys.KeyProvider" not in deployed["components"]
    assert not any(c["directAccessGrantsEnabled"] for c in deployed["clients"])
    assert all(c["publicClient"] is False or c["attributes"]["pkce.code.challenge.method"]
               == "S256" for c in deployed["clients"] if c["standardFlowEnabled"])
    assert deployed["sslRequired"] == "external"


def test_the_compose_realm_is_the_deployed_one_plus_development_users_and_keys() -> None:
    deployed, dev = realm(DEPLOY_REALM), realm(COMPOSE_REALM)
    extras = {"users", "sslRequired"}
    assert {k: v for k, v in dev.items() if k not in extras | {"components", "clients"}} == \
        {k: v for k, v in deployed.items() if k not in extras | {"components", "clients"}}
    assert dev["components"]["org.keycloak.userprofile.UserProfileProvider"] == \
        deployed["components"]["org.keycloak.userprofile.UserProfileProvider"]
    for client_id, client in clients(deployed).items():
        ignoring = {"redirectUris"}
        assert {k: v for k, v in clients(dev)[client_id].items() if k not in ignoring} == \
            {k: v for k, v in client.items() if k not in ignoring}
    assert set(clients(dev)) - set(clients(deployed)) == {"most-dev-cli"}


def test_each_development_user_holds_one_contract_role_and_an_org() -> None:
    users = realm(COMPOSE_REALM)["users"]
    held = set()
    for user in users:
        [role] = user["clientRoles"]["most-platform"]
        assert role in ROLES and user["attributes"]["org"][0]
        assert user["id"] == user["username"]  # the token's sub, readable in examples
        held.add(role)
    assert held == ROLES
    assert len({u["id"] for u in users}) == len(users)


def compose_private_key() -> Any:
    [provider] = [p for p in realm(COMPOSE_REALM)["components"]["org.keycloak.keys.KeyProvider"]
                  if p["providerId"] == "rsa"]
    der = base64.b64decode(provider["config"]["privateKey"][0])
    return serialization.load_der_private_key(der, password=None)


def test_the_services_key_file_is_the_public_half_of_the_realms_signing_key() -> None:
    public = serialization.load_pem_public_key((ROOT / COMPOSE_REALM_PUBLIC_KEY).read_bytes())
    assert compose_private_key().public_key().public_numbers() == public.public_numbers()


def keycloak_token(sub: str, role: str, org: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"exp": now + 900, "iat": now, "jti": f"onrtro:{uuid.uuid4()}", "iss": ISSUER,
              "aud": PLATFORM_AUDIENCE, "sub": sub, "typ": "Bearer", "azp": "most-dev-cli",
              "sid": uuid.uuid4().hex, "scope": "", "org": org, "roles": [role],
              "name": "Programme Manager", **overrides}
    return jwt.encode(claims, compose_private_key(), algorithm="RS256",
                      headers={"kid": "most-dev-rs256"})


def test_a_token_as_keycloak_issues_it_is_accepted_by_the_services() -> None:
    verifier = TokenVerifier.from_pem_file(Path(ROOT / COMPOSE_REALM_PUBLIC_KEY),
                                           issuer=ISSUER, audience=PLATFORM_AUDIENCE)
    principal = verifier.verify(keycloak_token("pm-1", "program_manager", "MOST"))
    assert (principal.sub, principal.org, principal.roles) == ("pm-1", "MOST",
                                                               frozenset({"program_manager"}))
    with pytest.raises(Unauthenticated):  # another audience is refused
        verifier.verify(keycloak_token("pm-1", "program_manager", "MOST", aud="account"))
