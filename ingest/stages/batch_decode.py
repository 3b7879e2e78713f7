"""Stage 2, batched: many JPEGs' bytes to model-ready tensors and thumbnails in one call, on the GPU when there is one.

The per-image Pillow path (``ingest.stages.decode``) decodes, resizes and thumbnails on the CPU,
about 80 full-size photos per second per core: far below what a GPU embeds. Here the bytes the
prefetch threads read are decoded together by ``torchvision.io.decode_jpeg`` (nvJPEG on CUDA,
libjpeg-turbo on the CPU), turned upright from the EXIF orientation, resized, cropped and
normalised on the device by the model's own transform (``search.media.tensor_image``), and the
thumbnails are cut from the same decoded pixels, so nothing is decoded twice.

Whatever this path cannot do exactly as the Pillow path does (other formats, CMYK, several
pictures in one file, over the pixel limit, a decode error, a thumbnail that cannot be written)
is handed back as a ``Fallback``: the caller runs ``prepare_image`` on it, which either succeeds
or fails with the very message the failure list has always shown.

``DecodeAhead`` keeps several batches decoding at once (each thread with its own CUDA stream),
so reading, decoding, the forward pass and the writes overlap.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from ingest.stages.decode import DecodeConfig, ImageFacts, PreparedImage, image_thumb_name
from ingest.stages.load import Loaded
from search.embedder.device import nvjpeg_problem
from search.errors import ConfigError, MediaError
from search.media import read_exif, save_thumbnail
from search.media.image import frame_count_of
from search.media.tensor_image import TensorPreprocess, UnsupportedTransform, orient, thumbnail_pixels
from search.settings import Settings

log = logging.getLogger(__name__)

JPEG_MIME = "image/jpeg"
_BATCHED_MODES = ("RGB", "L")  # CMYK and friends: Pillow's conversion is the reference, so they fall back
_SWAPS_AXES = {5, 6, 7, 8}
_THUMBNAIL_TIMEOUT_S = 120.0  # a thumbnail write that takes longer is a stuck disk, not a slow one

T = TypeVar("T")


@dataclass(frozen=True)
class Fallback:
    """An item the batched path hands back for ``prepare_image``; ``reason`` is for logs, not users."""

    loaded: Loaded
    reason: str


@dataclass(frozen=True)
class BatchPrepared:
    """What one ``BatchDecoder.prepare`` call made: images ready to embed and items for the Pillow path."""

    images: list[PreparedImage]
    fallbacks: list[Fallback]


@dataclass(frozen=True)
class _Screened:
    loaded: Loaded
    facts: ImageFacts
    orientation: int


class BatchDecoder:
    """Decodes lists of loaded JPEGs into ``PreparedImage``s whose tensors already sit on ``device``.

    Thread-safe: each calling thread gets its own CUDA stream. ``thumbnail_workers`` threads
    encode and write the WebP previews (the one CPU-heavy step left: about 2.6 ms each).
    """

    def __init__(
        self,
        config: DecodeConfig,
        transform: TensorPreprocess,
        device: torch.device,
        *,
        decode_device: torch.device | None = None,
        thumbnail_workers: int = 2,
    ) -> None:
        self.config = config
        self.transform = transform
        self.device = device
        self.decode_device = decode_device or device
        self._thumbnails = ThreadPoolExecutor(max(1, thumbnail_workers), thread_name_prefix="ingest-thumbnail")
        self._local = threading.local()

    def accepts(self, loaded: Loaded) -> bool:
        """Worth sending here: a JPEG whose bytes are in memory (anything else goes straight to Pillow)."""
        return loaded.kind == "image" and loaded.mime == JPEG_MIME and loaded.data is not None

    def batchable(self, loaded: Loaded) -> bool:
        """The full check, header included (about 0.1 ms): prefetch threads call it so that CMYK,
        multi-picture or oversized JPEGs take the Pillow path there, not on a decode thread."""
        return not isinstance(self._screen(loaded), Fallback)

    def prepare(self, batch: Sequence[Loaded]) -> BatchPrepared:
        """Decode, orient, preprocess and thumbnail ``batch``; never raises for a bad file."""
        screened: list[_Screened] = []
        fallbacks: list[Fallback] = []
        for loaded in batch:
            verdict = self._screen(loaded)
            (fallbacks if isinstance(verdict, Fallback) else screened).append(verdict)  # type: ignore[arg-type]
        if not screened:
            return BatchPrepared([], fallbacks)
        try:
            images, failed = self._prepare_screened(screened)
        except Exception as exc:  # e.g. out of GPU memory: the Pillow path still indexes every item
            log.warning(
                "batched decode of %d images failed (%s: %s); decoding them one by one", len(screened), type(exc).__name__, exc
            )
            return BatchPrepared([], fallbacks + [Fallback(s.loaded, f"batch failed: {type(exc).__name__}") for s in screened])
        order = {id(loaded): i for i, loaded in enumerate(batch)}
        return BatchPrepared(images, sorted(fallbacks + failed, key=lambda f: order[id(f.loaded)]))

    def close(self) -> None:
        self._thumbnails.shutdown(wait=True, cancel_futures=True)

    # -- steps ------------------------------------------------------------------------------------

    def _screen(self, loaded: Loaded) -> _Screened | Fallback:
        """Read the header (size, mode, EXIF) without decoding pixels; Pillow is the reference for every fact."""
        if not self.accepts(loaded):
            return Fallback(loaded, f"{loaded.mime} is decoded by Pillow")
        try:
            with Image.open(io.BytesIO(loaded.data)) as image:  # type: ignore[arg-type]
                fmt, mode, (width, height) = image.format, image.mode, image.size
                frames = frame_count_of(image)
                exif = read_exif(image)
        except Exception as exc:  # the Pillow path words the failure for the user
            return Fallback(loaded, f"header unreadable ({type(exc).__name__})")
        if fmt != "JPEG" or frames != 1:
            return Fallback(loaded, f"{fmt} with {frames} pictures")
        if mode not in _BATCHED_MODES:
            return Fallback(loaded, f"{mode} JPEG")
        if width <= 0 or height <= 0 or width * height > self.config.max_pixels:
            return Fallback(loaded, f"{width}x{height} is outside the pixel limits")
        if exif.orientation in _SWAPS_AXES:
            width, height = height, width
        return _Screened(loaded, ImageFacts(width, height, loaded.mime, exif, 1), exif.orientation)

    def _prepare_screened(self, screened: list[_Screened]) -> tuple[list[PreparedImage], list[Fallback]]:
        stream = self._stream()
        with _on(stream):
            decoded = self._decode([s.loaded.data for s in screened])  # type: ignore[misc]
            failed = [Fallback(s.loaded, f"decode failed: {d}") for s, d in zip(screened, decoded) if isinstance(d, Exception)]
            good = [(s, d) for s, d in zip(screened, decoded) if isinstance(d, torch.Tensor)]
            if not good:
                return [], failed
            upright = [orient(pixels.to(self.device), s.orientation) for s, pixels in good]
            batch = self.transform.batch(upright)
            thumbs = [thumbnail_pixels(pixels, self.config.thumbnail_size) for pixels in upright]
            on_cuda = self.device.type == "cuda"
            thumbs = [t.to("cpu", non_blocking=on_cuda) for t in thumbs]
            if stream is not None:
                batch.record_stream(torch.cuda.default_stream(self.device))  # consumers read it on their own stream
                stream.synchronize()  # the thumbnails' host copies have landed
        names = [image_thumb_name(s.loaded.item.media_id) for s, _ in good]
        written = self._write_thumbnails(thumbs, names)
        images: list[PreparedImage] = []
        for (s, _), tensor, name, error in zip(good, batch.unbind(0), names, written):
            if error is None:
                images.append(PreparedImage(s.loaded, tensor, s.facts, name))
            else:
                failed.append(Fallback(s.loaded, f"thumbnail not written: {error}"))
        return images, failed

    def _decode(self, datas: list[bytes]) -> list[torch.Tensor | Exception]:
        """One call for the batch; when a file breaks it (one bad file fails the call), each on its own."""
        # a writable copy: torch warns about read-only ``bytes``, and a memcpy is noise beside a decode
        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
        device = str(self.decode_device)
        try:
            return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass
        results: list[torch.Tensor | Exception] = []
        for one in encoded:
            try:
                results.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as exc:
                results.append(exc)
        return results

    def _write_thumbnails(self, thumbs: list[torch.Tensor], names: list[str]) -> list[MediaError | None]:
        root, size = self.config.thumbnails_dir, self.config.thumbnail_size
        futures = [
            self._thumbnails.submit(save_thumbnail, Image.fromarray(t.numpy(), "RGB"), root / name, size)
            for t, name in zip(thumbs, names)
        ]
        errors: list[MediaError | None] = []
        for future in futures:
            try:
                future.result(timeout=_THUMBNAIL_TIMEOUT_S)
                errors.append(None)
            except MediaError as exc:
                errors.append(exc)
            except FutureTimeout:
                errors.append(MediaError(f"thumbnail write took over {_THUMBNAIL_TIMEOUT_S:.0f} s"))
        return errors

    def _stream(self) -> torch.cuda.Stream | None:
        """This thread's CUDA stream, so two batches in flight run side by side on the GPU."""
        if self.device.type != "cuda":
            return None
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.device)
        # nothing queued on it may still read memory the decoder is about to be handed
        # (torchvision's CUDA decoder writes on a private stream: pytorch/vision#9606)
        stream.synchronize()
        return stream


