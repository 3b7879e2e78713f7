"""The one place that reads configuration.

Every knob is an environment variable with the ``MMSEARCH_`` prefix; nested groups use a
double underscore (``MMSEARCH_INGEST__FRAME_RATE=2``). ``Settings`` is built once at start-up
(``load_settings``) and passed down explicitly, so tests build their own instead of patching.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MMSEARCH_"

DEFAULT_REAL_MODEL = "ViT-B-32:laion2b_s34b_b79k"
BUNDLED_MODEL = "mmsearch-synthetic"

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]


class EmbedderSettings(BaseModel):
    """How the CLIP model runs."""

    batch_size: int = Field(32, ge=1, le=4096)
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 picks min(cores, 4)")
    precision: Precision = "auto"
    prompt_ensemble: bool = Field(True, description="average text embeddings over prompt templates")
    text_cache_size: int = Field(2048, ge=0, description="LRU entries of text embeddings")
    cache_dir: str | None = Field(None, description="where downloaded weights are cached")
    offline: bool = Field(False, description="never contact the model hub; use cached files only")


class IngestSettings(BaseModel):
    """Discovery, fetching, decoding and video sampling."""

    frame_rate: float = Field(1.0, gt=0, le=30, description="sampled video frames per second")
    scene_change: bool = Field(False, description="also keep frames where the picture changes")
    scene_threshold: float = Field(0.35, gt=0, lt=1)
    segment_seconds: float = Field(4.0, gt=0, description="length of a pooled video window")
    segment_stride: float = Field(2.0, gt=0, description="step between pooled video windows")
    max_frames_per_video: int = Field(3600, ge=1)
    max_image_pixels: int = Field(64_000_000, ge=1, description="decompression-bomb guard")
    max_download_bytes: int = Field(200 * 1024 * 1024, ge=1)
    thumbnail_size: int = Field(256, ge=32, le=2048)
    include_hidden: bool = False
    http_timeout: float = Field(20.0, gt=0)
    http_retries: int = Field(3, ge=0, le=10)
    max_redirects: int = Field(5, ge=0, le=30)
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="hosts or IPs exempt from the private-address guard, e.g. ['127.0.0.1']",
    )
    user_agent: str = "mmsearch/0.1 (+https://github.com/mmsearch/mmsearch)"
    crawl_max_depth: int = Field(2, ge=0)
    crawl_max_pages: int = Field(200, ge=1)
    crawl_delay: float = Field(0.5, ge=0, description="seconds between requests to one host")
    decode_workers: int = Field(2, ge=1, le=64, description="threads decoding ahead of the embedder")
    cpu_queue: str = Field("cpu", min_length=1, description="Celery queue for discover and fetch tasks")
    gpu_queue: str = Field("gpu", min_length=1, description="Celery queue for decode+embed+upsert tasks")
    task_batch_items: int = Field(32, ge=1, le=4096, description="media items per embedding task")
    task_max_retries: int = Field(5, ge=0, le=100, description="retries of a task after transient errors")
    visibility_timeout: float = Field(3600.0, gt=0, description="seconds before a task held by a vanished worker is redelivered")


class SearchSettings(BaseModel):
    """Query-time behaviour."""

    default_limit: int = Field(24, ge=1, le=1000)
    max_limit: int = Field(500, ge=1)
    dedup_threshold: float = Field(0.94, gt=0, le=1)
    topk_frames: int = Field(3, ge=1, description="k of top-k pooling over frame scores")
    moment_candidates: int = Field(800, ge=10, description="frames scored per moment query")
    moment_high_fraction: float = Field(
        0.6,
        gt=0,
        lt=1,
        description="a frame belongs to a moment above background + this share of (best - background)",
    )


class ApiSettings(BaseModel):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    api_key: SecretStr | None = Field(None, description="required on write endpoints when set")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)


class Settings(BaseSettings):
    """Everything mmsearch can be told; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", protected_namespaces=())

    data_dir: Path = Path("./mmsearch-data")
    model: str = DEFAULT_REAL_MODEL
    device: Device = "auto"
    store_url: str | None = Field(None, description="edge://PATH (default), http(s)://host:6333, or local://PATH for tests")
    store_api_key: SecretStr | None = None
    catalog_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    broker_url: str | None = Field(None, description="unset: embedded eager mode; redis://… real workers")
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("store_url")
    @classmethod
    def _known_store_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("edge://", "http://", "https://", "local://", "memory://")):
            raise ValueError(
                "store_url must start with edge:// (embedded), http(s):// (Qdrant server) "
                "or local:// / memory:// (qdrant-client local mode, for tests)"
            )
        return value

    @field_validator("broker_url", "catalog_url", "store_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"edge://{(self.data_dir / 'qdrant-edge').resolve()}"

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.data_dir / 'catalog.sqlite3').resolve()}"

    @property
    def embedded(self) -> bool:
        """True when tasks run in-process (no broker): the process owns the store."""
        return self.broker_url is None

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def downloads_dir(self) -> Path:
        """Remote media fetched during ingestion, kept so the API can serve and re-read it."""
        return self.data_dir / "downloads"

    def torch_threads(self) -> int:
        if self.embedder.threads:
            return self.embedder.threads
        return max(1, min(os.cpu_count() or 1, 4))


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning (CLI flags, tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad setting, named as the user sets it (``MMSEARCH_SEARCH__MAX_LIMIT: …``)."""
    lines = []
    for error in exc.errors():
        name = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(lines)
