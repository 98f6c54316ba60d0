"""``pipeline.learning.numerics``: ``zhijian train`` pins the CPU arithmetic before torch is imported, so the same
checkout trains the same bytes on another x86-64 machine (issue 12: a clean clone trained elsewhere gave other
weights). Pinning needs a process of its own (torch is imported in this one), so the command runs as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.learning import numerics

TINY = Path(__file__).parent.parent / "fixtures" / "corpus" / "tiny.jsonl"
ROOT = Path(__file__).resolve().parents[2]


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _train(out: Path, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in numerics.PINNED}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "--corpus", str(TINY), "--epochs", "1", "--members", "1",
         "--out", str(out), "--no-corrections"],
        cwd=ROOT, env={**clean, "ZHIJIAN_DATA_DIR": str(data), **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not _has_avx2(), reason="the pin is AVX2; this CPU has none")
def test_zhijian_train_pins_the_arithmetic(tmp_path: Path) -> None:
    done = _train(tmp_path / "judge", tmp_path / "data")
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((tmp_path / "judge" / "judge.json").read_text(encoding="utf-8"))
    state = meta["training"]["arithmetic"]
    assert numerics.pinned(state), state
    assert "pinned, so `zhijian train` on another x86-64 machine" in (tmp_path / "judge" / "CARD.md").read_text(
        encoding="utf-8")


def test_nothing_is_pinned_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # here torch is imported (as when a test calls `zhijian train` in-process): setting the pin would not reach
    # this process, only its children (a Dask worker's judge would then compute other last bits than this one)
    import torch  # noqa: F401  (imported, as in the test suite or a running night)

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in numerics.PINNED})
    assert not numerics.pin()
    assert not set(numerics.PINNED) & set(os.environ)


def test_an_operators_own_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # a copy of the environment, so what pin() sets does not leak into the other tests' subprocesses
    monkeypatch.setattr(os, "environ", {**{k: v for k, v in os.environ.items() if k not in numerics.PINNED},
                                        "MKL_CBWR": "COMPATIBLE"})
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as before torch is imported (restored after)
    assert numerics.pin()
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert not numerics.pinned({"cpu_capability": "AVX2", "mkl_cbwr": "COMPATIBLE", "onednn_max_cpu_isa": "AVX2"})
