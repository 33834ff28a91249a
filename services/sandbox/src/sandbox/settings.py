"""Settings of the sandbox service (environment prefix ``SANDBOX_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class SandboxSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    service_name: str = "sandbox"


def get_settings() -> SandboxSettings:
    return SandboxSettings()
