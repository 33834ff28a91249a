"""Settings of the grants service (environment prefix ``GRANTS_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class GrantsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTS_", extra="ignore")

    service_name: str = "grants"
