"""Alembic environment for the ipshare database: the ipshare tables
(``Base.metadata``) and the kit's (on SQLModel's metadata)."""

import os

from alembic import context
from sqlmodel import SQLModel

from ipshare.models import Base
from servicekit.migrations import run_env

env_url = os.environ.get("IPSHARE_DATABASE_URL")
if env_url and not context.config.get_main_option("sqlalchemy.url"):
    context.config.set_main_option("sqlalchemy.url", env_url)

run_env([Base.metadata, SQLModel.metadata])
