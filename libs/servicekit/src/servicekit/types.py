"""Column types shared by the kit's tables and the services' models."""

from __future__ import annotations

from sqlalchemy import BigInteger, DateTime, Integer

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
# Money in đồng is BIGINT everywhere.
Money = BigInteger
UtcDateTime = DateTime(timezone=True)
