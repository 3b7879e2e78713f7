"""Pixel operations on decoded image tensors that reproduce the Pillow path exactly enough to share an index.

Batched decoding (``torchvision.io.decode_jpeg``, nvJPEG on a GPU) hands back uint8 tensors,
not Pillow images, so the three things the Pillow path does to a picture are redone here on
tensors, on whatever device they live: EXIF orientation (the same eight transposes as
``search.media.image``), the model's preprocessing (read from open_clip's own transform, so it
always matches the weights) and the thumbnail's size (the same rule as ``search.media.thumbnail``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize, ToTensor
from torchvision.transforms.v2 import functional as F

_KNOWN_NO_OPS = ("MaybeConvertMode", "_convert_to_rgb")  # RGB conversion: decoded tensors are RGB already
_TENSOR_INTERPOLATIONS = (InterpolationMode.BICUBIC, InterpolationMode.BILINEAR, InterpolationMode.NEAREST)


class UnsupportedTransform(ValueError):
    """The model's preprocessing has a step this module cannot redo on tensors."""


@dataclass(frozen=True)
class TensorPreprocess:
    """open_clip's eval transform (resize, centre crop, to float, normalise) on uint8 CHW tensors.

    ``resize`` is what torchvision's ``Resize`` was given: one side length (the shortest side is
    scaled to it, the long side truncated as torchvision does) or an exact (height, width).
    """

    resize: tuple[int, ...]
    interpolation: InterpolationMode
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_transform(cls, transform: Any) -> TensorPreprocess:
        """Read the steps of a torchvision ``Compose`` as open_clip builds it; raise UnsupportedTransform otherwise."""
        steps = list(getattr(transform, "transforms", [transform]))
        resize: tuple[int, ...] | None = None
        interpolation = InterpolationMode.BICUBIC
        crop: tuple[int, int] | None = None
        mean: tuple[float, ...] | None = None
        std: tuple[float, ...] | None = None
        for step in steps:
            name = getattr(step, "__name__", type(step).__name__)
            if isinstance(step, Resize) and resize is None and crop is None:
                resize, interpolation = _resize_of(step)
            elif isinstance(step, CenterCrop) and crop is None:
                crop = (int(step.size[0]), int(step.size[-1]))
            elif isinstance(step, ToTensor) or name in _KNOWN_NO_OPS:
                continue
            elif isinstance(step, Normalize) and mean is None:
                mean, std = tuple(float(v) for v in step.mean), tuple(float(v) for v in step.std)
            else:
                raise UnsupportedTransform(f"preprocessing step {name} has no tensor equivalent here")
        if resize is None or mean is None or std is None:
            raise UnsupportedTransform("preprocessing lacks a Resize or a Normalize step")
        return cls(resize, interpolation, crop, mean, std)

    def output_size(self) -> tuple[int, int]:
        """(height, width) of every tensor this transform returns, whatever the input size."""
        if self.crop is not None:
            return self.crop
        if len(self.resize) == 2:
            return (self.resize[0], self.resize[1])
        raise UnsupportedTransform("a shortest-side resize without a crop gives tensors of different sizes")

    def resize_crop(self, image: torch.Tensor) -> torch.Tensor:
        """Resize and crop one upright uint8 CHW image, still uint8 (the Pillow path rounds here too)."""
        out = F.resize(image, list(self.resize), interpolation=self.interpolation, antialias=True)
        if self.crop is not None:
            out = F.center_crop(out, list(self.crop))
        return out

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW to the float tensor the model takes: /255 (ToTensor), then (x - mean) / std."""
        floats = batch.to(torch.float32).div_(255.0)
        return F.normalize(floats, list(self.mean), list(self.std), inplace=True)

    def batch(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Preprocess upright uint8 CHW images of any sizes into one float NCHW batch."""
        return self.normalise(torch.stack([self.resize_crop(image) for image in images]))


def _resize_of(step: Resize) -> tuple[tuple[int, ...], InterpolationMode]:
    if step.max_size is not None:
        raise UnsupportedTransform("Resize with max_size has no tensor equivalent here")
    if step.interpolation not in _TENSOR_INTERPOLATIONS:
        raise UnsupportedTransform(f"Resize with {step.interpolation.value} interpolation has no tensor equivalent here")
    size = step.size
    sides = (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(sides) not in (1, 2):
        raise UnsupportedTransform(f"Resize to {size!r} has no tensor equivalent here")
    return sides, step.interpolation


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn a CHW tensor upright from its EXIF orientation (1..8), as ``Image.transpose`` does."""
    if orientation == 2:  # FLIP_LEFT_RIGHT
        return image.flip(-1)
    if orientation == 3:  # ROTATE_180
        return image.flip(-2, -1)
    if orientation == 4:  # FLIP_TOP_BOTTOM
        return image.flip(-2)
    if orientation == 5:  # TRANSPOSE
        return image.transpose(-2, -1)
    if orientation == 6:  # ROTATE_270 (Pillow turns anticlockwise): a quarter turn clockwise
        return torch.rot90(image, -1, (-2, -1))
    if orientation == 7:  # TRANSVERSE
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:  # ROTATE_90: a quarter turn anticlockwise
        return torch.rot90(image, 1, (-2, -1))
    return image


def thumbnail_dimensions(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of the preview: the rule of ``search.media.thumbnail.make_thumbnail``.

    Longest side at most ``size``, aspect kept, never enlarged; a test checks the two agree.
    """
    scale = min(size / width, size / height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail_pixels(image: torch.Tensor, size: int) -> torch.Tensor:
    """The preview of an upright uint8 CHW image as uint8 HWC (ready for ``Image.fromarray``)."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    target_w, target_h = thumbnail_dimensions(width, height, size)
    small = image
    if (target_w, target_h) != (width, height):
        small = F.resize(image, [target_h, target_w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return small.permute(1, 2, 0).contiguous()
