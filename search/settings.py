"""The one place that reads configuration.

Every knob is an environment variable with the ``MMSEARCH_`` prefix; nested groups use a
double underscore (``MMSEARCH_INGEST__FRAME_RATE=2``). ``Settings`` is built once at start-up
(``load_settings``) and passed down explicitly, so tests build their own instead of patching.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from search.bounds import MAX_LIMIT

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
    subtitles: bool = Field(True, description="index a video's subtitle cues (sidecar .srt/.vtt files, text streams)")
    scene_threshold: float = Field(0.35, gt=0, lt=1)
    segment_seconds: float = Field(4.0, gt=0, description="length of a pooled video window")
    segment_stride: float = Field(2.0, gt=0, description="step between pooled video windows")
    max_frames_per_video: int = Field(3600, ge=1)
    max_image_pixels: int = Field(64_000_000, ge=1, description="decompression-bomb guard")
    max_download_bytes: int = Field(200 * 1024 * 1024, ge=1)
    thumbnail_size: int = Field(256, ge=32, le=2048)
    include_hidden: bool = Field(False, description="also index dot-files and dot-folders (system folders stay skipped)")
    include: list[str] = Field(
        default_factory=list,
        description="globs every folder ingest applies as --include (a file must match one): '*.jpg', 'trips/*'",
    )
    exclude: list[str] = Field(
        default_factory=list, description="globs every folder ingest applies as --exclude: '*/cache/*', 'tmp_*'"
    )
    watch_debounce: float = Field(
        2.0, gt=0, le=3600, description="seconds a watched folder must be quiet after a change before it is rescanned"
    )
    watch_rescan_interval: float = Field(
        3600.0, ge=0, description="seconds between full rescans of a watched folder, a safety net for missed events; 0: never"
    )
    follow_symlinks: bool = Field(
        False,
        description="follow symbolic links that lead outside the ingested folder (links inside it are always followed)",
    )
    http_timeout: float = Field(20.0, gt=0)
    http_retries: int = Field(3, ge=0, le=10)
    max_redirects: int = Field(5, ge=0, le=30)
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="hosts exempt from the private-address guard: host:port (precise, e.g. '127.0.0.1:9000', "
        "'[::1]:9000', 'intranet.local:443'), or a bare host, address or network (every port on it)",
    )
    page_deadline: float = Field(
        30.0, gt=0, description="seconds for one whole page, URL list or manifest fetch, retries included"
    )
    download_deadline: float = Field(600.0, gt=0, description="seconds for one whole media download, retries included")
    max_concurrent_fetches: int = Field(8, ge=1, le=256, description="remote fetches in flight at once per fetcher")
    max_fetches_per_host: int = Field(4, ge=1, le=256, description="remote fetches in flight at once to one host")
    fetch_slot_wait: float = Field(60.0, ge=0, description="seconds a fetch waits for a free slot before failing (transient)")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="folders an API ingest request may name (besides the data dir); `mmsearch serve --root` adds to them",
    )
    user_agent: str = "mmsearch/0.1 (+https://github.com/mmsearch/mmsearch)"
    crawl_max_depth: int = Field(2, ge=0)
    crawl_max_pages: int = Field(200, ge=1)
    crawl_delay: float = Field(0.5, ge=0, description="seconds between requests to one host")
    decode_workers: int = Field(2, ge=1, le=64, description="threads decoding ahead of the embedder")
    device_decode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="batched JPEG decoding with torchvision: auto = on the GPU (nvJPEG) when the model runs on CUDA, "
        "else Pillow; on = batched even on the CPU; off = always Pillow, one image at a time",
    )
    decode_batches_in_flight: int = Field(2, ge=1, le=16, description="JPEG batches decoded at once ahead of the model")
    cpu_queue: str = Field("cpu", min_length=1, description="Celery queue for discover and fetch tasks")
    gpu_queue: str = Field("gpu", min_length=1, description="Celery queue for decode+embed+upsert tasks")
    enrich_queue: str = Field("enrich", min_length=1, description="Celery queue for enrichment after embedding (OCR)")
    task_batch_items: int = Field(32, ge=1, le=4096, description="media items per embedding task")
    task_max_retries: int = Field(5, ge=0, le=100, description="retries of a task after transient errors")
    visibility_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds before a task held by a vanished worker is redelivered; a live worker keeps extending "
        "the tasks it holds, so a task may run longer than this",
    )
    broker_restore_interval: float = Field(
        5.0, gt=0, description="seconds between a worker's sweeps that re-queue the tasks of vanished workers"
    )
    heartbeat_interval: float = Field(5.0, gt=0, description="seconds between heartbeats of a running job")
    heartbeat_timeout: float = Field(60.0, gt=0, description="a job with no heartbeat for this long is shown interrupted")

    @field_validator("allow_hosts")
    @classmethod
    def _host_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            split_host_port(entry)  # raises ValueError naming the entry
        return entries

    @model_validator(mode="after")
    def _heartbeat_fits_timeout(self) -> IngestSettings:
        if self.heartbeat_timeout < 3 * self.heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({self.heartbeat_timeout:g} s) must be at least three heartbeat intervals "
                f"({self.heartbeat_interval:g} s each), or a busy but live job would look interrupted"
            )
        return self


class SearchSettings(BaseModel):
    """Query-time behaviour."""

    default_limit: int = Field(24, ge=1, le=MAX_LIMIT)
    max_limit: int = Field(500, ge=1, le=MAX_LIMIT)
    dedup_threshold: float = Field(0.94, gt=0, le=1)
    topk_frames: int = Field(3, ge=1, description="k of top-k pooling over frame scores")
    mode: Literal["hybrid", "vector", "keyword"] = Field(
        "hybrid", description="text queries: visual similarity and keyword relevance fused (hybrid), or either alone"
    )
    fusion: Literal["rrf", "dbsf"] = Field("rrf", description="how hybrid mode fuses its two rankings")
    moment_candidates: int = Field(800, ge=10, description="frames scored per moment query")
    url_fetch_deadline: float = Field(15.0, gt=0, le=300, description="seconds for all the image URLs of one query together")
    moment_high_fraction: float = Field(
        0.6,
        gt=0,
        lt=1,
        description="a frame belongs to a moment above background + this share of (best - background)",
    )
    moment_signal: Literal["visual", "speech", "both"] = Field(
        "both", description="what moments are found by: frames (visual), subtitle cues (speech), or both fused"
    )
    cue_candidates: int = Field(200, ge=1, description="subtitle cues scored per moment query")
    snap_tolerance: float = Field(1.0, ge=0, le=30, description="moment bounds move to a cut this close (seconds; 0: never)")


class ApiSettings(BaseModel):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    api_key: SecretStr | None = Field(None, description="required on write endpoints when set")
    protect_reads: bool = Field(False, description="the API key is required on reads too (all but /healthz and /readyz)")
    media_url_ttl: int = Field(
        3600, ge=10, le=7 * 86400, description="seconds a signed media URL stays valid (protected reads: the browser's links)"
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_url_fetches: int = Field(8, ge=1, le=1000, description="searches fetching an image URL at once; more get 429")
    max_url_fetches_per_client: int = Field(2, ge=1, le=1000, description="the same, per client address")
    clip_max_seconds: float = Field(300.0, gt=0, le=3600, description="longest clip GET /media/{id}/clip cuts")
    clip_keyframe_tolerance: float = Field(
        1.0, ge=0, le=30, description="seconds a clip may start early to be stream-copied from a keyframe"
    )
    clip_deadline: float = Field(60.0, gt=0, le=600, description="seconds cutting one clip may take")
    clip_cache: int = Field(50, ge=1, le=10_000, description="cut clips kept in the data dir's tmp/clips")

    @model_validator(mode="after")
    def _reads_need_a_key(self) -> ApiSettings:
        if self.protect_reads and self.api_key is None:
            raise ValueError("MMSEARCH_API__PROTECT_READS=true needs a key to protect them with: set MMSEARCH_API__API_KEY")
        return self


class IndexSettings(BaseModel):
    """How the vector index is built and searched; applied alike to Qdrant Edge and the server."""

    hnsw_m: int = Field(16, ge=4, le=128, description="HNSW edges per node: more = better recall, more memory")
    hnsw_ef_construct: int = Field(100, ge=8, le=1024, description="HNSW build-time candidates")
    hnsw_ef: int = Field(128, ge=8, le=4096, description="HNSW search-time candidates")
    quantization: Literal["int8", "none"] = Field("int8", description="scalar int8 quantization of stored vectors")
    rescore: bool = Field(True, description="re-rank quantized candidates with the original vectors")
    oversampling: float = Field(2.0, ge=1.0, le=16.0, description="quantized candidates fetched per result before rescoring")
    threshold_points: int = Field(
        20_000,
        ge=1_000,
        description="unindexed points that trigger a background index build; smaller segments are searched exactly",
    )
    auto_optimize: bool = Field(True, description="keep the embedded store indexed in the background")
    optimize_threads: int = Field(0, ge=0, le=64, description="threads of the index build; 0 = cores - 1 (at least 1)")


class OcrSettings(BaseModel):
    """Text in images (search.media.ocr): which engine, which languages, and the bounds on one image."""

    enabled: bool = Field(True, description="read text in images during enrichment")
    engine: Literal["auto", "rapidocr", "tesseract"] = Field("auto", description="auto: RapidOCR when installed, else Tesseract")
    languages: list[str] = Field(default_factory=lambda: ["eng", "jpn"], min_length=1, description="Tesseract codes: eng, jpn, …")
    max_side: int = Field(4000, ge=256, le=20_000, description="pixels an image keeps: max_side², longer strips are tiled")
    timeout: float = Field(20.0, gt=0, le=600, description="seconds of recognition per image")
    skip_textless: bool = Field(True, description="skip images the cheap pre-test finds no text-like strokes in")
    min_confidence: float = Field(40.0, ge=0, le=100, description="drop words the engine is less sure of (0..100)")
    tessdata_dir: str | None = Field(None, description="Tesseract language data folder; default: the system's")
    threads: int = Field(1, ge=1, le=64, description="RapidOCR's CPU threads per engine")

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not code.replace("_", "").isalnum() or not code.islower() or len(code) < 3:
                raise ValueError(f"{code!r} is not a Tesseract language code (like eng, jpn, chi_sim)")
        return value


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
    index: IndexSettings = Field(default_factory=IndexSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)

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
    def ingest_roots(self) -> tuple[Path, ...]:
        """Folders an API ingest request may read from: the data dir and ``ingest.allowed_roots``, resolved."""
        return tuple(dict.fromkeys(p.expanduser().resolve() for p in (self.data_dir, *self.ingest.allowed_roots)))

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


def split_host_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a bare IPv6 address or network has no port).

    The host comes back lower-case, without brackets or a trailing dot; ValueError says what is wrong.
    """
    text = entry.strip().lower()
    port_text: str | None = None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"allow_hosts entry {entry!r}: write an IPv6 address as [address] or [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a name, an IPv4 address or network, or a bare IPv6 address or network
    host = host.rstrip(".")
    if not host or any(c.isspace() or c in "/?#@" for c in host.split("/")[0]):
        raise ValueError(f"allow_hosts entry {entry!r} is not a host, address or network")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"allow_hosts entry {entry!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)
