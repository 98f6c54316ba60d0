#!/usr/bin/env python3
"""Peak memory of a one-worker night: ``zhijian run`` over the dev day's calls, RSS sampled every 0.2 s.

usage: python bench/night_rss.py [DAY_DIR] [--workers N]
  (default ../shared/data/dev/2026-11-21 and --workers 1: a local Dask cluster of one worker; 0 = the night
  in one process; target <= 3 GB)

Prints the peak of the night's whole process tree (the CLI, Prefect's ephemeral API server, the Dask
scheduler and worker, summed: shared pages count twice, so this is an upper bound) and of its largest process, with
the recogniser's settings that drive memory (``asr.calls_per_batch``, ``asr.batch_size``; set them with
``ZHIJIAN_ASR__CALLS_PER_BATCH`` and ``ZHIJIAN_ASR__BATCH_SIZE``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nightly_vs_bare import DEV_DAY, calls_only, run_night

LIMIT_GB = 3.0


def main() -> int:
    args = sys.argv[1:]
    workers = "1"
    if "--workers" in args:
        at = args.index("--workers")
        workers = args[at + 1]
        del args[at : at + 2]
    day = Path(args[0]) if args else DEV_DAY
    from pipeline.config import get_settings

    cfg = get_settings().asr
    with tempfile.TemporaryDirectory() as t:
        night = run_night(calls_only(day, Path(t)), day.name, Path(t),
                          extra=["--workers", workers] if workers != "0" else [])
    tree, one = night["rss"].peak_tree / 1e9, night["rss"].peak_one / 1e9
    where = f"{workers} Dask worker(s)" if workers != "0" else "one process"
    calls = night["calls"] or "the day's"  # counted from the asr log lines, which a Dask worker keeps
    print(f"night over {calls} calls on {where} in {night['wall']:.1f} s ({cfg.calls_per_batch} calls "
          f"per group, batch {cfg.batch_size} windows, beam {cfg.beam_size})")
    print(f"peak RSS: process tree {tree:.2f} GB, largest process {one:.2f} GB  "
          f"(target <= {LIMIT_GB:g} GB: {'met' if tree <= LIMIT_GB else 'NOT met'})")
    return 0 if tree <= LIMIT_GB else 1


if __name__ == "__main__":
    sys.exit(main())
