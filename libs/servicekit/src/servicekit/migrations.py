"""Alembic per service: programmatic upgrade/downgrade, the shared ``env.py`` body and
the kit's own tables (outbox, inbox, idempotency keys, audit, decision registers) as a
frozen, versioned schema each service's migrations create.

The kit's tables are on SQLModel's metadata and nobody else's are (each service's tables
derive from its own ``models.Base``); importing this module defines all of them, and a
service's ``env.py`` is ``run_env(Base.metadata, "<SERVICE>_DATABASE_URL")``.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlmodel import SQLModel

from servicekit import audit, decisions, idempotency, inbox, outbox  # noqa: F401 - kit tables
from servicekit.db import create_db_engine, normalise_url
from servicekit.types import BigIntPK, UtcDateTime


def alembic_config(service_dir: Path, url: str) -> Config:
    cfg = Config(str(service_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_dir / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(service_dir: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service_dir, url), revision)


def downgrade(service_dir: Path, url: str, revision: str) -> None:
    command.downgrade(alembic_config(service_dir, url), revision)


def run_env(service_metadata: MetaData, url_variable: str) -> None:
    """The body of every service's ``migrations/env.py``: its own metadata and the kit's,
    on the database of ``-x url=...``, else ``sqlalchemy.url``, else the environment
    variable ``url_variable`` (how the deployment's migrate job names it)."""
    target_metadata = [service_metadata, SQLModel.metadata]
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or context.config.get_main_option("sqlalchemy.url")
           or os.environ.get(url_variable))
    if not url:
        raise RuntimeError("no database URL: pass -x url=..., set sqlalchemy.url or "
                           f"{url_variable}")
    url = normalise_url(url)
    sqlite = url.startswith("sqlite")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                          render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_db_engine(url) if sqlite else sa.create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=sqlite, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # a failed migration too: SQLite's pool keeps its file open


# --- the kit's tables, schema version 1 (frozen: change by adding kit_v2) ---------------

_APPEND_ONLY_PG = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit tables are append-only (% refused on %)', TG_OP, TG_TABLE_NAME;
END $$ LANGUAGE plpgsql;
"""


def create_kit_tables_v1() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["id"], postgresql_where="sent_at IS NULL",
                    sqlite_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("processed_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("route", sa.String(400), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("aggregate_type", sa.String(60), nullable=False),
        sa.Column("aggregate_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(60), nullable=False),
        sa.Column("org", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("from_status", sa.String(60), nullable=True),
        sa.Column("to_status", sa.String(60), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("aggregate_type", "aggregate_id", "seq", name="uq_audit_chain_seq"),
    )
    op.create_index("ix_audit_at", "audit_log", ["at"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("heads", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    _append_only("audit_log")
    _append_only("audit_checkpoints")


# --- the kit's tables, schema version 2: decision registers (servicekit.decisions) -----


def create_kit_tables_v2() -> None:
    op.create_table(
        "decision_registers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last_no", sa.BigInteger, nullable=False),
    )


def drop_kit_tables_v2() -> None:
    op.drop_table("decision_registers")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_PG)
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END"
            )


def drop_kit_tables_v1() -> None:
    for table in ("audit_checkpoints", "audit_log", "idempotency_keys", "processed_events",
                  "outbox"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
