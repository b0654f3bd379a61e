"""Mixed-precision choice per GPU compute capability (capability faked), and the GradScaler that goes with it."""
from __future__ import annotations

import pytest
import torch

from hbac.engine import runtime
from hbac.engine.runtime import amp_dtype, grad_scaler

CUDA = torch.device("cuda")


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend a GPU of a given compute capability is present; is_bf16_supported always says True (as on a T4)."""

    def set_cap(cap: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_cap


@pytest.mark.parametrize("cap,expect", [((7, 5), torch.float16), ((6, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_amp_follows_compute_capability(fake_gpu, cap, expect) -> None:
    fake_gpu(cap)
    assert amp_dtype("auto", CUDA) is expect


def test_explicit_bf16_on_a_t4_falls_back_to_fp16(fake_gpu, caplog) -> None:
    fake_gpu((7, 5))
    with caplog.at_level("WARNING"):
        assert amp_dtype("bf16", CUDA) is torch.float16
    assert "compute capability" in caplog.text
    fake_gpu((8, 6))
    assert amp_dtype("bf16", CUDA) is torch.bfloat16
    assert amp_dtype("fp16", CUDA) is torch.float16


def test_off_and_cpu_mean_fp32(fake_gpu) -> None:
    fake_gpu((9, 0))
    assert amp_dtype("off", CUDA) is None
    assert amp_dtype("auto", torch.device("cpu")) is None


def test_scaler_only_for_fp16() -> None:
    assert grad_scaler(torch.float16).is_enabled() == torch.cuda.is_available()  # GradScaler disables itself without CUDA
    assert not grad_scaler(torch.bfloat16).is_enabled()
    assert not grad_scaler(None).is_enabled()


def test_native_bf16_needs_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not runtime.native_bf16(CUDA)
