"""Alembic environment for the grants database: the grants tables
(``Base.metadata``) and the kit's (on SQLModel's metadata)."""

import os

from alembic import context
from sqlmodel import SQLModel

from grants.models import Base
from servicekit.migrations import run_env

if not context.config.get_main_option("sqlalchemy.url") and os.environ.get("GRANTS_DATABASE_URL"):
    context.config.set_main_option("sqlalchemy.url", os.environ["GRANTS_DATABASE_URL"])

run_env([Base.metadata, SQLModel.metadata])
