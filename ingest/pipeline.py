"""The engine that runs the stages over a stream of items, keeping the model busy.

Three kinds of thread share the work so that embedding, the expensive step, never waits:

- ``decode_workers`` prefetch threads take items from the stream and fetch, read, decode,
  thumbnail and preprocess them (PIL, libjpeg, FFmpeg and torch's transforms release the GIL);
- the calling thread gathers their tensors into batches of ``embedder.batch_size`` and embeds
  them; a partial batch is embedded when nothing has arrived for a moment;
- one writer thread commits outcomes to the store and the catalog in groups.

Bounded queues between them cap memory (a long video streams through, frame by frame) and
push back on the producers. The same engine runs a whole job in embedded mode and one batch
of items inside a Celery ``gpu`` task.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ingest.discovery import DiscoveryContext, Vanished, admit_fetched, already_done
from ingest.items import MediaItem
from ingest.stages.decode import DecodeConfig, PreparedFrame, PreparedImage, open_video, prepare_frames, prepare_image
from ingest.stages.fetch import fetch_remote
from ingest.stages.load import Loaded, load_item
from ingest.stages.points import FrameVector, frame_points, image_point, segment_points
from ingest.stages.pooling import windows
from ingest.stages.record import Failed, Indexed, Outcome, Recorder
from ingest.tracker import JobTracker
from search.catalog import Catalog
from search.errors import FetchError, MediaError, StoreUnavailable
from search.fetch import Fetcher
from search.media import VideoInfo
from search.settings import Settings
from search.store import VectorStore

log = logging.getLogger(__name__)

_IDLE_FLUSH_S = 0.05  # embed a partial batch when no tensor arrived for this long
_PUT_POLL_S = 0.2
_WRITE_GROUP = 64  # outcomes committed together


@dataclass(frozen=True)
class PipelineParts:
    """Everything the stages touch; built by the job runner or the Celery worker process."""

    settings: Settings
    catalog: Catalog
    store: VectorStore
    embedder: object  # search.embedder.Embedder (preprocess, encode_image_tensors, batch_size, model_name)
    fetcher: Fetcher
    tracker: JobTracker


class Aborted(Exception):
    """Internal: another thread failed; this one stops."""


# -- units passed from the prefetch threads to the embedding thread ------------------------------


@dataclass(frozen=True)
class _ImageReady:
    prepared: PreparedImage


@dataclass(frozen=True)
class _VideoStart:
    loaded: Loaded
    info: VideoInfo


@dataclass(frozen=True)
class _FrameReady:
    media_id: str
    frame: PreparedFrame


@dataclass(frozen=True)
class _VideoEnd:
    media_id: str
    error: str | None


@dataclass(frozen=True)
class _Pass:
    """An outcome with no tensor: a failure or a vanished item, handed straight to the writer."""

    outcome: Outcome


@dataclass
class _VideoState:
    loaded: Loaded
    info: VideoInfo
    frames: list[FrameVector] = field(default_factory=list)
    pending: int = 0  # frames received but not yet embedded
    ended: bool = False
    error: str | None = None


_DONE = object()  # a prefetch thread finished


class Pipeline:
    def __init__(self, parts: PipelineParts, *, workers: int | None = None, redelivered: bool = True) -> None:
        """``redelivered=False`` when the items come straight from this process's discovery:
        none can be finished already, so the per-item catalog check is skipped."""
        self.parts = parts
        self.redelivered = redelivered
        self.settings = parts.settings
        self.model: str = parts.embedder.model_name  # type: ignore[attr-defined]
        self.batch_size: int = parts.embedder.batch_size  # type: ignore[attr-defined]
        self.workers = workers or self.settings.ingest.decode_workers
        self.config = DecodeConfig.from_settings(self.settings, parts.embedder.image_size)  # type: ignore[attr-defined]
        self.admission = DiscoveryContext(parts.catalog, self.settings.ingest, parts.fetcher, parts.tracker, self.model)
        self.recorder = Recorder(parts.catalog, parts.store, parts.tracker, self.model, self.settings.thumbnails_dir)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._units: queue.Queue[object] = queue.Queue(maxsize=2 * self.batch_size)
        self._videos: dict[str, _VideoState] = {}

    # -- the calling thread: orchestration and embedding ---------------------------------------

    def run(self, stream: Iterable[MediaItem | Vanished]) -> None:
        """Process every item of ``stream``; raises the first infrastructure error met."""
        feed = _Feed(iter(stream))
        writer = _Writer(self.recorder, self._fail)
        threads = [
            threading.Thread(target=self._produce, args=(feed,), name=f"ingest-decode-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            self._embed_loop(len(threads), writer)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._stop.set()
            _drain(self._units)
            for thread in threads:
                thread.join()
            writer.close()
        if self._errors:
            raise self._errors[0]

    def _embed_loop(self, producers: int, writer: _Writer) -> None:
        batch: list[tuple[torch.Tensor, object]] = []
        while producers and not self._errors:
            try:
                unit = self._units.get(timeout=_IDLE_FLUSH_S if batch else None)
            except queue.Empty:
                self._embed(batch, writer)
                continue
            if unit is _DONE:
                producers -= 1
            elif isinstance(unit, _ImageReady):
                batch.append((unit.prepared.tensor, unit.prepared))
            elif isinstance(unit, _FrameReady):
                self._videos[unit.media_id].pending += 1
                batch.append((unit.frame.tensor, unit))
            else:
                self._route(unit, writer)
            if len(batch) >= self.batch_size:
                self._embed(batch, writer)
        if batch and not self._errors:
            self._embed(batch, writer)

    def _route(self, unit: object, writer: _Writer) -> None:
        if isinstance(unit, _VideoStart):
            self._videos[unit.loaded.item.media_id] = _VideoState(unit.loaded, unit.info)
        elif isinstance(unit, _VideoEnd):
            state = self._videos[unit.media_id]
            state.ended, state.error = True, unit.error
            self._finish_video_if_done(unit.media_id, writer)
        elif isinstance(unit, _Pass):
            writer.submit(unit.outcome)

    def _embed(self, batch: list[tuple[torch.Tensor, object]], writer: _Writer) -> None:
        vectors = self.parts.embedder.encode_image_tensors(torch.stack([t for t, _ in batch]))  # type: ignore[attr-defined]
        touched: set[str] = set()
        for vector, (_, target) in zip(vectors, batch):
            if isinstance(target, PreparedImage):
                writer.submit(self._image_outcome(target, vector))
            else:
                assert isinstance(target, _FrameReady)
                state = self._videos[target.media_id]
                state.frames.append(FrameVector(target.frame.t, vector, target.frame.thumb))
                state.pending -= 1
                touched.add(target.media_id)
        batch.clear()
        for media_id in touched:
            self._finish_video_if_done(media_id, writer)

    def _finish_video_if_done(self, media_id: str, writer: _Writer) -> None:
        state = self._videos[media_id]
        if state.ended and state.pending == 0:
            del self._videos[media_id]
            writer.submit(self._video_outcome(state))

    # -- outcomes -------------------------------------------------------------------------------

    def _image_outcome(self, prepared: PreparedImage, vector: np.ndarray) -> Indexed:
        loaded, facts = prepared.loaded, prepared.facts
        item = loaded.item
        metadata = {
            "mime": facts.mime,
            "sha256": loaded.sha256,
            "frames": facts.frame_count,
            "taken_at": facts.exif.taken_at,
            **facts.exif.payload(),
        }
        if item.product is not None:
            metadata["product"] = item.product.payload()
        point = image_point(loaded, facts, vector, prepared.thumb, self.model)
        kind = "product" if item.product is not None else "image"
        return Indexed(
            item, kind, [point], prepared.thumb, loaded.content_hash, facts.width, facts.height, None, _clean(metadata)
        )

    def _video_outcome(self, state: _VideoState) -> Outcome:
        loaded, info = state.loaded, state.info
        if not state.frames:
            return Failed(loaded.item, state.error or "corrupt video: no frame could be decoded")
        frames = sorted(state.frames, key=lambda f: f.t)
        ingest = self.settings.ingest
        spans = windows([f.t for f in frames], info.duration, ingest.segment_seconds, ingest.segment_stride)
        points = frame_points(loaded, info, frames, self.model) + segment_points(loaded, info, spans, frames, self.model)
        metadata = {
            "mime": loaded.mime,
            "codec": info.codec,
            "fps": info.fps,
            "rotation": info.rotation,
            "frames_sampled": len(frames),
            "segments": len(spans),
            "has_audio": info.has_audio,
        }
        return Indexed(
            loaded.item, "video", points, frames[0].thumb, loaded.content_hash, info.width, info.height, info.duration, metadata
        )

    # -- prefetch threads -------------------------------------------------------------------------

    def _produce(self, feed: _Feed) -> None:
        try:
            while not self._stop.is_set() and not self.parts.tracker.cancelled:
                entry = feed.next()
                if entry is None:
                    break
                if isinstance(entry, Vanished):
                    self._put(_Pass(entry))
                    continue
                for unit in self._units_of(entry):
                    self._put(unit)
        except Aborted:
            pass
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._put_final(_DONE)

    def _units_of(self, item: MediaItem) -> Iterator[object]:
        """The units one item produces; an unusable item produces one ``Failed`` outcome."""
        video_started = False
        try:
            prepared = self._prepare(item)
            if prepared is None:
                return
            if isinstance(prepared, PreparedImage):
                yield _ImageReady(prepared)
                return
            loaded, info = prepared
            yield _VideoStart(loaded, info)
            video_started = True
            for frame in prepare_frames(loaded, info, self.config, self.parts.embedder.preprocess):  # type: ignore[attr-defined]
                yield _FrameReady(item.media_id, frame)
            yield _VideoEnd(item.media_id, None)
        except (MediaError, FetchError) as exc:
            yield _VideoEnd(item.media_id, str(exc)) if video_started else _Pass(Failed(item, str(exc)))
        except (StoreUnavailable, Aborted):
            raise
        except Exception as exc:
            log.exception("unexpected error ingesting %s", item.uri)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            yield _VideoEnd(item.media_id, reason) if video_started else _Pass(Failed(item, reason))

    def _prepare(self, item: MediaItem) -> PreparedImage | tuple[Loaded, VideoInfo] | None:
        if self.redelivered and already_done(self.parts.catalog, self.parts.tracker.job_id, item):
            return None
        if item.is_remote and item.local_copy is None:
            fetched = admit_fetched(self.admission, fetch_remote(item, self.settings, self.parts.fetcher))
            if fetched is None:
                return None
            item = fetched
        loaded = load_item(item, self.settings.ingest.max_download_bytes)
        if loaded.kind == "image":
            return prepare_image(loaded, self.config, self.parts.embedder.preprocess)  # type: ignore[attr-defined]
        return loaded, open_video(loaded)

    def _put(self, unit: object) -> None:
        while True:
            if self._stop.is_set():
                raise Aborted()
            try:
                self._units.put(unit, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue

    def _put_final(self, unit: object) -> None:
        try:
            self._put(unit)
        except Aborted:
            pass

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, Aborted):
            self._errors.append(exc)
        self._stop.set()


class _Feed:
    """A shared iterator: prefetch threads take turns pulling the next item from discovery."""

    def __init__(self, iterator: Iterator[MediaItem | Vanished]) -> None:
        self._iterator = iterator
        self._lock = threading.Lock()

    def next(self) -> MediaItem | Vanished | None:
        with self._lock:
            return next(self._iterator, None)


class _Writer:
    """The thread that commits outcomes in groups; its first error stops the pipeline."""

    def __init__(self, recorder: Recorder, on_error: object) -> None:
        self._recorder = recorder
        self._on_error = on_error
        self._queue: queue.Queue[Outcome | None] = queue.Queue(maxsize=4 * _WRITE_GROUP)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)
        self._thread.start()

    def submit(self, outcome: Outcome) -> None:
        while not self._failed.is_set():
            try:
                self._queue.put(outcome, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue
        raise Aborted()

    def close(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=_PUT_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            group = [first] if first is not None else []
            while first is not None and len(group) < _WRITE_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    first = None
                    break
                group.append(nxt)
            if group and not self._failed.is_set():
                try:
                    self._recorder.record(group)
                except BaseException as exc:
                    self._failed.set()
                    self._on_error(exc)  # type: ignore[operator]
            if first is None:
                return


def _drain(units: queue.Queue[object]) -> None:
    while True:
        try:
            units.get_nowait()
        except queue.Empty:
            return


def _clean(metadata: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in metadata.items() if v is not None}
