"""The engine that runs the stages over a stream of items, keeping the model busy.

Three kinds of thread share the work so that embedding, the expensive step, never waits:

- prefetch: ``decode_workers`` threads take items from the stream and fetch, read, decode,
  thumbnail and preprocess them (PIL, libjpeg, FFmpeg and torch's transforms release the GIL);
- batch and embed: the calling thread gathers their tensors into batches of
  ``embedder.batch_size`` and embeds them; a partial batch is embedded when nothing has arrived
  for a moment;
- write: one thread commits outcomes to the store and the catalog in groups.

With batched decoding (``MMSEARCH_INGEST__DEVICE_DECODE``, ``ingest.stages.batch_decode``) the
prefetch threads only read JPEGs; the embedding thread gathers their bytes into batches and
hands each to ``DecodeAhead``, which keeps ``decode_batches_in_flight`` of them decoding (on the
GPU with nvJPEG) while the model runs, and takes them back in order. Whatever the batched path
hands back (other formats, CMYK, a broken file) goes through ``prepare_image`` in the decode
thread, so failures read exactly as on the Pillow path.

Bounded queues between them cap memory (a long video streams through, frame by frame) and
push back on the producers. The same engine runs a whole job in embedded mode and one batch
of items inside a Celery ``gpu`` task.

Stopping has one mechanism, ``_Stop``: the first error of any thread is kept and sets its
event, and every blocking wait in every thread (queue get and put, the discovery lock, the wait
for the writer, the wait for a decode slot or a decoded batch) polls that event every ``_POLL_S``. So no thread can wait for one that has
gone: within a poll of a failure every thread unwinds, ``run`` joins them (with a deadline)
and raises that first error. End of input is the only other signal: each prefetch thread's
``_DONE``, then the writer's ``_END``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from ingest.discovery import DiscoveryContext, Vanished, admit_fetched, not_done_yet
from ingest.items import MediaItem
from ingest.stages.batch_decode import BatchDecoder, DecodeAhead, DecodedBatch, make_batch_decoder
from ingest.stages.cues import NO_SUBTITLES, read_cues, video_cue_points
from ingest.stages.decode import DecodeConfig, PreparedFrame, PreparedImage, open_video, prepare_frames, prepare_image
from ingest.stages.fetch import fetch_remote
from ingest.stages.load import Loaded, load_item
from ingest.stages.points import FrameVector, frame_points, image_point, segment_points
from ingest.stages.pooling import windows
from ingest.stages.record import Failed, Indexed, Outcome, Recorder
from ingest.tracker import JobTracker
from search.catalog import Catalog
from search.embedder import ImageEmbedder
from search.errors import FetchError, MediaError, StoreUnavailable
from search.fetch import Fetcher
from search.media import VideoInfo
from search.media.shots import ShotTracker, refine_cuts
from search.media.subtitles import Subtitles
from search.settings import Settings
from search.store import VectorStore

log = logging.getLogger(__name__)

_IDLE_FLUSH_S = 0.05  # embed a partial batch when no tensor arrived for this long
_POLL_S = 0.1  # how often every blocking wait looks at the stop signal
_JOIN_S = 5.0  # how long a stopping run waits for its threads to finish their current call
_WRITE_GROUP = 64  # outcomes committed together (a group grows by whole hand-overs: it may pass this by less than a batch)


@dataclass(frozen=True)
class PipelineParts:
    """Everything the stages touch; built by the job runner or the Celery worker process."""

    settings: Settings
    catalog: Catalog
    store: VectorStore
    embedder: ImageEmbedder
    fetcher: Fetcher
    tracker: JobTracker


# -- stopping --------------------------------------------------------------------------------------


class Stopped(Exception):
    """Raised in a pipeline thread when the run is stopping: the thread unwinds quietly."""


class _Stop:
    """The run's one stop signal: the first error wins, and every wait watches the signal."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        """Keep ``exc`` if it is the first error, and stop every thread."""
        with self._lock:
            if self.error is None:
                self.error = exc
        self._event.set()

    def halt(self) -> None:
        """Stop every thread without an error (the run is over)."""
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped()

    def get(self, source: queue.Queue[object], timeout: float | None = None) -> object:
        """The next entry of ``source``; queue.Empty after ``timeout`` seconds, Stopped on a stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.check()
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise queue.Empty
            try:
                return source.get(timeout=wait)
            except queue.Empty:
                continue

    def put(self, target: queue.Queue[object], entry: object) -> None:
        """Put ``entry`` once there is room; Stopped on a stop."""
        while True:
            self.check()
            try:
                target.put(entry, timeout=_POLL_S)
                return
            except queue.Full:
                continue


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
    error: str | None  # why the frames stopped early (None: the video was read to its end)
    subtitles: Subtitles = NO_SUBTITLES  # read once the frames are done
    shots: tuple[float, ...] = ()  # cut times found while the frames were decoded


@dataclass(frozen=True)
class _JpegLoaded:
    """A JPEG read into memory that the batched decoder takes (``BatchDecoder.batchable``)."""

    loaded: Loaded


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
    subtitles: Subtitles = NO_SUBTITLES
    shots: tuple[float, ...] = ()


_DONE = object()  # a prefetch thread found the stream exhausted (or the job cancelled)

Batch = list[tuple[torch.Tensor, object]]  # tensor and what it belongs to: PreparedImage | _FrameReady
Decoding = Future[DecodedBatch[object]]  # a JPEG batch in DecodeAhead; its fallbacks are units


@dataclass
class _Batched:
    """The embedding thread's side of batched decoding: JPEGs gathering, and batches decoding."""

    ahead: DecodeAhead[object]
    jpegs: list[Loaded] = field(default_factory=list)
    decoding: deque[Decoding] = field(default_factory=deque)


