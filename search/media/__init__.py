"""Media decoding shared by ingestion and the API's query-by-image: bytes in, pixels out.

- ``sniff``: what a file is, from its magic bytes;
- ``decode_image``: upright RGB at the size the model needs, with EXIF facts;
- ``save_thumbnail``: WebP previews for the UI;
- ``probe_video`` / ``sample_frames``: video facts and frames at a chosen rate.

Everything raises ``search.errors.MediaError`` (or ``TooLarge``) with a reason users can read.
"""

from .exif import ExifInfo, parse_exif_datetime, read_exif
from .image import DecodedImage, decode_image, to_rgb
from .sniff import SNIFF_BYTES, Sniffed, describe, sniff
from .thumbnail import make_thumbnail, save_thumbnail
from .video import SamplingPlan, VideoFrame, VideoInfo, effective_rate, probe_video, sample_frames

__all__ = [
    "SNIFF_BYTES",
    "DecodedImage",
    "ExifInfo",
    "SamplingPlan",
    "Sniffed",
    "VideoFrame",
    "VideoInfo",
    "decode_image",
    "describe",
    "effective_rate",
    "make_thumbnail",
    "parse_exif_datetime",
    "probe_video",
    "read_exif",
    "sample_frames",
    "save_thumbnail",
    "sniff",
    "to_rgb",
]
