"""Settings of the gateway (environment prefix ``GATEWAY_``)."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, field_validator, model_validator
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
    # A request's line and header fields together, and how many fields: past either,
    # 431 and the connection closed (nginx: large_client_header_buffers; Apache:
    # LimitRequestFieldSize, LimitRequestFields).
    max_header_bytes: int = Field(default=65_536, ge=8192)
    max_header_fields: int = Field(default=100, ge=20)

    # Tokens: the identity provider's keys from a JWKS URL (cached, fetched again for a
    # key id it does not know yet), else a PEM public key file, else (dev profile) the
    # development issuer's key. Issuer, audience and leeway as the services'.
    dev_key_dir: Path = default_var_dir() / "dev-keys"
    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = PLATFORM_AUDIENCE
    jwt_leeway_seconds: int = Field(default=10, ge=0)
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwt_jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    # At most one JWKS fetch this often for tokens naming an unknown key id.
    jwt_jwks_cooldown_seconds: float = Field(default=30.0, ge=0)
    # The revocation file the services read ({"jti": [...], "sub": [...]}); with a
    # shared store the gateway also refuses what is revoked there (gateway.revocations).
    revocation_file: Path | None = None
    revocation_refresh_seconds: float = Field(default=1.0, gt=0)

    # Rate limits (the `limits` library). "memory://" for one process; with several
    # replicas or workers, a Redis/Valkey URL ("redis://host:6379/0") they share, which
    # also carries the shared revocation list. Each limit is `limits` notation, several
    # separated by ";" ("20/second;600/minute"); "" turns that limit off.
    rate_limit_storage_url: str = "memory://"
    rate_limit_strategy: Literal["fixed-window", "sliding-window-counter", "moving-window"] = (
        "sliding-window-counter"
    )
    rate_limit_read_per_subject: str = "20/second"
    rate_limit_write_per_subject: str = "5/second"
    rate_limit_read_per_address: str = "100/second"
    rate_limit_write_per_address: str = "20/second"
    # How long a request waits for the shared store before it is let through unlimited.
    rate_limit_store_timeout_seconds: float = Field(default=0.25, gt=0)
    # Proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; the
    # client address is the socket's peer otherwise.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Who may read the gateway's /metrics (Prometheus): loopback and private networks.
    metrics_networks: list[str] = Field(default_factory=lambda: [
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
        "fc00::/7"])
    # How long the merged OpenAPI document is kept before the services are asked again.
    openapi_cache_seconds: float = Field(default=300.0, ge=0)

    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    log_json: bool = False

    def upstream_urls(self) -> dict[str, str]:
        """``{service: base URL}`` for the proxy."""
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICES}

    def rate_limits(self) -> dict[tuple[str, str], str]:
        """``{(per, route class): limits}``, per ``subject`` or ``address``."""
        return {(per, cls): getattr(self, f"rate_limit_{cls}_per_{per}")
                for per in ("subject", "address") for cls in ("read", "write")}

    @field_validator("rate_limit_read_per_subject", "rate_limit_write_per_subject",
                     "rate_limit_read_per_address", "rate_limit_write_per_address")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a rate limit such as '20/second' or "
                                 f"'20/second;600/minute'") from exc
        return value.strip()

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _storage(cls, value: str) -> str:
        if value != "memory://" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("rate_limit_storage_url is memory:// or a redis:// (rediss://) "
                             "URL of Redis or Valkey")
        return value

    @field_validator("trusted_proxies", "metrics_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _refuse_dev_shortcuts_in_prod(self) -> GatewaySettings:
        if self.profile == "prod":
            if self.jwt_issuer == DEV_ISSUER:
                raise ValueError("prod profile refuses the development token issuer")
            if self.jwt_public_key_file is None and not self.jwt_jwks_url:
                raise ValueError("prod profile needs jwt_jwks_url or jwt_public_key_file")
        return self
