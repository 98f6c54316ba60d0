#!/usr/bin/env python3
"""CER of `zhijian transcribe` on the real Mandarin speech in ../shared/data/real (fireredasr + magicdata).

usage: python bench/real_cer.py    Text is normalised as ../shared/tools/score.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
sys.path.insert(0, str(ROOT.parent / "shared" / "tools"))

from score import edit_distance, norm  # noqa: E402


def kaldi(folder: Path) -> dict[Path, str]:
    """wav path → reference text from Kaldi-style wav.scp + text."""
    wavs = dict(line.split(maxsplit=1) for line in (folder / "wav.scp").read_text().splitlines() if line.strip())
    refs = {}
    for line in (folder / "text").read_text().splitlines():
        if line.strip():
            utt, text = line.split(maxsplit=1)
            path = Path(wavs[utt].strip())
            if not path.is_absolute():  # wav.scp paths are relative to the set's root, one level up or here
                path = folder / path if (folder / path).exists() else folder.parent / path
            refs[path] = text
    return refs


def main() -> int:
    refs = kaldi(REAL / "fireredasr" / "wav") | kaldi(REAL / "magicdata_cs_speech")
    files = sorted(refs)
    t0 = time.monotonic()
    out = subprocess.run(
        [str(Path(sys.executable).parent / "zhijian"), "transcribe", "--layout", "mono", *map(str, files)],
        capture_output=True,
        text=True,
    ).stdout  # a failed file counts as all deleted
    wall = time.monotonic() - t0
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    missing = set(files) - {Path(r["file"]) for r in records}
    errors = sum(len(norm(refs[p])) for p in missing)  # a file with no output counts as all deleted
    chars = errors
    for rec in records:
        if "error" in rec:
            print(f"failed: {rec['file']}: {rec['message']}")
        hyp = "".join(norm(t["text"]) for t in sorted(rec.get("turns", []), key=lambda t: t["start"]))
        ref = norm(refs[Path(rec["file"])])
        errors += edit_distance(ref, hyp)
        chars += len(ref)
    print(
        f"files {len(files)}  transcribed {len(files) - len(missing)}  CER {errors / chars:.4f}  "
        f"(bare faster-whisper base: 0.106; target <= 0.11)  wall {wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
