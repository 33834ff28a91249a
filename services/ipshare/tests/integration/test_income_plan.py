"""The income path's reads stay index lookups once PostgreSQL plans them generically.

psycopg prepares a statement on its fifth run on a connection, and PostgreSQL may then
use one generic plan for every parameter value. A generic plan cannot use a partial
index whose predicate it would have to prove from a parameter: the standing-reference
check would then read every distribution of the agreement, on every posting (it did:
PostgreSQL's CPU per posting grew with the agreement's history).
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from ipshare.repository import income_inputs_query

pytestmark = pytest.mark.postgres


def generic_plan(dsn: str, statement, params: dict) -> str:
    compiled = statement.compile(dialect=postgresql.dialect(paramstyle="numeric_dollar"))
    values = {**compiled.params, **params}
    args = [values[name] for name in compiled.positiontup]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE q AS {compiled.string}")
        placeholders = ", ".join(["%s"] * len(args))
        with psycopg.ClientCursor(conn) as cur:  # the values inline, typed by PREPARE
            rows = cur.execute(f"EXPLAIN EXECUTE q({placeholders})", args).fetchall()
    return "\n".join(r[0] for r in rows)


@pytest.fixture
def dsn(ipshare_db: str) -> str:
    return ipshare_db.replace("postgresql+psycopg://", "postgresql://")


def test_the_standing_reference_check_uses_its_partial_index(dsn):
    plan = generic_plan(dsn, *income_inputs_query("a-1", "INV-1"))

    assert "uq_distributions_standing_reference" in plan, plan
