"""The settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.clock import BUSINESS_TIMEZONE, timezone

DEV_ISSUER = "most-dev-issuer"
PLATFORM_AUDIENCE = "most-platform"


def default_var_dir() -> Path:
    """``./var`` of the working directory: SQLite files, dev keys, stack state."""
    return Path("var")


class ServiceSettings(BaseSettings):
    """Configuration of one service process.

    ``profile=dev`` is the embedded default: SQLite, in-process bus and a development
    token issuer. ``profile=prod`` refuses the development shortcuts.
    """

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    service_name: str = "service"
    profile: Literal["dev", "prod"] = "dev"
    database_url: str = ""
    kafka_bootstrap: str | None = None
    consumer_group: str | None = None
    # A consumer that stops heartbeating (a crashed process) keeps its partitions this
    # long before the group hands them on; the broker allows 6 s to 30 min.
    consumer_session_timeout_seconds: float = Field(default=10.0, ge=6, le=1800)
    # Connections kept open per process. Beyond it up to ``db_pool_overflow`` more are
    # opened, and each is closed again when returned: a fresh PostgreSQL backend per
    # request, which costs PostgreSQL more CPU than the request itself. Size the pool
    # for the process's concurrent requests plus the relay's and consumers' connections.
    db_pool_size: int = Field(default=20, ge=1)
    db_pool_overflow: int = Field(default=10, ge=0)
    # How long a request waits for a pooled connection before it is answered 503.
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)

    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = PLATFORM_AUDIENCE
    jwt_public_key_file: Path | None = None
    # The identity provider's JWKS (Keycloak: <realm>/protocol/openid-connect/certs):
    # when set, tokens are verified with its keys instead of jwt_public_key_file, and a
    # rotated key is picked up without a restart (servicekit.jwks).
    jwt_jwks_url: str | None = None
    jwt_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwt_jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    # At most one JWKS fetch this often for tokens naming an unknown key id.
    jwt_jwks_cooldown_seconds: float = Field(default=30.0, ge=0)
    jwt_leeway_seconds: int = 10
    revocation_file: Path | None = None

    dev_key_dir: Path = default_var_dir() / "dev-keys"
    migrate_on_start: bool = True
    # A larger request body is refused with 413 before it is read whole (the largest
    # bodies the APIs take, with every text field full, are a few hundred kB).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    relay_poll_seconds: float = Field(default=0.5, gt=0)
    relay_batch_size: int = Field(default=500, ge=1)
    relay_linger_seconds: float = Field(default=0.05, ge=0)
    # While publishing fails the relay tries again after 0.5 s, 1 s, 2 s ... up to this.
    relay_retry_max_seconds: float = Field(default=30.0, gt=0)
    # /ready names the relay degraded (still 200) once the oldest unsent outbox row has
    # waited longer than this.
    relay_degraded_after_seconds: float = Field(default=60.0, gt=0)
    # How long /ready waits for each of its checks (database, broker, the relay's oldest
    # unsent row) before naming it unreachable: below the gateway's 2 s probe of a
    # service's /ready, above the broker client's own 1.5 s.
    ready_timeout_seconds: float = Field(default=1.8, gt=0)
    audit_checkpoint_seconds: float = Field(default=300.0, gt=0)
    # How often sent outbox rows, inbox rows and Idempotency-Key records past their
    # retention are purged (servicekit.housekeeping); 0 never.
    housekeeping_seconds: float = Field(default=3600.0, ge=0)
    outbox_retention_days: int = Field(default=7, ge=1)
    inbox_retention_days: int = Field(default=120, ge=1)
    idempotency_retention_days: int = Field(default=30, ge=1)

    # The time zone of business dates ("today" for overdue and expiry, the year of a
    # decision number): an IANA name.
    business_timezone: str = BUSINESS_TIMEZONE

    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def topic(self) -> str:
        """The topic this service publishes to."""
        return f"{self.service_name}.events.v1"

    @property
    def group_id(self) -> str:
        """One consumer group per service."""
        return self.consumer_group or self.service_name

    @field_validator("business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            timezone(value)
        except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}: an IANA name "
                             "such as Asia/Ho_Chi_Minh") from exc
        return value

    @model_validator(mode="after")
    def _refuse_dev_shortcuts_in_prod(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{default_var_dir() / self.service_name}.db"
        if self.profile == "prod":
            if self.jwt_issuer == DEV_ISSUER:
                raise ValueError("prod profile refuses the development token issuer")
            if self.jwt_public_key_file is None and not self.jwt_jwks_url:
                raise ValueError("prod profile needs jwt_jwks_url or jwt_public_key_file")
            if self.database_url.startswith("sqlite"):
                raise ValueError("prod profile needs PostgreSQL, not SQLite")
            if not self.kafka_bootstrap:
                raise ValueError("prod profile needs kafka_bootstrap")
        return self
