"""Model specs are data: one string says which weights to load and from where.

Accepted forms (see the README):
- ``mmsearch-synthetic``: the small model bundled with mmsearch (demo and tests only);
- ``ARCH:TAG``: an open_clip architecture with a pretrained tag, e.g. ``ViT-B-32:laion2b_s34b_b79k``
  or ``xlm-roberta-base-ViT-B-32:laion5b_s13b_b90k`` (downloaded once, then cached);
- ``ARCH:/path/to/weights.{pt,bin,safetensors}``: an architecture with a local checkpoint file;
- ``hf-hub:org/name``: an open_clip model on the Hugging Face hub;
- ``/path/to/folder`` or ``local-dir:/path``: a folder with ``open_clip_config.json`` and weights;
- ``ARCH:random``: random weights, for throughput benchmarks only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from search.errors import ModelUnavailable

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
BUNDLED_NAMES = ("mmsearch-synthetic",)


class SpecKind(str, Enum):
    BUNDLED = "bundled"
    PRETRAINED_TAG = "pretrained-tag"
    CHECKPOINT_FILE = "checkpoint-file"
    HF_HUB = "hf-hub"
    LOCAL_DIR = "local-dir"
    RANDOM = "random"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec; ``text`` is what the user wrote and names the collection."""

    text: str
    kind: SpecKind
    arch: str | None = None  # open_clip architecture name, when the spec names one
    source: str | None = None  # tag, file, folder or hub id

    @property
    def open_clip_name(self) -> str:
        """The ``model_name`` argument open_clip's factory expects for this spec."""
        if self.kind in (SpecKind.BUNDLED, SpecKind.LOCAL_DIR):
            return f"local-dir:{self.source}"
        if self.kind is SpecKind.HF_HUB:
            return f"hf-hub:{self.source}"
        assert self.arch is not None
        return self.arch

    @property
    def pretrained(self) -> str | None:
        """open_clip's ``pretrained`` argument: a tag or a file, only for ARCH-based specs."""
        if self.kind in (SpecKind.PRETRAINED_TAG, SpecKind.CHECKPOINT_FILE):
            return self.source
        return None


def parse_model_spec(text: str) -> ModelSpec:
    """Parse a spec string; raise ModelUnavailable with the accepted forms when it is malformed."""
    text = text.strip()
    if not text:
        raise ModelUnavailable("The model spec is empty. " + _FORMS)
    if text in BUNDLED_NAMES:
        return ModelSpec(text, SpecKind.BUNDLED, source=str(BUNDLED_DIR / text))
    if text.startswith("hf-hub:"):
        return ModelSpec(text, SpecKind.HF_HUB, source=_nonempty(text, text[len("hf-hub:") :]))
    if text.startswith("local-dir:"):
        return ModelSpec(text, SpecKind.LOCAL_DIR, source=_nonempty(text, text[len("local-dir:") :]))
    if Path(text).expanduser().is_dir():
        return ModelSpec(text, SpecKind.LOCAL_DIR, source=str(Path(text).expanduser().resolve()))
    arch, sep, source = text.partition(":")
    if not sep or not arch or not source:
        raise ModelUnavailable(f"Model spec {text!r} is not understood. " + _FORMS)
    if source == "random":
        return ModelSpec(text, SpecKind.RANDOM, arch=arch)
    if "/" in source or source.endswith((".pt", ".pth", ".bin", ".safetensors")):
        return ModelSpec(text, SpecKind.CHECKPOINT_FILE, arch=arch, source=str(Path(source).expanduser()))
    return ModelSpec(text, SpecKind.PRETRAINED_TAG, arch=arch, source=source)


def _nonempty(text: str, rest: str) -> str:
    if not rest:
        raise ModelUnavailable(f"Model spec {text!r} names no model after the prefix. " + _FORMS)
    return rest


_FORMS = (
    "Use one of: 'mmsearch-synthetic' (bundled demo model), 'ARCH:TAG' such as "
    "'ViT-B-32:laion2b_s34b_b79k', 'ARCH:/path/to/weights.bin', 'hf-hub:org/name', "
    "or a folder holding open_clip_config.json and weights."
)
