#!/usr/bin/env python3
"""Judging speed: chat conversations per second through the Analyser (text stage, judges, scorecard), as the
nightly run judges them (``Analyser.pipe``, 32 at a time). Threads are limited to the machine's cores
(default 2, the target machine).

usage: python bench/judging_speed.py [--n 400] [--threads 2]
The chats are the project's own corpus conversations of channel "chat", as chat transcripts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from pipeline.analysis import Analyser
    from pipeline.config import get_settings
    from pipeline.learning.corpus import load_corpus
    from pipeline.schema import ConversationMeta, Transcript, Turn

    settings = get_settings()
    chats = [c for c in load_corpus([settings.corpus_path]) if c.channel == "chat"]
    transcripts = [
        Transcript(meta=ConversationMeta(id=c.id, channel="chat", agent_id="A1", source="corpus"),
                   turns=[Turn(index=i, role=t.role, text=t.text) for i, t in enumerate(c.turns)])
        for c in (chats * (args.n // max(1, len(chats)) + 1))[: args.n]
    ]
    t_load = time.monotonic()
    analyser = Analyser(settings)
    analyser(transcripts[0], "2026-11-22")  # warm-up: first call builds caches
    loaded = time.monotonic() - t_load
    t0 = time.monotonic()
    for _ in analyser.pipe(transcripts, "2026-11-22"):
        pass
    seconds = time.monotonic() - t0
    turns = sum(len(t.turns) for t in transcripts)
    print(f"judges {settings.judges}, {args.threads} threads: {len(transcripts)} chats ({turns} turns) in "
          f"{seconds:.2f} s → {len(transcripts) / seconds:.1f} chats/s (loading {loaded:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
