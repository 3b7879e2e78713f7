"""Where and in what precision the model runs; threads set on purpose.

On CPU, torch's default of one thread per core oversubscribes badly as soon as decode threads
or several worker processes share the machine, so the count comes from the settings. On CUDA,
the GPUs and whether nvJPEG decodes on them are probed here, for the doctor and the decode stage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from search.errors import ConfigError


def pick_device(requested: str) -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("MMSEARCH_DEVICE=cuda but torch sees no CUDA GPU; use auto or cpu.")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("MMSEARCH_DEVICE=mps but this torch build has no MPS support; use auto or cpu.")
    return torch.device(requested)


def pick_precision(requested: str, device: torch.device) -> str:
    """Half precision on GPUs (bf16 where supported), full precision on CPU and MPS."""
    if requested != "auto":
        if device.type == "cpu" and requested == "fp16":
            raise ConfigError("fp16 is not supported on the CPU; use fp32 or bf16.")
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def set_cpu_threads(threads: int) -> None:
    """Fix torch's intra-op threads; inter-op threads can only be set once per process."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work has started: keep what is there


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as ``mmsearch doctor`` and the benchmarks describe it."""

    index: int
    name: str
    total_bytes: int
    capability: tuple[int, int]

    def describe(self) -> str:
        major, minor = self.capability
        return f"cuda:{self.index} {self.name}, {self.total_bytes / 2**30:.1f} GiB, compute {major}.{minor}"


def cuda_gpus() -> list[GpuInfo]:
    """Every CUDA device torch can see; empty on a machine without one (or a CPU-only torch)."""
    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(index, props.name, int(props.total_memory), (props.major, props.minor)))
    return gpus


def nvjpeg_problem(device: torch.device) -> str | None:
    """None when torchvision can decode JPEGs on ``device`` (nvJPEG); otherwise why it cannot.

    Decodes one real 16x16 JPEG there: a torchvision built without nvJPEG, a driver too old for
    the CUDA runtime or a full GPU only show up when it is tried.
    """
    if device.type != "cuda":
        return f"{device.type} is not a CUDA device"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return _probe_nvjpeg(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=8)
def _probe_nvjpeg(index: int) -> str | None:
    try:
        from torchvision.io import decode_jpeg, encode_jpeg

        sample = encode_jpeg(torch.full((3, 16, 16), 128, dtype=torch.uint8))
        decoded = decode_jpeg(sample, device=f"cuda:{index}")
        torch.cuda.synchronize(index)
    except Exception as exc:  # any failure means the device path must not be used
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}"
    if tuple(decoded.shape) != (3, 16, 16):
        return f"nvJPEG decoded a 16x16 test image as {tuple(decoded.shape)}"
    return None