class Pipeline:
    def __init__(self, parts: PipelineParts, *, workers: int | None = None, redelivered: bool = True) -> None:
        """``redelivered=False`` when the items come straight from this process's discovery:
        none can be finished already, so the per-item catalog check is skipped."""
        self.parts = parts
        self.redelivered = redelivered
        self.settings = parts.settings
        self.embedder = parts.embedder
        self.model = parts.embedder.model_name
        self.batch_size = parts.embedder.batch_size
        self.workers = workers or self.settings.ingest.decode_workers
        self.config = DecodeConfig.from_settings(self.settings, parts.embedder.image_size)
        self.admission = DiscoveryContext(parts.catalog, self.settings.ingest, parts.fetcher, parts.tracker, self.model)
        self.recorder = Recorder(parts.catalog, parts.store, parts.tracker, self.model, self.settings.thumbnails_dir)
        self._stop = _Stop()
        self._units: queue.Queue[object] = queue.Queue(maxsize=2 * self.batch_size)
        self._videos: dict[str, _VideoState] = {}
        self._decoder: BatchDecoder | None = None

    # -- the calling thread: orchestration, batching and embedding -----------------------------

    def run(self, stream: Iterable[MediaItem | Vanished]) -> None:
        """Process every item of ``stream``; raises the first error any thread met, promptly."""
        self._stop, self._units, self._videos = _Stop(), queue.Queue(maxsize=2 * self.batch_size), {}
        if self.redelivered:  # a redelivered task: skip what this job finished, 500 items per query
            stream = not_done_yet(self.parts.catalog, self.parts.tracker.job_id, stream)
        self._decoder = make_batch_decoder(self.settings, self.embedder, self.config)
        batched = None
        if self._decoder is not None:
            batched = _Batched(DecodeAhead(self._decoder, self.settings.ingest.decode_batches_in_flight, self._fallback_unit))
        feed = _Feed(iter(stream), self._stop)
        writer = _Writer(self.recorder, self._stop)
        prefetchers = [
            threading.Thread(target=self._prefetch, args=(feed,), name=f"ingest-prefetch-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in prefetchers:
            thread.start()
        try:
            self._embed_loop(len(prefetchers), writer, batched)
            writer.finish()
        except Stopped:
            pass  # another thread failed: its error is raised below
        except BaseException as exc:  # the embedder failed, or Ctrl-C
            self._stop.fail(exc)
        finally:
            self._stop.halt()
            threads = [*prefetchers, writer.thread]
            if batched is not None:
                threads.append(_close_decoding(batched, self._decoder))
            _join_all(threads, _JOIN_S)
        if self._stop.error is not None:
            raise self._stop.error

    def _embed_loop(self, producers: int, writer: _Writer, batched: _Batched | None) -> None:
        """Batch units as they arrive until every prefetch thread is done and every JPEG batch
        is decoded and embedded; Stopped on a stop."""
        batch: Batch = []
        while producers or (batched is not None and (batched.jpegs or batched.decoding)):
            if batched is not None:
                self._take_decoded(batched, batch, writer, wait=not producers and not batched.jpegs)
            if not producers:
                if batched is not None and batched.jpegs:
                    self._start_decoding(batched, batch, writer)
                continue
            busy = batch or (batched is not None and (batched.jpegs or batched.decoding))
            try:
                unit = self._stop.get(self._units, timeout=_IDLE_FLUSH_S if busy else None)
            except queue.Empty:  # nothing arrived for a moment: decode or embed what there is
                if batched is not None and batched.jpegs:
                    self._start_decoding(batched, batch, writer)
                elif batch and (batched is None or not batched.decoding):
                    self._embed(batch, writer)
                continue
            if unit is _DONE:
                producers -= 1
            elif isinstance(unit, _JpegLoaded):
                assert batched is not None
                batched.jpegs.append(unit.loaded)
                if len(batched.jpegs) >= self.batch_size:
                    self._start_decoding(batched, batch, writer)
            else:
                self._accept(unit, batch, writer)
        if batch:
            self._embed(batch, writer)

    def _accept(self, unit: object, batch: Batch, writer: _Writer) -> None:
        """Add a unit's tensor to the batch (embedding it when full), or route the unit."""
        if isinstance(unit, _ImageReady):
            batch.append((unit.prepared.tensor, unit.prepared))
        elif isinstance(unit, _FrameReady):
            self._videos[unit.media_id].pending += 1
            batch.append((unit.frame.tensor, unit))
        else:
            self._route(unit, writer)
        if len(batch) >= self.batch_size:
            self._embed(batch, writer)

    # -- batched decoding (the embedding thread's side) --------------------------------------------

    def _start_decoding(self, batched: _Batched, batch: Batch, writer: _Writer) -> None:
        """Hand the gathered JPEGs to DecodeAhead; when all its slots are busy, take the oldest first."""
        if len(batched.decoding) >= batched.ahead.in_flight:
            self._take(batched.decoding.popleft(), batch, writer)
        jpegs, batched.jpegs = batched.jpegs, []
        while True:  # a slot frees when a batch's thread finishes, just after its future is done
            self._stop.check()
            try:
                batched.decoding.append(batched.ahead.submit(jpegs, timeout=_POLL_S))
                return
            except TimeoutError:
                continue

    def _take_decoded(self, batched: _Batched, batch: Batch, writer: _Writer, *, wait: bool) -> None:
        """Take the decoded batches at the head of the line, in order; ``wait`` for the first one."""
        while batched.decoding and (wait or batched.decoding[0].done()):
            self._take(batched.decoding.popleft(), batch, writer)
            wait = False

    def _take(self, future: Decoding, batch: Batch, writer: _Writer) -> None:
        """One decoded batch into the embedding batch (waiting for it, polling the stop signal)."""
        while True:
            self._stop.check()
            try:
                decoded = future.result(timeout=_POLL_S)
                break
            except FutureTimeout:
                continue
        for prepared in decoded.images:
            self._accept(_ImageReady(prepared), batch, writer)
        for unit in decoded.fallbacks:
            self._accept(unit, batch, writer)

    def _fallback_unit(self, loaded: Loaded) -> object:
        """What the Pillow path makes of a JPEG the batched decoder handed back (in a decode thread)."""
        try:
            return _ImageReady(prepare_image(loaded, self.config, self.embedder.preprocess))
        except (MediaError, FetchError) as exc:
            return _Pass(Failed(loaded.item, str(exc)))
        except Exception as exc:
            log.exception("unexpected error ingesting %s", loaded.item.uri)
            return _Pass(Failed(loaded.item, f"internal error: {type(exc).__name__}: {exc}"))

    def _route(self, unit: object, writer: _Writer) -> None:
        if isinstance(unit, _VideoStart):
            self._videos[unit.loaded.item.media_id] = _VideoState(unit.loaded, unit.info)
        elif isinstance(unit, _VideoEnd):
            state = self._videos[unit.media_id]
            state.ended, state.error = True, unit.error
            state.subtitles = unit.subtitles
            state.shots = unit.shots
            self._finish_video_if_done(unit.media_id, writer)
        elif isinstance(unit, _Pass):
            writer.submit([unit.outcome])

    def _embed(self, batch: Batch, writer: _Writer) -> None:
        vectors = self.embedder.encode_image_tensors(torch.stack([t for t, _ in batch]))
        touched: set[str] = set()
        outcomes: list[Outcome] = []
        for vector, (_, target) in zip(vectors, batch):
            if isinstance(target, PreparedImage):
                outcomes.append(self._image_outcome(target, vector))
            else:
                assert isinstance(target, _FrameReady)
                state = self._videos[target.media_id]
                state.frames.append(FrameVector(target.frame.t, vector, target.frame.thumb))
                state.pending -= 1
                touched.add(target.media_id)
        batch.clear()
        writer.submit(outcomes)  # the batch's images travel to the writer together
        for media_id in touched:
            self._finish_video_if_done(media_id, writer)

    def _finish_video_if_done(self, media_id: str, writer: _Writer) -> None:
        state = self._videos[media_id]
        if state.ended and state.pending == 0:
            del self._videos[media_id]
            writer.submit([self._video_outcome(state)])

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
        """Indexed (partial when its frames stopped early), or Failed when no frame was decoded."""
        loaded, info = state.loaded, state.info
        if not state.frames:
            return Failed(loaded.item, state.error or "corrupt video: no frame could be decoded")
        frames = sorted(state.frames, key=lambda f: f.t)
        ingest = self.settings.ingest
        spans = windows([f.t for f in frames], info.duration, ingest.segment_seconds, ingest.segment_stride)
        points = frame_points(loaded, info, frames, self.model) + segment_points(loaded, info, spans, frames, self.model)
        cues = video_cue_points(self.embedder, loaded, info, state.subtitles, self.model)
        points += cues
        metadata = {
            "mime": loaded.mime,
            "codec": info.codec,
            "fps": info.fps,
            "rotation": info.rotation,
            "frames_sampled": len(frames),
            "segments": len(spans),
            "has_audio": info.has_audio,
            "cues": len(cues),
            "shots": list(state.shots),  # cut times (the first frame of each new shot), seconds
        }
        partial = None if state.error is None else _stopped_at(frames[-1].t, info.duration, state.error)
        if partial is not None:
            metadata["decoded_until"] = frames[-1].t
        return Indexed(
            loaded.item,
            "video",
            points,
            frames[0].thumb,
            loaded.content_hash,
            info.width,
            info.height,
            info.duration,
            metadata,
            partial,
            state.subtitles.problems,
        )

    # -- prefetch threads -------------------------------------------------------------------------

    def _prefetch(self, feed: _Feed) -> None:
        try:
            while not self.parts.tracker.cancelled:
                entry = feed.next()
                if entry is None:
                    break
                if isinstance(entry, Vanished):
                    self._stop.put(self._units, _Pass(entry))
                    continue
                for unit in self._units_of(entry):
                    self._stop.put(self._units, unit)
            self._stop.put(self._units, _DONE)
        except Stopped:
            pass
        except BaseException as exc:  # discovery broke, or the catalog or store went away
            self._stop.fail(exc)

    def _units_of(self, item: MediaItem) -> Iterator[object]:
        """The units one item produces; an unusable item produces one ``Failed`` outcome.

        Only infrastructure errors (StoreUnavailable: the catalog or the store is gone) escape,
        and stop the run; anything else is this item's problem, recorded with its reason.
        """
        video_started = False
        try:
            prepared = self._prepare(item)
            if prepared is None:
                return
            if isinstance(prepared, PreparedImage):
                yield _ImageReady(prepared)
                return
            if isinstance(prepared, _JpegLoaded):
                yield prepared
                return
            loaded, info = prepared
            yield _VideoStart(loaded, info)
            video_started = True
            shots = ShotTracker()
            for frame in prepare_frames(loaded, info, self.config, self.embedder.preprocess, shots):
                yield _FrameReady(item.media_id, frame)
            cuts = tuple(refine_cuts(loaded.path, shots.pairs))
            yield _VideoEnd(item.media_id, None, read_cues(loaded, self.settings.ingest.subtitles), cuts)
        except (MediaError, FetchError) as exc:
            yield _VideoEnd(item.media_id, str(exc)) if video_started else _Pass(Failed(item, str(exc)))
        except (StoreUnavailable, Stopped):
            raise
        except Exception as exc:
            log.exception("unexpected error ingesting %s", item.uri)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            yield _VideoEnd(item.media_id, reason) if video_started else _Pass(Failed(item, reason))

    def _prepare(self, item: MediaItem) -> PreparedImage | _JpegLoaded | tuple[Loaded, VideoInfo] | None:
        if item.is_remote and item.local_copy is None:
            fetched = admit_fetched(self.admission, fetch_remote(item, self.settings, self.parts.fetcher))
            if fetched is None:
                return None
            item = fetched
        loaded = load_item(item, self.settings.ingest.max_download_bytes)
        if loaded.kind == "image" and self._decoder is not None and self._decoder.batchable(loaded):
            return _JpegLoaded(loaded)
        if loaded.kind == "image":
            return prepare_image(loaded, self.config, self.embedder.preprocess)
        return loaded, open_video(loaded)


class _Feed:
    """A shared iterator: prefetch threads take turns pulling the next item from discovery."""

    def __init__(self, iterator: Iterator[MediaItem | Vanished], stop: _Stop) -> None:
        self._iterator = iterator
        self._stop = stop
        self._lock = threading.Lock()

    def next(self) -> MediaItem | Vanished | None:
        """The next entry, None at the end; Stopped on a stop (discovery's errors propagate)."""
        while not self._lock.acquire(timeout=_POLL_S):
            self._stop.check()
        try:
            self._stop.check()
            return next(self._iterator, None)
        finally:
            self._lock.release()


_END = object()  # the embedding thread has submitted its last outcome
_WRITER_BACKLOG = 8  # hand-overs (an embedded batch's outcomes, or one item's) waiting for the writer


class _Writer:
    """The thread that commits outcomes in groups; its first error stops the run."""

    def __init__(self, recorder: Recorder, stop: _Stop) -> None:
        self._recorder = recorder
        self._stop = stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_WRITER_BACKLOG)
        self.thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)
        self.thread.start()

    def submit(self, outcomes: list[Outcome]) -> None:
        """Hand over outcomes to commit, in one queue entry (an embedded batch's images together:
        one handoff, and groups as large as the batches, instead of one entry per image)."""
        if outcomes:
            self._stop.put(self._queue, outcomes)

    def finish(self) -> None:
        """Commit everything submitted, then end the thread; Stopped when the run stops first."""
        self._stop.put(self._queue, _END)
        while self.thread.is_alive():
            self.thread.join(_POLL_S)
            self._stop.check()

    def _loop(self) -> None:
        try:
            while True:
                group, ended = self._next_group()
                if group:
                    self._recorder.record(group)
                if ended:
                    return
        except Stopped:
            pass
        except BaseException as exc:  # the store or the catalog failed
            self._stop.fail(exc)

    def _next_group(self) -> tuple[list[Outcome], bool]:
        """The outcomes handed over so far, up to ``_WRITE_GROUP`` (waiting for the first), and
        whether input ended."""
        group: list[Outcome] = []
        entry = self._stop.get(self._queue)
        while entry is not _END:
            group.extend(cast(list[Outcome], entry))
            if len(group) >= _WRITE_GROUP:
                return group, False
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return group, False
        return group, True


def _join_all(threads: Sequence[threading.Thread], timeout: float) -> None:
    """Join ``threads`` within ``timeout`` seconds in all; a thread still in a slow call is left
    to end at its next wait (they are daemons), with a warning."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [t.name for t in threads if t.is_alive()]
    if late:
        log.warning("ingest threads still busy after the run stopped: %s", ", ".join(late))


def _close_decoding(batched: _Batched, decoder: BatchDecoder | None) -> threading.Thread:
    """Drop the JPEG batches not yet started and close the decoder, in a thread the caller joins
    with its deadline: a batch being decoded finishes first (its thumbnail writes have timeouts)."""
    for future in batched.decoding:
        future.cancel()

    def close() -> None:
        batched.ahead.close()
        if decoder is not None:
            decoder.close()

    thread = threading.Thread(target=close, name="ingest-decode-close", daemon=True)
    thread.start()
    return thread


def _stopped_at(reached: float, duration: float, error: str) -> str:
    """The reason a partially indexed video gives: where its frames stopped, and why."""
    of = f" of {duration:.1f} s" if duration > 0 else ""
    return f"decoding stopped at {reached:.1f} s{of}: {error}"


def _clean(metadata: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in metadata.items() if v is not None}
