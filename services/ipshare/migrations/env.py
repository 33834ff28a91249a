"""Alembic environment for the ipshare database: the ipshare tables
(``Base.metadata``) and the kit's."""

from ipshare.models import Base
from servicekit.migrations import run_env

run_env(Base.metadata, "IPSHARE_DATABASE_URL")
