"""Alembic environment for the grants database: the grants tables
(``Base.metadata``) and the kit's."""

from grants.models import Base
from servicekit.migrations import run_env

run_env(Base.metadata, "GRANTS_DATABASE_URL")
