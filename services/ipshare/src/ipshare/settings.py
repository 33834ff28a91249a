"""Settings of the ipshare service (environment prefix ``IPSHARE_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class IpshareSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IPSHARE_", extra="ignore")

    service_name: str = "ipshare"
