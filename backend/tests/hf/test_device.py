"""Device and dtype choice: training and serving differ on GPUs without bf16, agree on CPU."""

from __future__ import annotations

import pytest
import torch

from app.core.errors import ModelUnavailable
from app.hf.device import resolve_device, serving_dtype, training_dtype


def test_a_cpu_computes_in_fp32_for_training_and_serving() -> None:
    cpu = torch.device("cpu")
    assert training_dtype(cpu) is torch.float32
    assert serving_dtype("auto", cpu) is torch.float32


@pytest.mark.parametrize(
    ("setting", "dtype"),
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)],
)
def test_a_named_serving_dtype_is_taken_as_given(setting: str, dtype: torch.dtype) -> None:
    assert serving_dtype(setting, torch.device("cpu")) is dtype


def test_device_settings_are_checked() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    with pytest.raises(ModelUnavailable, match="not a device name"):
        resolve_device("toaster")
