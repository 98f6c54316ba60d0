#!/usr/bin/env python3
"""Time the nightly run on the dev calls against bare faster-whisper, in the same run, on the same machine.

usage: python bench/nightly_vs_bare.py [DAY_DIR]   (default ../shared/data/dev/2026-11-21)

Runs ``../shared/tools/bare_asr.py`` (plain faster-whisper, same Whisper base model, each channel on its
own) and ``zhijian run`` over the same day's calls (chats removed, so both do the same work), then prints
both wall times and their ratio, and scores both with ``../shared/tools/score.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent


def main() -> int:
    day = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED / "data" / "dev" / "2026-11-21"
    from pipeline.asr import PYPI_MODEL, assemble_pypi_model
    from pipeline.config import get_settings

    model_dir = assemble_pypi_model(get_settings().model_cache)
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        calls_only = inbox / day.name
        shutil.copytree(day / "calls", calls_only / "calls")
        for name in ("labels.jsonl", "refs.jsonl"):
            if (day / name).exists():
                shutil.copy(day / name, calls_only / name)
        bare_out = Path(tmp) / "bare.jsonl"
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(SHARED / "tools" / "bare_asr.py"), str(model_dir), str(calls_only),
                        str(bare_out)], check=True, stdout=subprocess.DEVNULL)
        bare_s = time.monotonic() - t0

        env = dict(os.environ, ZHIJIAN_DATA_DIR=str(Path(tmp) / "data"))
        db = f"sqlite:///{tmp}/bench.db"
        t0 = time.monotonic()
        subprocess.run([str(BIN / "zhijian"), "run", "--inbox", str(inbox), "--date", day.name, "--db", db],
                       check=True, env=env, stderr=subprocess.DEVNULL)
        ours_s = time.monotonic() - t0
        ours_out = Path(tmp) / "ours.jsonl"
        with ours_out.open("w") as f:
            subprocess.run([str(BIN / "zhijian"), "export", "--date", day.name, "--db", db], check=True, env=env,
                           stdout=f)

        def score(path: Path) -> dict[str, float]:
            out = subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(day), str(path), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        b, o = score(bare_out), score(ours_out)
    print(f"model: {PYPI_MODEL} ({model_dir})")
    print(f"bare faster-whisper: {bare_s:.1f} s   call_cer {b.get('call_cer')}  role_acc {b.get('role_acc')}")
    print(f"zhijian run:         {ours_s:.1f} s   call_cer {o.get('call_cer')}  role_acc {o.get('role_acc')}")
    print(f"ratio zhijian/bare: {ours_s / bare_s:.3f}  (target <= 1.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
