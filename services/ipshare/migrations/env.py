"""Alembic environment for the ipshare database."""

import os

from alembic import context
from sqlmodel import SQLModel

from ipshare import models  # noqa: F401 - registers the tables on SQLModel.metadata
from servicekit.migrations import run_env

env_url = os.environ.get("IPSHARE_DATABASE_URL")
if env_url and not context.config.get_main_option("sqlalchemy.url"):
    context.config.set_main_option("sqlalchemy.url", env_url)

run_env(SQLModel.metadata)
