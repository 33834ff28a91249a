"""SQLModel tables of the grants database (schema made only by Alembic migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from servicekit.types import UtcDateTime


class CallRow(SQLModel, table=True):
    __tablename__ = "calls"

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(max_length=200)
    title: str = Field(max_length=300)
    description: str = Field(sa_column=Column(Text, nullable=False))
    budget_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    max_award_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    awarded_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    opens_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    closes_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    min_reviews: int
    status: str = Field(max_length=20)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
