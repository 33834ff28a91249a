"""Alembic environment for the grants database."""

import os

from alembic import context
from sqlmodel import SQLModel

from grants import models  # noqa: F401 - registers the tables on SQLModel.metadata
from servicekit.migrations import run_env

if not context.config.get_main_option("sqlalchemy.url") and os.environ.get("GRANTS_DATABASE_URL"):
    context.config.set_main_option("sqlalchemy.url", os.environ["GRANTS_DATABASE_URL"])

run_env(SQLModel.metadata)
