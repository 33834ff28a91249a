"""What a running service holds: its settings, database, bus, clock, token verifier, outbox
relay and event consumers (:class:`Kit`), and what it consumes (:class:`ConsumerSpec`).

A service's own periodic work (a scheduler) is a :class:`PeriodicJob` the kit runs on
its background thread with the relay and housekeeping.

``servicekit.service.create_service_app`` builds the kit; requests reach it as
``request.app.state.kit``, and every session it opens carries it (``session.info["kit"]``),
so an event consumer's handler can build its unit of work from the session it is given.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from servicekit import audit, housekeeping
from servicekit.auth import TokenVerifier
from servicekit.bus import Bus
from servicekit.clock import Clock, business_date
from servicekit.db import read_session_factory, session_factory
from servicekit.inbox import EventConsumer, Handler
from servicekit.jwks import JwksKeys
from servicekit.outbox import OutboxRelay
from servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    from servicekit.hotpath.pipeline import HotPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer of other services' events: its name (the inbox scope) and handlers."""

    name: str
    topics: Sequence[str]
    handlers: Mapping[str, Handler]


@dataclass(frozen=True)
class PeriodicJob:
    """A service's own job: ``run(kit)`` every ``seconds`` (0: never) while the kit's
    background runs; the first run ``first_after`` seconds after the start (default
    ``seconds``). A failed run is logged and the next one goes ahead."""

    name: str
    seconds: float
    run: Callable[[Kit], object]
    first_after: float | None = None


@dataclass
class Kit:
    name: str
    settings: ServiceSettings
    engine: Engine
    clock: Clock
    bus: Bus
    verifier: TokenVerifier
    relay: OutboxRelay
    consumers: list[EventConsumer] = field(default_factory=list)
    # The identity provider's keys the verifier resolves tokens with (jwt_jwks_url).
    jwks: JwksKeys | None = None
    jobs: list[PeriodicJob] = field(default_factory=list)
    # The hot path's async connections (PostgreSQL), held by the app's lifespan.
    pipeline_pool: HotPool | None = None
    _background_stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine, info={"kit": self})
        self.read_sessions = read_session_factory(self.engine, info={"kit": self})

    def today(self) -> date:
        """Today in the business time zone (``settings.business_timezone``)."""
        return business_date(self.clock.now(), self.settings.business_timezone)

    def wake_relay(self) -> None:
        self.relay.wake()

    def start_background(self) -> None:
        self.relay.start()
        for consumer in self.consumers:
            consumer.start()
        self._background_stop.clear()
        settings = self.settings
        self._every("audit checkpoint", settings.audit_checkpoint_seconds,
                    self._checkpoint)
        if settings.housekeeping_seconds > 0:
            retention = housekeeping.Retention.of(settings)
            # The first pass soon after start (a process restarted more often than the
            # interval would otherwise never purge), then one every interval.
            self._every("housekeeping", settings.housekeeping_seconds,
                        lambda: housekeeping.purge(self.engine, self.clock.now(), retention),
                        first_after=min(settings.housekeeping_seconds, 60.0))
        for job in self.jobs:
            if job.seconds > 0:
                self._every(job.name, job.seconds, partial(job.run, self),
                            first_after=job.first_after)

    def stop_background(self) -> None:
        self._background_stop.set()
        for consumer in self.consumers:
            consumer.stop()
        self.relay.stop()

    def _checkpoint(self) -> None:
        with self.sessions() as session, session.begin():
            audit.checkpoint(session, self.clock.now())

    def _every(self, what: str, seconds: float, job: Callable[[], object], *,
               first_after: float | None = None) -> None:
        """Run ``job`` every ``seconds`` on a daemon thread until the background stops;
        a failure is logged and the next run goes ahead."""
        def loop() -> None:
            delay = seconds if first_after is None else first_after
            while not self._background_stop.wait(delay):
                delay = seconds
                try:
                    job()
                except Exception:
                    log.exception("%s for %s failed", what, self.name)

        threading.Thread(target=loop, name=f"{what.replace(' ', '-')}-{self.name}",
                         daemon=True).start()
