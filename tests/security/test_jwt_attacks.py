"""Every forged or unacceptable token of ``devkit.jwt_attacks`` at each service directly.

A service behind the gateway still verifies the token itself (the gateway's own attack
tests are in ``gateway/tests/unit/test_edge_auth.py``, with the same attacks): alg none,
HMAC keyed with the public key, other keys (named by ``jku``, embedded as ``jwk``),
stripped or altered signatures, expired, not yet valid, wrong audience or issuer,
missing claims, revoked ids and subjects, an oversized token, claims of the wrong type.
Each is a 401 problem+json with ``WWW-Authenticate: Bearer`` on a protected read and a
write, which stores nothing. On a public read a forged token never gets more than no
token: a 401 where the service reads a token that is sent (grants' calls, which show a
programme manager their agency's drafts), else exactly the anonymous answer (the
sandbox's register, which reads no token; the gateway refuses it there with 401).
"""

from __future__ import annotations

from collections import Counter

import pytest

from devkit.jwt_attacks import ATTACKS, forged_token, signed

from .conftest import FIGURES
from .world import PROPOSAL, SERVICES, World, call_body

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

# Per service: a protected read, a public read (where there is one) and a write, each
# with a body valid for a programme manager (the attacks' role) where it is theirs.
REQUESTS = {
    "grants": [("GET", "/v1/portfolio", None), ("GET", "/v1/calls", None),
               ("POST", "/v1/calls", call_body())],
    "sandbox": [("GET", "/v1/applications", None), ("GET", "/v1/register", None),
                ("POST", "/v1/applications", PROPOSAL)],
    "ipshare": [("GET", "/v1/assets", None),
                ("POST", "/v1/assets", {"kind": "patent", "title": "T", "authors": [
                    {"researcher_id": "r-1", "name": "R", "contribution_bp": 10000}]})],
}
PUBLIC = {"/v1/calls", "/v1/register"}
TALLY: Counter[str] = Counter()


async def send(world: World, service: str, token: str, method: str, path: str, body):
    return await world.services[service].client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("service", SERVICES)
async def test_a_valid_token_of_the_same_shape_is_accepted(world: World, key_dir, service):
    """The control: the attacks below differ from this token by their flaw alone."""
    for method, path, body in REQUESTS[service]:
        response = await send(world, service, signed(key_dir), method, path, body)
        assert response.status_code != 401, (method, path, response.text)


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_forged_or_unacceptable_token_is_refused_by_the_service_itself(
        world: World, key_dir, service: str, attack: str) -> None:
    token = forged_token(key_dir, attack)
    before = world.fingerprint(service)
    for method, path, body in REQUESTS[service]:
        response = await send(world, service, token, method, path, body)
        if path in PUBLIC and response.status_code != 401:
            anonymous = await world.services[service].client.get(path)
            assert (response.status_code, response.json()) == (200, anonymous.json()), attack
            TALLY[f"{service} public, as anonymous"] += 1
            continue
        assert response.status_code == 401, (attack, method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401
        TALLY[f"{service} 401"] += 1
    assert world.fingerprint(service) == before, f"{attack}: something was stored"
    FIGURES["jwt attacks"] = (f"{len(ATTACKS)} attacks x {len(SERVICES)} services, "
                              f"{TALLY.total()} requests: "
                              + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
