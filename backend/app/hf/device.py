"""Which device a Hugging Face model runs on, and in which dtype.

Training and serving choose the dtype differently on purpose: training on a GPU without bf16
computes in fp32, because fp16 without loss scaling under- and overflows; serving on such a GPU
takes fp16, where inference is safe and twice as light. On a CPU both take fp32, as half-precision
matmuls there are slow or unsupported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch


def default_device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def training_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU computes in it natively; fp32 elsewhere (see the module docstring)."""
    import torch

    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if cuda_bf16 else torch.float32


def resolve_device(setting: str) -> torch.device:
    """``auto`` → CUDA, then MPS, then CPU; anything else as given, if it exists here."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ModelUnavailable(f"LOCAL_DEVICE={setting!r} is not a device name.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"LOCAL_DEVICE={setting} but no CUDA GPU is available.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelUnavailable(f"LOCAL_DEVICE={setting} but MPS is not available.")
    return device


def serving_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on GPUs that compute in it, fp16 on other GPUs and MPS, fp32 on CPU;
    otherwise the named one (``float32``, ``bfloat16`` or ``float16``)."""
    import torch

    if setting != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            setting
        ]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
