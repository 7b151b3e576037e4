"""Settings from the environment, one pydantic-settings class per service, failing fast at start."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service reads. Subclass per service and add its own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    service_name: str = Field(default="shequtong", validation_alias="OTEL_SERVICE_NAME")
    database_url: str
    nats_url: str
    grpc_port: int = 50051
    grpc_host: str = "0.0.0.0"
    metrics_port: int = 0
    log_level: str = "INFO"
    # Where identity answers (keys for token verification, service tokens); empty for identity itself.
    identity_addr: str = ""
    service_client_id: str = ""
    service_client_secret: str = ""
    shutdown_grace_seconds: float = 20.0
    relay_batch_size: int = 1000
    # In-process commits wake the relay at once; polling only catches rows written by other replicas.
    relay_poll_interval: float = 1.0
    # After a pass that found less than a full batch, the relay and each consumer wait this long before the
    # next, so that the events of those milliseconds share one transaction, one commit and one round of
    # acks instead of paying for them each. An idle consumer still takes its next event at once. Measured
    # on report → dispatch at 50/s (bench/README, seventh run): 10/20 ms brought p99 from seconds to ~0.6 s;
    # 20/50 ms took a further 8–13% off the CPU per report, for at most 70 ms more per hop.
    relay_linger_seconds: float = 0.02
    consumer_linger_seconds: float = 0.05
    # Twenty connections kept, none beyond: a connection over the pool's size is closed as soon as it is
    # returned, so under steady load above the size every few requests paid for a new PostgreSQL backend, a
    # TLS attempt and empty prepared-statement caches. One process's event loop is busy long before twenty
    # statements are in flight; a request beyond them waits for a connection.
    db_pool_size: int = 20
    db_max_overflow: int = 0


S = TypeVar("S", bound=BaseSettings)


class ConfigurationError(RuntimeError):
    pass


def load_settings(cls: type[S]) -> S:
    """Build settings or stop the process with a readable list of what is missing or wrong."""
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError(f"{cls.__name__}: invalid configuration — " + "; ".join(problems)) from None


def load_settings_or_exit(cls: type[S]) -> S:
    try:
        return load_settings(cls)
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
