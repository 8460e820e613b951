"""nirbridge's configuration: one settings object, read from `NIRBRIDGE_*` environment variables.

    NIRBRIDGE_URL              the cluster (default http://127.0.0.1:9200)
    NIRBRIDGE_BROKER_URL       Celery's broker (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_RESULT_BACKEND   Celery's result backend (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_REQUEST_TIMEOUT  seconds one HTTP request to the cluster may take (default 30)
    NIRBRIDGE_MAX_RETRIES      retries of a request answered 429/502/503/504, with back-off (default 3)
    NIRBRIDGE_VERIFY_CERTS     check the cluster's TLS certificate on https URLs (default true)

A command-line flag, where there is one, wins over the environment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_URL", "Settings", "get_settings"]

DEFAULT_URL = "http://127.0.0.1:9200"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Everything nirbridge reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="NIRBRIDGE_", extra="ignore")

    url: str = DEFAULT_URL
    broker_url: str = DEFAULT_REDIS
    result_backend: str = DEFAULT_REDIS
    request_timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    verify_certs: bool = True


def get_settings() -> Settings:
    """The settings as the environment has them now (read afresh on every call)."""
    return Settings()
