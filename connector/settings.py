"""nirbridge's configuration: one settings object, read from `NIRBRIDGE_*` environment variables.

    NIRBRIDGE_URL              the cluster (default http://127.0.0.1:9200)
    NIRBRIDGE_BROKER_URL       Celery's broker (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_RESULT_BACKEND   Celery's result backend (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_REQUEST_TIMEOUT  seconds one HTTP request to the cluster may take (default 30)
    NIRBRIDGE_MAX_RETRIES      retries of a request answered 429/502/503/504, with back-off (default 3)
    NIRBRIDGE_VERIFY_CERTS     check the cluster's TLS certificate on https URLs (default true)

The search proxy (`nirbridge serve`):

    NIRBRIDGE_PROXY_ALLOW_WRITES        pass write and admin requests through (default false: 403)
    NIRBRIDGE_PROXY_MAX_WINDOW          the most hits one request may rerank (default 1000)
    NIRBRIDGE_PROXY_RERANK_DEADLINE_MS  how long a request waits for rerank scores (default 2000)
    NIRBRIDGE_PROXY_RERANK_MODEL        the cross-encoder (name or folder) when a request names none (no
                                        default: a reranked request without a model is then a 400)
    NIRBRIDGE_PROXY_RERANK_BACKEND      its backend when a request names none (default auto)
    NIRBRIDGE_PROXY_RERANK_IN_PROCESS   rerank in the proxy process instead of Celery workers (default false)
    NIRBRIDGE_PROXY_FIELDS_TTL_S        how long an index's enriched fields are cached (default 30)
    NIRBRIDGE_PROXY_SPARSE_MODEL, _DENSE_MODEL, _TERMS_MODEL, _QUERY_BACKEND   the query encoders

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

    proxy_allow_writes: bool = False
    proxy_max_window: int = Field(default=1000, ge=1)
    proxy_rerank_deadline_ms: float = Field(default=2000.0, gt=0)
    proxy_rerank_model: str = ""  # none by default: a reranked request must name its model
    proxy_rerank_backend: str = "auto"
    proxy_rerank_in_process: bool = False
    proxy_fields_ttl_s: float = Field(default=30.0, ge=0)
    proxy_sparse_model: str = "splade-tiny"
    proxy_dense_model: str = "all-MiniLM-L6-v2"
    proxy_terms_model: str = "splade-tiny"
    proxy_query_backend: str = "onnx-fp32"


def get_settings() -> Settings:
    """The settings as the environment has them now (read afresh on every call)."""
    return Settings()
