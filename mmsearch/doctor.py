"""``mmsearch doctor``: check each part the settings name and say exactly what is wrong."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from search.broker import broker_status, redact_url
from search.embedder.device import cuda_gpus, nvjpeg_problem
from search.errors import ModelUnavailable
from search.media.formats import formats_status
from search.media.ocr import ocr_status
from search.services import Services
from search.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def run_checks(settings: Settings) -> list[Check]:
    """Every check runs even when an earlier one failed, so one run shows all problems."""
    services = Services(settings)
    try:
        return [
            _timed("settings", lambda: _settings_summary(settings)),
            _timed("torch", _torch_summary),
            _timed("gpu", lambda: _gpu_summary(settings)),
            _timed("model", lambda: _model_summary(services)),
            _timed("store", lambda: _store_summary(services)),
            _timed("index", lambda: _index_summary(services)),
            _timed("catalog", lambda: _catalog_summary(services)),
            _timed("broker", lambda: broker_status(settings)),
            _timed("video", _video_summary),
            _timed("formats", formats_status),
            _timed("ocr", lambda: _ocr_summary(services)),
        ]
    finally:
        services.close()


def checks_as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # a doctor reports every failure instead of stopping at the first
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, round(time.perf_counter() - started, 3))


def _settings_summary(settings: Settings) -> str:
    mode = "embedded (in-process tasks)" if settings.embedded else f"distributed via {redact_url(settings.broker_url or '')}"
    return (
        f"data dir {settings.data_dir.resolve()}; model {settings.model}; device {settings.device}; "
        f"store {settings.resolved_store_url}; catalog {redact_url(settings.resolved_catalog_url)}; {mode}"
    )


def _torch_summary() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    return f"torch {torch.__version__} on Python {platform.python_version()}; {cuda}; {torch.get_num_threads()} CPU threads"


def _gpu_summary(settings: Settings) -> str:
    """Each CUDA GPU with its memory, and whether batched JPEG decoding can run on it (nvJPEG)."""
    gpus = cuda_gpus()
    if not gpus:
        batched = "off (auto uses Pillow on the CPU)" if settings.ingest.device_decode != "on" else "on the CPU (libjpeg-turbo)"
        return f"no CUDA GPU: the model runs on the CPU; nvJPEG not usable; batched JPEG decode {batched}"
    parts = []
    for gpu in gpus:
        problem = nvjpeg_problem(torch.device("cuda", gpu.index))
        parts.append(f"{gpu.describe()}, nvJPEG {'usable' if problem is None else 'not usable: ' + problem}")
    return f"{'; '.join(parts)}; device decode {settings.ingest.device_decode}"


def _model_summary(services: Services) -> str:
    embedder = services.embedder
    return f"{embedder.model_name}: dim {embedder.dim}, {embedder.image_size} px, {embedder.device} {embedder.precision}"


def _store_summary(services: Services) -> str:
    try:
        _ = services.embedder  # loading it is the check
    except ModelUnavailable:
        raise RuntimeError("not checked: the collection is named after the model, which did not load") from None
    store = services.store
    return f"{store.backend} collection {store.collection} (dim {store.dim}): {store.count()} points"


def _index_summary(services: Services) -> str:
    state = services.store.index_state()
    line = f"{state.indexed} of {state.points} points in the HNSW index"
    if state.optimizing:
        line += ", a build is running"
    elif state.unindexed and state.auto:
        line += f", {state.unindexed} searched exactly until the background build"
    elif state.unindexed:
        line += f", {state.unindexed} unindexed and background builds are off: run `mmsearch optimize`"
    return line


def _catalog_summary(services: Services) -> str:
    services.catalog.ping()
    return f"reachable; {len(services.catalog.list_jobs(limit=1000))} jobs recorded"


def _ocr_summary(services: Services) -> str:
    """Whether OCR can run (raises when it is on but cannot), and how far enrichment got."""
    from ingest.enrich import ocr_progress

    line = ocr_status(services.settings.ocr)
    try:
        return f"{line}; {ocr_progress(services.catalog)}"
    except Exception as exc:  # the catalog has its own check; say why the count is missing
        return f"{line}; progress unknown ({type(exc).__name__})"


def _video_summary() -> str:
    import av

    return f"PyAV {av.__version__} (FFmpeg {'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec)"
