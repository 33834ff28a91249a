"""``verify-audit``: check a service's whole audit trail from the command line.

    verify-audit --service grants            # the URL from GRANTS_DATABASE_URL
    verify-audit --database-url postgresql://...

Walks every hash chain and every checkpoint (:func:`servicekit.audit.verify`), prints
one JSON line (``ok``, ``records``, ``chains``, ``first_break``, ``checked_at``) and
exits 0 when the trail is intact, 1 when it is not (an incident: keep the database as
it is), 2 when the database cannot be read. Made for a scheduled job or a monitoring
probe as much as for a person; it only reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

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
    print(json.dumps({"ok": report.ok, "records": report.records, "chains": report.chains,
                      "first_break": report.first_break,
                      "checked_at": datetime.now(UTC).isoformat()}))
    return INTACT if report.ok else BROKEN


if __name__ == "__main__":  # pragma: no cover - the console script calls main()
    sys.exit(main())
