#!/usr/bin/env python3
"""The GPU check (issue 11): the dev night with the recogniser and the judge on CUDA, beside bare
faster-whisper on CUDA float16 over the same calls, in the same run. Run it through ``bench/gpu_check.sh``,
which first makes sure there is a GPU at all.

usage: python bench/gpu_check.py [DAY_DIR] [--chats N]      (default ../shared/data/dev/2026-11-21)
       python bench/gpu_check.py --preflight                 (only: can torch and CTranslate2 use CUDA?)

It prints
- the GPU, torch and CTranslate2 versions;
- bare faster-whisper (``../shared/tools/bare_asr.py`` itself, its model made on cuda/float16 instead of
  cpu/int8, nothing else changed): wall, audio seconds per wall second, call_cer;
- ``zhijian run`` over the whole day (calls and chats) with the devices left on ``auto``, and the log lines
  that say where the recogniser and the judge were loaded (the check fails unless both are on CUDA): wall,
  audio seconds per wall second, call_cer, role_acc and the judge's scores (``../shared/tools/score.py``);
- the learned judge alone on the day's chats, on CUDA and on the CPU: chats per second, and how many
  conversations got the same findings on both.

Exit status: 0 done; 2 no CUDA device (torch or CTranslate2 sees none); 3 a CUDA device is there but the
recogniser cannot run on it (cuBLAS / cuDNN libraries); 4 ``auto`` did not put both models on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

# bare_asr.py run as it is, with only its model's device and compute type changed: the baseline stays the
# shared one (beam 5, VAD on, each channel on its own, t2s), so the two walls are comparable
BARE_ON_GPU = """
import runpy, sys
import faster_whisper
made = faster_whisper.WhisperModel
def on_gpu(*args, **kw):
    kw.update(device="cuda", compute_type="float16")
    return made(*args, **kw)
faster_whisper.WhisperModel = on_gpu
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

CUDA_LIBS_HINT = ("CTranslate2 needs cuBLAS 12 and cuDNN 9: pip install nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*' "
                  "into .venv (bench/gpu_check.sh puts the pip packages' lib folders on LD_LIBRARY_PATH)")


def preflight() -> int:
    """torch and CTranslate2 must both see a CUDA device: the judge runs on the one, Whisper on the other."""
    import ctranslate2
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        print(f"no CUDA device: torch {torch.__version__} ({build}) sees no GPU"
              + ("; install a CUDA build of torch" if torch.version.cuda is None else ""), file=sys.stderr)
        return 2
    if ctranslate2.get_cuda_device_count() < 1:
        print(f"no CUDA device: CTranslate2 {ctranslate2.__version__} sees none (a build without CUDA?)",
              file=sys.stderr)
        return 2
    if "float16" not in ctranslate2.get_supported_compute_types("cuda"):
        print(f"CTranslate2 {ctranslate2.__version__} cannot compute float16 on "
              f"{torch.cuda.get_device_name(0)}", file=sys.stderr)
        return 3
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}; "
          f"CTranslate2 {ctranslate2.__version__}, {ctranslate2.get_cuda_device_count()} CUDA device(s)")
    return 0


def whisper_runs_on_gpu(model_dir: Path) -> str | None:
    """None when Whisper decodes a second of silence on cuda/float16, else why not (cuBLAS and cuDNN are
    loaded only when a model first computes, so the preflight cannot see them missing)."""
    import numpy as np
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(str(model_dir), device="cuda", compute_type="float16")
        segments, _ = model.transcribe(np.zeros(16000, dtype=np.float32), language="zh", beam_size=1)
        list(segments)
        del model
    except Exception as e:  # CTranslate2 reports missing libraries as RuntimeError; other failures vary
        return str(e).splitlines()[0]
    return None


