"""Rate limits per subject and per client address: one replica in memory, two replicas on a
real shared Redis; revocations shared through the same store."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from limits import parse_many

from devkit.localservers import RedisServer, free_port
from gateway.app import create_app
from gateway.revocations import revoke_in_store
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer

GENEROUS = {f"rate_limit_{c}_per_{p}": "1000/second" for c in ("read", "write")
            for p in ("subject", "address")}


class Upstream:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return httpx.Response(200, json={"ok": True})


def gateway(key_dir: Path, upstream: Upstream, **limits: object) -> TestClient:
    mock = httpx.MockTransport(upstream)
    settings = GatewaySettings(dev_key_dir=key_dir, **{**GENEROUS, **limits})
    return TestClient(create_app(settings, transports={"grants": mock, "sandbox": mock,
                                                       "ipshare": mock}))


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def shared_store(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


def test_the_subject_past_its_limit_gets_429_with_retry_after_and_nothing_forwarded(
    key_dir: Path, upstream: Upstream, bearer: Bearer
) -> None:
    auditor = bearer("auditor", sub="busy-auditor")
    with gateway(key_dir, upstream, rate_limit_read_per_subject="3/minute") as client:
        answers = [client.get("/grants/v1/portfolio", headers=auditor) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "x-request-id" in refused.headers
    assert upstream.count == 3


def test_one_subject_over_its_limit_does_not_slow_another_on_the_same_address(
    key_dir: Path, upstream: Upstream, bearer: Bearer
) -> None:
    greedy, other = bearer("auditor", sub="greedy"), bearer("auditor", sub="patient")
    with gateway(key_dir, upstream, rate_limit_read_per_subject="2/minute") as client:
        for _ in range(5):
            client.get("/grants/v1/portfolio", headers=greedy)
        assert client.get("/grants/v1/portfolio", headers=greedy).status_code == 429
        assert client.get("/grants/v1/portfolio", headers=other).status_code == 200


def test_writes_are_limited_apart_from_and_tighter_than_reads(
    key_dir: Path, upstream: Upstream, bearer: Bearer
) -> None:
    pm = bearer("program_manager")
    with gateway(key_dir, upstream, rate_limit_write_per_subject="2/minute",
                 rate_limit_read_per_subject="10/minute") as client:
        writes = [client.post("/grants/v1/calls", headers=pm, json={}).status_code
                  for _ in range(3)]
        read = client.get("/grants/v1/portfolio", headers=pm).status_code
    assert writes == [200, 200, 429]
    assert read == 200


def test_the_documented_defaults_limit_writes_tighter_than_reads() -> None:
    settings = GatewaySettings()
    per_second = {key: parse_many(value)[0] for key, value in settings.rate_limits().items()}
    for per in ("subject", "address"):
        write, read = per_second[(per, "write")], per_second[(per, "read")]
        assert write.GRANULARITY == read.GRANULARITY
        assert write.amount < read.amount


def test_anonymous_callers_are_limited_by_client_address(
    key_dir: Path, upstream: Upstream
) -> None:
    with gateway(key_dir, upstream, rate_limit_read_per_address="3/minute") as client:
        codes = [client.get("/grants/v1/calls").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # Another address has its own budget.
    with gateway(key_dir, upstream, rate_limit_read_per_address="3/minute") as first:
        for _ in range(3):
            first.get("/grants/v1/calls")
        elsewhere = TestClient(first.app, client=("198.51.100.20", 4000))
        assert elsewhere.get("/grants/v1/calls").status_code == 200


def test_probes_are_never_limited(key_dir: Path, upstream: Upstream) -> None:
    with gateway(key_dir, upstream, rate_limit_read_per_address="1/minute") as client:
        assert {client.get("/health").status_code for _ in range(5)} == {200}


def test_the_client_address_comes_from_a_trusted_proxy_only(
    key_dir: Path, upstream: Upstream
) -> None:
    limits = {"rate_limit_read_per_address": "2/minute", "trusted_proxies": ["10.0.0.0/8"]}
    with gateway(key_dir, upstream, **limits) as client:
        proxy = TestClient(client.app, client=("10.1.2.3", 5000))
        stranger = TestClient(client.app, client=("203.0.113.9", 5000))
        for _ in range(2):
            assert proxy.get("/grants/v1/calls",
                             headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
        # The proxy's next client has its own budget; the first one is spent.
        assert proxy.get("/grants/v1/calls", headers={
            "X-Forwarded-For": "198.51.100.2, 10.9.9.9"}).status_code == 200
        assert proxy.get("/grants/v1/calls", headers={
            "X-Forwarded-For": "198.51.100.1"}).status_code == 429
        # A stranger's X-Forwarded-For is ignored: made-up addresses share its own budget.
        codes = [stranger.get("/grants/v1/calls",
                              headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                 for i in range(3)]
        assert codes == [200, 200, 429]


def test_two_replicas_share_the_limit_through_the_store(
    key_dir: Path, upstream: Upstream, bearer: Bearer, shared_store: str
) -> None:
    auditor = bearer("auditor", sub="two-replicas")
    limits = {"rate_limit_storage_url": shared_store, "rate_limit_read_per_subject": "4/minute"}
    with gateway(key_dir, upstream, **limits) as a, gateway(key_dir, upstream, **limits) as b:
        codes = [(a if i % 2 else b).get("/grants/v1/portfolio", headers=auditor).status_code
                 for i in range(6)]
    assert codes == [200, 200, 200, 200, 429, 429]
    assert upstream.count == 4


def test_replicas_in_memory_each_count_alone(
    key_dir: Path, upstream: Upstream, bearer: Bearer
) -> None:
    auditor = bearer("auditor", sub="two-processes")
    limits = {"rate_limit_read_per_subject": "2/minute"}
    with gateway(key_dir, upstream, **limits) as a, gateway(key_dir, upstream, **limits) as b:
        codes = [(a if i % 2 else b).get("/grants/v1/portfolio", headers=auditor).status_code
                 for i in range(4)]
    assert codes == [200, 200, 200, 200]  # why several replicas need the shared store


def test_with_the_store_down_requests_pass_unlimited_and_it_is_logged(
    key_dir: Path, upstream: Upstream, bearer: Bearer, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    limits = {"rate_limit_storage_url": down, "rate_limit_read_per_subject": "1/minute"}
    with caplog.at_level(logging.ERROR), gateway(key_dir, upstream, **limits) as client:
        codes = [client.get("/grants/v1/portfolio", headers=bearer("auditor")).status_code
                 for _ in range(3)]
    assert codes == [200, 200, 200]
    assert "rate-limit store unavailable" in caplog.text


def test_a_revocation_in_the_shared_store_reaches_every_replica(
    key_dir: Path, upstream: Upstream, bearer: Bearer, shared_store: str
) -> None:
    leaving = bearer("auditor", sub="leaves-today")
    settings = {"rate_limit_storage_url": shared_store, "revocation_refresh_seconds": 0.1}
    with gateway(key_dir, upstream, **settings) as a, gateway(key_dir, upstream,
                                                               **settings) as b:
        assert a.get("/grants/v1/portfolio", headers=leaving).status_code == 200
        assert b.get("/grants/v1/portfolio", headers=leaving).status_code == 200

        async def revoke() -> None:
            client = redis.asyncio.Redis.from_url(shared_store)
            await revoke_in_store(client, sub=["leaves-today"])
            await client.aclose()

        asyncio.run(revoke())
        deadline = time.monotonic() + 5
        codes: tuple[int, int] = (200, 200)
        while time.monotonic() < deadline and codes != (401, 401):
            time.sleep(0.1)
            codes = (a.get("/grants/v1/portfolio", headers=leaving).status_code,
                     b.get("/grants/v1/portfolio", headers=leaving).status_code)
        assert codes == (401, 401)
        other = bearer("auditor", sub="stays")
        assert a.get("/grants/v1/portfolio", headers=other).status_code == 200


def test_in_memory_counters_expire_without_a_thread_per_hit() -> None:
    from gateway.ratelimits import RateLimits

    limits = RateLimits(GatewaySettings(rate_limit_read_per_address="1/second"))
    started = threading.active_count()

    async def hits() -> list[int | None]:
        return [await limits.over("address", "read", f"198.51.100.{i % 50}")
                for i in range(500)]

    answers = asyncio.run(hits())
    assert answers[:50] == [None] * 50 and all(a is not None for a in answers[50:])
    assert threading.active_count() <= started  # limits' own would start one every 10 ms
    assert len(limits.storage.storage) == 50
    time.sleep(2.1)  # past the counters' expiry (twice the window) and the sweep's time
    asyncio.run(limits.over("address", "read", "203.0.113.1"))
    assert [k for k in limits.storage.storage if "198.51.100." in k] == []  # swept


@pytest.mark.parametrize("limit", ["3/second", "5 per 2 seconds", "10/minute"])
def test_the_swept_counter_decides_exactly_as_limits_own(
        limit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's one-call sliding-window counter and ``limits``' ``MemoryStorage``
    give the same answer to every hit of the same callers at the same instants, across
    window boundaries, gaps longer than two windows and both windows' weights."""
    import random

    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    from gateway.ratelimits import SweptMemoryStorage

    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # both read time.time()
    item = parse(limit)
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    ours = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
    draw = random.Random(19)
    decisions = []
    for _ in range(3000):
        clock[0] += draw.choice([0.0, 0.001, 0.05, 0.3, 0.9, item.get_expiry() * 2.5])
        who = draw.choice(["a", "b", "c"])
        mine = ours.hit(item, "address", "read", who)
        assert mine == theirs.hit(item, "address", "read", who), (clock[0], who)
        decisions.append(mine)
    assert True in decisions and False in decisions  # both answers were exercised


def test_in_memory_limits_count_under_limits_own_keys() -> None:
    """``over_now`` asks the swept counter directly: under the keys ``limits``' strategy
    would count (and reads back for a refusal's ``Retry-After``), every limit of the
    class counted."""
    from gateway.ratelimits import RateLimits

    limits = RateLimits(GatewaySettings(rate_limit_read_per_address="2/second;5/minute"))
    who = "198.51.100.7"
    assert [limits.over_now("address", "read", who) for _ in range(2)] == [None, None]
    theirs = {item.key_for("address", "read", who) for item in limits._limits[("address", "read")]}
    assert {key.rsplit("/", 1)[0] for key in limits.storage.storage} == theirs
    assert len(theirs) == 2 and all(n == 2 for n in limits.storage.storage.values())
    assert limits.over_now("address", "read", who) == 1  # the second-long window is full
