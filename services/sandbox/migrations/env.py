"""Alembic environment for the sandbox database: the sandbox's own tables
(``Base.metadata``) and the kit's."""

from sandbox.models import Base
from servicekit.migrations import run_env

run_env(Base.metadata, "SANDBOX_DATABASE_URL")
