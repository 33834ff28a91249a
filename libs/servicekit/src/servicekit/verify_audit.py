"""``verify-audit``: check a service's whole audit trail from the command line.

    verify-audit --service grants            # the URL from GRANTS_DATABASE_URL
    verify-audit --database-url postgresql://...

Walks every hash chain and every checkpoint (:func:`servicekit.audit.verify`), prints
one JSON line and exits 0 when the trail is intact, 1 when it is not (an incident: keep
the database as it is), 2 when the database cannot be read. Made for a scheduled job or
a monitoring probe as much as for a person; it only reads. The line holds:

- ``ok``, ``records``, ``chains`` (as far as the walk got), ``first_break``: the first
  broken link (``audit record grant/<id>#3 (id 812): content does not match hash``,
  ``audit checkpoint 40: chain call/<id> lost or changed record 2``) or null;
- ``checkpoint``: what the latest checkpoint covers (``id``, ``at``, ``records``,
  ``chains``, ``hash``), null before the first; and ``records_after_checkpoint`` (of an
  intact trail), the records appended since, whose whole chains' deletion only the next
  checkpoint would reveal. Keep the checkpoint ``hash`` elsewhere to notice the
  checkpoints themselves being cut back;
- ``checked_at``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from servicekit import audit
from servicekit.db import create_db_engine, session_factory

INTACT, BROKEN, UNREADABLE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify-audit",
        description="Check a service's whole audit trail: every hash chain and checkpoint.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--service", help="read the URL from <SERVICE>_DATABASE_URL")
    source.add_argument("--database-url", help="the service's database URL")
    args = parser.parse_args(argv)
    url = args.database_url
    if args.service:
        variable = f"{args.service.upper()}_DATABASE_URL"
        url = os.environ.get(variable)
        if not url:
            print(f"verify-audit: {variable} is not set", file=sys.stderr)
            return UNREADABLE
    engine = create_db_engine(url, pool_size=1, max_overflow=0)
    try:
        with session_factory(engine)() as session:
            report = audit.verify(session)
    except SQLAlchemyError as exc:
        print(f"verify-audit: cannot read {make_url(url).render_as_string()}: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return UNREADABLE
    finally:
        engine.dispose()
    print(json.dumps(summary(report) | {"checked_at": datetime.now(UTC).isoformat()},
                     ensure_ascii=False))
    return INTACT if report.ok else BROKEN


def summary(report: audit.ChainReport) -> dict[str, Any]:
    """The report as the command prints it (without ``checked_at``)."""
    covered = report.checkpoint
    return {
        "ok": report.ok, "records": report.records, "chains": report.chains,
        "first_break": report.first_break,
        "checkpoint": None if covered is None else {
            "id": covered.id, "at": covered.at.isoformat(), "records": covered.records,
            "chains": covered.chains, "hash": covered.hash},
        "records_after_checkpoint": (report.records - (covered.records if covered else 0)
                                     if report.ok else None),
    }


if __name__ == "__main__":  # pragma: no cover - the console script calls main()
    sys.exit(main())
