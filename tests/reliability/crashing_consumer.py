"""A service's event consumer that is killed (SIGKILL, as ``kill -9``) right after the
database commit of its ``--die-after``-th effect, before it commits that event's Kafka
offset. ``test_consumer_crash.py`` runs it as a process of its own:

    python crashing_consumer.py ipshare --database-url ... --bootstrap ... --group ...

It consumes as the service does (the service's own consumer name, topics and handlers,
on the service's kit), only with the seam that kills it; it exits 3 if it never got that
far within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

from servicekit.bus import Delivery
from servicekit.inbox import EventConsumer


def service(name: str) -> tuple[Any, Any, Any]:
    """``(create_app, consumer_specs, Settings)`` of the service named."""
    if name == "ipshare":
        from ipshare.app import create_app
        from ipshare.consumers import consumer_specs
        from ipshare.settings import IpshareSettings
        return create_app, consumer_specs, IpshareSettings
    from grants.app import create_app
    from grants.consumers import consumer_specs
    from grants.settings import GrantsSettings
    return create_app, consumer_specs, GrantsSettings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=["ipshare", "grants"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--key-dir", type=Path, required=True)
    parser.add_argument("--die-after", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    create_app, consumer_specs, settings_class = service(args.service)
    settings = settings_class(database_url=args.database_url, kafka_bootstrap=args.bootstrap,
                              consumer_group=args.group, dev_key_dir=args.key_dir,
                              migrate_on_start=False)
    kit = create_app(settings, background=False).state.kit
    applied = 0

    def die_after_commit(_delivery: Delivery) -> None:
        nonlocal applied
        applied += 1
        if applied == args.die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    [spec] = consumer_specs()
    consumer = EventConsumer(
        name=spec.name, bus=kit.bus, topics=spec.topics, group_id=settings.group_id,
        sessions=kit.sessions, handlers=spec.handlers,
        dead_letter_topic=f"{settings.service_name}.deadletter.v1",
        after_db_commit=die_after_commit)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        consumer.run_once(timeout=1.0)
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