def _on(stream: torch.cuda.Stream | None) -> AbstractContextManager[Any]:
    return torch.cuda.stream(stream) if stream is not None else nullcontext()


@dataclass(frozen=True)
class DecodedBatch(Generic[T]):
    """A batch back from ``DecodeAhead``: the batched images, and what the fallback made of the rest."""

    images: list[PreparedImage]
    fallbacks: list[T]


class DecodeAhead(Generic[T]):
    """Up to ``in_flight`` batches decoding at once, each in its own thread; the caller takes results in order.

    ``fallback`` runs in the same thread for every item the batched path hands back (the
    pipeline passes ``prepare_image`` wrapped in its usual error handling), so the embedding
    thread never decodes anything itself.
    """

    def __init__(self, decoder: BatchDecoder, in_flight: int, fallback: Callable[[Loaded], T]) -> None:
        self.decoder = decoder
        self.in_flight = max(1, in_flight)
        self._fallback = fallback
        self._pool = ThreadPoolExecutor(self.in_flight, thread_name_prefix="ingest-batch-decode")
        self._slots = threading.BoundedSemaphore(self.in_flight)

    def submit(self, batch: Sequence[Loaded], timeout: float) -> Future[DecodedBatch[T]]:
        """Start decoding ``batch``; waits up to ``timeout`` s for a free slot, then raises TimeoutError."""
        if not self._slots.acquire(timeout=timeout):
            raise TimeoutError(f"no decode slot came free within {timeout:g} s")
        try:
            future = self._pool.submit(self._run, list(batch))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def close(self) -> None:
        """Drop batches not yet started and wait for those running (each is bounded by its own timeouts)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, batch: list[Loaded]) -> DecodedBatch[T]:
        prepared = self.decoder.prepare(batch)
        return DecodedBatch(prepared.images, [self._fallback(f.loaded) for f in prepared.fallbacks])


def batch_decode_devices(mode: str, model_device: torch.device) -> tuple[torch.device, torch.device] | None:
    """(where pixels are processed, where JPEGs are decoded) for MMSEARCH_INGEST__DEVICE_DECODE; None means Pillow.

    ``auto`` batches only where it pays: on a CUDA model whose GPU decodes with nvJPEG (on the
    CPU, Pillow's draft decoding at 1/2..1/8 scale beats a full libjpeg-turbo decode). ``on``
    always batches, decoding on the CPU when nvJPEG is not usable.
    """
    if mode == "off":
        return None
    if model_device.type == "cuda":
        problem = nvjpeg_problem(model_device)
        if problem is None:
            return model_device, model_device
        log.warning("nvJPEG is not usable on %s (%s)", model_device, problem)
        return (model_device, torch.device("cpu")) if mode == "on" else None
    return (torch.device("cpu"), torch.device("cpu")) if mode == "on" else None


def make_batch_decoder(settings: Settings, embedder: Any, config: DecodeConfig) -> BatchDecoder | None:
    """The batched decoder the settings ask for, or None for the per-image Pillow path.

    ``embedder`` is a ``search.embedder.Embedder`` (its ``device`` and open_clip ``transform``).
    """
    mode = settings.ingest.device_decode
    devices = batch_decode_devices(mode, embedder.device)
    if devices is None:
        return None
    try:
        transform = TensorPreprocess.from_transform(embedder.transform)
        transform.output_size()
    except UnsupportedTransform as exc:
        if mode == "on":
            raise ConfigError(
                f"MMSEARCH_INGEST__DEVICE_DECODE=on, but {embedder.model_name} cannot be preprocessed on tensors: {exc}"
            ) from exc
        log.info("batched decode off for %s: %s", embedder.model_name, exc)
        return None
    device, decode_device = devices
    return BatchDecoder(config, transform, device, decode_device=decode_device, thumbnail_workers=settings.ingest.decode_workers)
