"""Where and in what precision the model runs; threads set on purpose.

On CPU, torch's default of one thread per core oversubscribes badly as soon as decode threads
or several worker processes share the machine, so the count comes from the settings.
"""

from __future__ import annotations

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
