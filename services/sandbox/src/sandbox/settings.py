"""Settings of the sandbox service (environment prefix ``SANDBOX_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class SandboxSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    service_name: str = "sandbox"
    # The sector profiles in force; None: the file the service ships
    # (sandbox/sectors.json). The service refuses to start on a malformed file.
    sectors_file: Path | None = None
    # How often the scheduler runs its jobs (sandbox.scheduler); 0: never (another
    # process runs them). Its actions fall on business days, so a minute is prompt.
    scheduler_seconds: float = Field(default=60.0, ge=0)
