"""Alembic environment for the sandbox database: the sandbox's own tables
(``Base.metadata``) and the kit's (on SQLModel's metadata)."""

import os

from alembic import context
from sqlmodel import SQLModel

from sandbox.models import Base
from servicekit.migrations import run_env

env_url = os.environ.get("SANDBOX_DATABASE_URL")
if env_url and not context.config.get_main_option("sqlalchemy.url"):
    context.config.set_main_option("sqlalchemy.url", env_url)

run_env([Base.metadata, SQLModel.metadata])