def recording_seconds(calls: Path) -> tuple[int, float]:
    import av

    n, total = 0, 0.0
    for side in sorted(calls.glob("*.json")):
        meta = json.loads(side.read_text(encoding="utf-8"))
        audio = next(p for p in calls.glob(meta["id"] + ".*") if p.suffix != ".json")
        with av.open(str(audio)) as c:
            stream = c.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                total += float(stream.duration * stream.time_base)
            else:
                total += (c.duration or 0) / 1_000_000
        n += 1
    return n, total


def score(day: Path, results: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(day), str(results), "--json"],
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def judge_speed(day: Path, n: int) -> tuple[float, float, int, int, float]:
    """chats/s of the learned judge on CUDA and on the CPU over the day's chats (repeated to ``n``), judged 32 at
    a time as the night does; and on how many of the day's chats both devices give the same findings."""
    import torch
    from transformers.utils import logging as hf_logging

    from pipeline.config import get_settings
    from pipeline.ingest import read_chat
    from pipeline.judges.base import judge_many
    from pipeline.judges.learned import LearnedJudge
    from pipeline.judges.rules import RulesJudge
    from pipeline.learning.model import load

    settings = get_settings()
    chats = [read_chat(p) for p in sorted((day / "chats").glob("*.json"))]
    work = (chats * (n // max(1, len(chats)) + 1))[:n]
    rules = RulesJudge(settings)
    hf_logging.disable_progress_bar()  # the encoder is loaded twice here; its progress bars are not results
    rates, found = [], []
    for device in ("cuda", "cpu"):
        judge = LearnedJudge(load(settings.judge_model_path.resolve(), device), rules)
        judge_many(judge, work[:32])  # warm-up: CUDA context, kernels, caches
        t0 = time.monotonic()
        for i in range(0, len(work), 32):
            judge_many(judge, work[i:i + 32])
        if device == "cuda":
            torch.cuda.synchronize()
        rates.append(len(work) / (time.monotonic() - t0))
        found.append(judge_many(judge, chats))

    def verdicts(findings: list[Any]) -> list[tuple[str, Any, list[int]]]:
        return [(f.item, f.value, [e.turn for e in f.evidence]) for f in findings]

    same = sum(verdicts(a) == verdicts(b) for a, b in zip(found[0], found[1], strict=True))
    drift = max((abs(x.confidence - y.confidence) for a, b in zip(found[0], found[1], strict=True)
                 for x, y in zip(a, b, strict=False)), default=0.0)
    return rates[0], rates[1], same, len(chats), drift


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("day", nargs="?", type=Path, default=SHARED / "data" / "dev" / "2026-11-21")
    ap.add_argument("--chats", type=int, default=480, help="chats judged per device for chats/s")
    ap.add_argument("--preflight", action="store_true", help="only check that torch and CTranslate2 see CUDA")
    args = ap.parse_args()
    rc = preflight()
    if rc or args.preflight:
        return rc
    day: Path = args.day.resolve()

    from pipeline.asr import PYPI_MODEL, assemble_pypi_model
    from pipeline.config import get_settings

    model_dir = assemble_pypi_model(get_settings().model_cache)
    why = whisper_runs_on_gpu(model_dir)
    if why:
        print(f"a CUDA device is there but Whisper cannot run on it: {why}\n{CUDA_LIBS_HINT}", file=sys.stderr)
        return 3
    n_calls, audio_s = recording_seconds(day / "calls")
    n_chats = len(list((day / "chats").glob("*.json")))
    print(f"day {day.name}: {n_calls} calls ({audio_s:.1f} s of recordings), {n_chats} chats; model {PYPI_MODEL}")

    with tempfile.TemporaryDirectory(prefix="zhijian-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        inbox = tmp / "inbox"
        shutil.copytree(day, inbox / day.name)
        calls_only = tmp / "calls_only" / day.name
        shutil.copytree(day / "calls", calls_only / "calls")

        bare_out = tmp / "bare.jsonl"
        t0 = time.monotonic()
        bare = subprocess.run([sys.executable, "-c", BARE_ON_GPU, str(SHARED / "tools" / "bare_asr.py"),
                               str(model_dir), str(calls_only), str(bare_out)], capture_output=True, text=True)
        bare_s = time.monotonic() - t0
        if bare.returncode:
            print(f"bare faster-whisper on cuda failed (rc {bare.returncode}):\n{bare.stderr[-3000:]}", file=sys.stderr)
            return 3

        # the night in a data directory of its own (its store and Prefect state), sharing the assembled model
        data = tmp / "data"
        data.mkdir()
        (data / "models").symlink_to(get_settings().model_cache, target_is_directory=True)
        env = dict(os.environ, ZHIJIAN_DATA_DIR=str(data), ZHIJIAN_ASR__DEVICE="auto",
                   ZHIJIAN_ASR__COMPUTE_TYPE="auto", ZHIJIAN_JUDGE_DEVICE="auto")
        db = f"sqlite:///{tmp}/gpu.db"
        log_path = tmp / "night.log"
        t0 = time.monotonic()
        with log_path.open("w") as log:
            night = subprocess.run([str(BIN / "zhijian"), "run", "-v", "--inbox", str(inbox), "--date", day.name,
                                    "--db", db], env=env, stdout=log, stderr=subprocess.STDOUT)
        night_s = time.monotonic() - t0
        night_log = log_path.read_text(encoding="utf-8", errors="replace")
        if night.returncode:
            print(f"zhijian run failed (rc {night.returncode}):\n{night_log[-3000:]}", file=sys.stderr)
            return 1
        asr_line = next(iter(re.findall(r"loaded ASR model .*", night_log)), "(no 'loaded ASR model' line)")
        judge_line = next(iter(re.findall(r"loaded judge model .*", night_log)), "(no 'loaded judge model' line)")
        flow_s = next(iter(re.findall(r"calls recognised, ([\d.]+) s\.", night_log)), "?")
        ours_out = tmp / "ours.jsonl"
        with ours_out.open("w") as f:
            subprocess.run([str(BIN / "zhijian"), "export", "--date", day.name, "--db", db], check=True, env=env,
                           stdout=f)
        b, o = score(day, bare_out), score(day, ours_out)

    cuda_rate, cpu_rate, same, n_judged, drift = judge_speed(day, args.chats)
    import torch

    print(f"recogniser: {asr_line}")
    print(f"judge:      {judge_line}")
    print(f"bare faster-whisper (cuda/float16): {bare_s:7.1f} s  {audio_s / bare_s:7.1f} audio s per wall s  "
          f"call_cer {b.get('call_cer')}  role_acc {b.get('role_acc')}")
    print(f"zhijian run, whole day (auto):      {night_s:7.1f} s  {audio_s / night_s:7.1f} audio s per wall s  "
          f"call_cer {o.get('call_cer')}  role_acc {o.get('role_acc')}")
    print(f"ratio zhijian/bare: {night_s / bare_s:.3f} (the night also reads and judges {n_chats} chats, starts "
          f"Prefect and stores every result; the flow itself took {flow_s} s)")
    keys = ("complaint_acc", "script_item_acc", "script_missed_macro_f1", "courtesy_f1", "emotion_macro_f1",
            "escalation_f1", "dead_air_acc", "role_cer")
    print("night's scores: " + "  ".join(f"{k} {o[k]}" for k in keys if k in o))
    print(f"learned judge, {args.chats} chats 32 at a time: cuda {cuda_rate:.1f} chats/s, cpu "
          f"({torch.get_num_threads()} threads) {cpu_rate:.1f} chats/s; same findings on {same}/{n_judged} of the "
          f"day's chats, largest confidence difference {drift:.4f}")
    on_gpu = "on cuda/float16" in asr_line and judge_line.rstrip().endswith("on cuda")
    if not on_gpu:
        print("auto did not put both the recogniser and the judge on the GPU (see the two lines above)",
              file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
