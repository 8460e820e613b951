"""nirbridge's configuration: one settings object, from `NIRBRIDGE_*` environment variables and a file.

Precedence, highest first: a command-line flag, then the environment, then the file named by
$NIRBRIDGE_CONFIG (TOML, same names in lower case without the prefix: connector.config_file), then the
default. `nirbridge config` prints what is in effect and where each value came from, secrets masked.

    NIRBRIDGE_URL              the cluster (default http://127.0.0.1:9200)
    NIRBRIDGE_BROKER_URL       Celery's broker (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_RESULT_BACKEND   Celery's result backend (default redis://127.0.0.1:6379/0)
    NIRBRIDGE_REQUEST_TIMEOUT  seconds one HTTP request to the cluster may take (default 30)
    NIRBRIDGE_MAX_RETRIES      retries of a request answered 429/502/503/504, with back-off (default 3)
    NIRBRIDGE_VERIFY_CERTS     check the cluster's TLS certificate on https URLs (default true)
    NIRBRIDGE_CA_CERTS         the CA bundle (PEM) that signed the cluster's certificate (default: system's)
    NIRBRIDGE_CLIENT_CERT, NIRBRIDGE_CLIENT_KEY   a client certificate and its key (PEM), when the cluster
                               asks for one
    NIRBRIDGE_USERNAME, NIRBRIDGE_PASSWORD        HTTP basic auth (the security plugin's internal users)
    NIRBRIDGE_API_KEY          or an API key, sent as `Authorization: ApiKey KEY` (not both)

Credentials written into the URL (https://user:pass@host) win over NIRBRIDGE_USERNAME/PASSWORD. The search
proxy sends a caller's own `Authorization` header on, and uses these credentials only for its own calls (the
readiness check): a caller that sends none goes on without any, unless NIRBRIDGE_PROXY_LEND_CREDENTIALS.

The search proxy (`nirbridge serve`):

    NIRBRIDGE_PROXY_ALLOW_WRITES        pass write and admin requests through (default false: 403)
    NIRBRIDGE_PROXY_LEND_CREDENTIALS    send callers that bring no `Authorization` on with the proxy's own
                                        credentials (default false: anonymous callers stay anonymous)
    NIRBRIDGE_PROXY_MAX_WINDOW          the most hits one request may rerank (default 1000)
    NIRBRIDGE_PROXY_RERANK_DEADLINE_MS  how long a request waits for rerank scores (default 2000)
    NIRBRIDGE_PROXY_RERANK_MODEL        the cross-encoder (name or folder) when a request names none (no
                                        default: a reranked request without a model is then a 400)
    NIRBRIDGE_PROXY_RERANK_BACKEND      its backend when a request names none (default auto)
    NIRBRIDGE_PROXY_RERANK_IN_PROCESS   rerank in the proxy process instead of Celery workers (default false)
    NIRBRIDGE_PROXY_FIELDS_TTL_S        how long an index's enriched fields are cached (default 30)
    NIRBRIDGE_PROXY_SPARSE_MODEL, _DENSE_MODEL, _TERMS_MODEL, _QUERY_BACKEND   the query encoders
    NIRBRIDGE_PROXY_QUERY_BATCH         the most sparse/dense queries of concurrent requests encoded in one
                                        model call (default 32; 0: each request on its own)
    NIRBRIDGE_PROXY_MAX_IN_FLIGHT       requests answered at once; more are refused 429 at once (default 64)
    NIRBRIDGE_PROXY_MAX_BODY_BYTES      the largest request body taken, else 413 (default 10485760, 10 MiB)
    NIRBRIDGE_PROXY_BODY_TIMEOUT_S      seconds the whole request body may take to arrive, else 408
                                        (default 30)
    NIRBRIDGE_PROXY_HEADER_TIMEOUT_S    seconds a request line and headers may take to arrive, else the
                                        connection is answered 408 and closed (default 10; `nirbridge serve`)
    NIRBRIDGE_PROXY_MAX_QUERY_CHARS     the longest query text encoded or reranked against, else 400
                                        (default 8192)
    NIRBRIDGE_PROXY_RERANK_MAX_QUEUE    rerank batches that may wait in queue `rerank`; past it a reranked
                                        request answers degraded at once (default 32)
    NIRBRIDGE_RERANK_MODELS             the cross-encoders a request may name, a comma list (`DIR/*`: every
                                        model folder in DIR); else 400 (default: the shipped
                                        nirbridge/reranker-*; NIRBRIDGE_PROXY_RERANK_MODEL is always allowed).
                                        Workers read the same variable and refuse the rest themselves
    NIRBRIDGE_RERANK_BACKENDS           the backends a request may name, a comma list (default: all;
                                        NIRBRIDGE_PROXY_RERANK_BACKEND is always allowed)

Logs and metrics (`serve`, `worker`, `enrich`), read from the environment only, by nirbridge.logs and the
command line (the workers read them too, and never import the connector), so not part of this object:

    NIRBRIDGE_LOG_FORMAT, NIRBRIDGE_LOG_LEVEL    text|json, debug..critical (default text, info)
    NIRBRIDGE_LOG_QUERIES               log query and document text (default false)
    NIRBRIDGE_METRICS_PORT, NIRBRIDGE_METRICS_HOST   `worker`/`enrich` Prometheus port (default none;
                                        127.0.0.1); the proxy's metrics are at GET /_nirbridge/metrics
    NIRBRIDGE_RERANK_CACHE              cross-encoders one process (worker, in-process proxy) keeps loaded,
                                        least recently used dropped first (default 4)

A command-line flag, where there is one, wins over the environment.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .config_file import ConfigFileSource

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
    ca_certs: FilePath | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None

    proxy_allow_writes: bool = False
    # the proxy's own credentials for callers that send none: off, else anyone reaching the proxy acts as it
    proxy_lend_credentials: bool = False
    proxy_max_window: int = Field(default=1000, ge=1)
    proxy_rerank_deadline_ms: float = Field(default=2000.0, gt=0)
    proxy_rerank_model: str = ""  # none by default: a reranked request must name its model
    proxy_rerank_backend: str = "auto"
    # the cross-encoder's share of a reranked window's score when a request names none (proxy/rerank.py)
    proxy_rerank_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    proxy_rerank_in_process: bool = False
    # the document prior's share of the first-stage score when a request names none (0: off); it applies
    # only to indices that have the field (`nirbridge prior` writes it)
    proxy_prior_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    proxy_prior_field: str = "nir_prior"
    proxy_fields_ttl_s: float = Field(default=30.0, ge=0)
    proxy_sparse_model: str = "splade-tiny"
    proxy_dense_model: str = "all-MiniLM-L6-v2"
    proxy_terms_model: str = "splade-tiny"
    proxy_query_backend: str = "onnx-fp32"
    proxy_query_batch: int = Field(default=32, ge=0)  # 0: no batching across requests
    proxy_max_in_flight: int = Field(default=64, ge=1)
    proxy_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # slow clients: a request may hold an in-flight slot (or a connection) only this long while it arrives
    proxy_body_timeout_s: float = Field(default=30.0, gt=0)
    proxy_header_timeout_s: float = Field(default=10.0, gt=0)
    proxy_max_query_chars: int = Field(default=8192, ge=1)
    proxy_rerank_max_queue: int = Field(default=32, ge=0)
    # what a rerank request may make a process load (workers.rerank_policy; workers read the same names)
    rerank_models: str = ""
    rerank_backends: str = ""

    @model_validator(mode="after")
    def _credentials_make_sense(self) -> Self:
        if self.password is not None and not self.username:
            raise ValueError("NIRBRIDGE_PASSWORD is set without NIRBRIDGE_USERNAME")
        if self.username and self.password is None:
            raise ValueError("NIRBRIDGE_USERNAME is set without NIRBRIDGE_PASSWORD")
        if self.username and self.api_key is not None:
            raise ValueError("both basic auth (NIRBRIDGE_USERNAME) and NIRBRIDGE_API_KEY are set: choose one")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("NIRBRIDGE_CLIENT_KEY is set without NIRBRIDGE_CLIENT_CERT")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags (given as init arguments) > environment > $NIRBRIDGE_CONFIG > defaults
        return init_settings, env_settings, ConfigFileSource(settings_cls)


def get_settings() -> Settings:
    """The settings as the environment and the file have them now (read afresh on every call)."""
    return Settings()
