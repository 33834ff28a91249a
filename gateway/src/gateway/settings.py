"""Settings of the gateway (environment prefix ``GATEWAY_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.settings import DEV_ISSUER, PLATFORM_AUDIENCE, default_var_dir

SERVICES = ("grants", "sandbox", "ipshare")


class GatewaySettings(BaseSettings):
    """Configuration of the gateway process.

    In proxy mode (local stack, deployments) ``<service>_url`` is the base URL the
    gateway forwards ``/<service>/...`` to. The embedded runner mounts the services
    in-process and ignores those URLs. ``profile=dev`` serves ``POST /dev/tokens``.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", env_file=None)

    profile: Literal["dev", "prod"] = "dev"

    grants_url: str = "http://127.0.0.1:8101"
    sandbox_url: str = "http://127.0.0.1:8102"
    ipshare_url: str = "http://127.0.0.1:8103"

    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    ready_timeout_seconds: float = Field(default=2.0, gt=0)
    # A modest pool per upstream: a larger one costs CPU per request (architecture.md).
    pool_max_connections: int = Field(default=16, ge=1)
    # Below uvicorn's 5 s keep-alive, so the gateway never reuses a connection the
    # upstream is closing (that shows up as occasional ReadErrors).
    keepalive_expiry_seconds: float = Field(default=4.0, gt=0)
    # A larger request body is refused with 413 before it is buffered (as the services do).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    dev_key_dir: Path = default_var_dir() / "dev-keys"
    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = PLATFORM_AUDIENCE

    log_level: str = "INFO"
    log_json: bool = False

    def upstream_urls(self) -> dict[str, str]:
        """``{service: base URL}`` for the proxy."""
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICES}

    @model_validator(mode="after")
    def _refuse_dev_issuer_in_prod(self) -> GatewaySettings:
        if self.profile == "prod" and self.jwt_issuer == DEV_ISSUER:
            raise ValueError("prod profile refuses the development token issuer")
        return self


def get_settings() -> GatewaySettings:
    return GatewaySettings()
