"""Where the learned judge runs (issue 11): ``judge_device`` auto | cpu | cuda. On this machine (no GPU) auto is
the CPU, an explicit cuda is a coded start-up error (E077) rather than a crash, and bench/gpu_check.sh stops
at once with "no CUDA device" and a non-zero status. The GPU path itself runs only on a machine with one
(bench/gpu_check.sh)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.judges.base import get_judge
from pipeline.learning.model import TurnInput, load_cached, resolve_device

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECK = ROOT / "bench" / "gpu_check.sh"
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu(settings: Settings) -> None:
    assert settings.judge_device == "auto"
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@no_gpu
def test_cuda_asked_for_without_one_is_a_coded_error() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda")
    assert err.value.code == "E077"
    assert "ZHIJIAN_JUDGE_DEVICE" in str(err.value) and "cuda" in str(err.value)


@no_gpu
def test_the_learned_judge_refuses_cuda_without_one_before_loading(settings: Settings) -> None:
    with pytest.raises(ConfigError) as err:
        get_judge("learned", settings.model_copy(update={"judge_device": "cuda"}))
    assert err.value.code == "E077"


def test_the_setting_is_read_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIJIAN_JUDGE_DEVICE", "cuda")
    assert Settings().judge_device == "cuda"
    monkeypatch.setenv("ZHIJIAN_JUDGE_DEVICE", "gpu")
    with pytest.raises(ValidationError):
        Settings()


def test_a_batch_moves_whole_and_stays_put_on_its_own_device(settings: Settings) -> None:
    model = load_cached(settings.judge_model_path.resolve(), resolve_device("cpu"))
    assert model.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for m in model.members for p in m.parameters())
    none = [0.0] * model.meta.net.rule_features
    batch = model.batch([[TurnInput("agent", "您好，物业服务中心", none), TurnInput("customer", "电梯坏了", none)]])
    assert batch.to(torch.device("cpu")) is batch  # the CPU path copies nothing
    # the meta device needs no hardware: every tensor of the batch must follow, or the GPU would get a CPU one
    moved = batch.to(torch.device("meta"))
    tensors = [getattr(moved, f.name) for f in dataclasses.fields(moved) if f.name != "encoded"]
    tensors += list(moved.encoded.values())
    assert len(tensors) == 16 and {t.device.type for t in tensors} == {"meta"}


def _gpu_check(path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIJIAN_PYTHON": sys.executable}  # the interpreter running the tests, wherever its venv is
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(GPU_CHECK)], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_gpu_check_says_no_cuda_device_without_a_driver() -> None:
    run = _gpu_check()
    assert run.returncode == 2
    assert "no CUDA device" in run.stderr and "nvidia-smi" in run.stderr


@no_gpu
def test_gpu_check_says_no_cuda_device_when_torch_sees_none(tmp_path: Path) -> None:
    # a driver that lists a GPU torch cannot use (as in a container without the device): the script must get
    # past nvidia-smi and stop at torch's own answer, before any work
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "Some GPU, 81920 MiB, 999.0"\n')
    fake.chmod(0o755)
    run = _gpu_check(tmp_path)
    assert run.returncode == 2
    assert "GPU: Some GPU" in run.stdout
    assert "no CUDA device: torch" in run.stderr
