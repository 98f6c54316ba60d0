#!/usr/bin/env python3
"""The night on Dask workers, scaled: the same day run with each worker count on this machine, one after the
other, each a real ``zhijian run --workers N`` into a fresh database; prints wall, throughput (audio hours
per wall hour, conversations per second) and whether every run exported the same result records.

usage: python bench/scale.py [--inbox DIR] [--date YYYY-MM-DD] [--workers 1 2] [--in-process]

Defaults: the dev day (../shared/data/dev, 2026-11-21), 1 and 2 workers. ``--in-process`` adds the night
without Dask (today's default) as a baseline row. The model cache and one Prefect home are shared by the
runs, both made ready before the first timed run (assembling the model and migrating Prefect's database are
install-time costs, not a night's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "dev"
BIN = Path(sys.executable).parent
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".amr"}


def audio_seconds(day: Path) -> float:
    """The day's recorded audio, from each call file's container header (what the night will decode)."""
    import av

    total = 0.0
    for path in sorted((day / "calls").glob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        try:
            with av.open(str(path)) as container:
                total += float(container.duration or 0) / 1e6
        except (av.error.FFmpegError, OSError):  # a broken recording: the night records it as a failure
            continue
    return total


def run_night(inbox: Path, date: str, workers: int, work: Path, prefect_home: Path) -> dict[str, object]:
    """One ``zhijian run`` (``workers`` 0: in-process); its wall, summary counts and exported records."""
    label = f"w{workers}"
    db = f"sqlite:///{work / (label + '.db')}"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "ZHIJIAN_DASK_ADDRESS")}
    env["PREFECT_HOME"] = str(prefect_home)
    cmd = [str(BIN / "zhijian"), "run", "--inbox", str(inbox), "--date", date, "--db", db]
    if workers:
        cmd += ["--workers", str(workers)]
    log = work / f"{label}.log"
    t0 = time.monotonic()
    with log.open("wb") as out:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {rc}; its output: {log}\n{log.read_text()[-2000:]}")
    exported = subprocess.run([str(BIN / "zhijian"), "export", "--date", date, "--db", db], env=env, check=True,
                              capture_output=True, text=True).stdout
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    with engine.connect() as c:
        counts = json.loads(c.execute(text("SELECT counts FROM runs ORDER BY id DESC LIMIT 1")).scalar_one())
    engine.dispose()
    return {"workers": workers, "wall": wall, "night": float(counts["seconds"]), "counts": counts,
            "records": sorted(exported.splitlines())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inbox", type=Path, default=DEV, help="inbox root (default: ../shared/data/dev)")
    p.add_argument("--date", default="2026-11-21", help="the day's folder under the inbox")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts to run (1 2)")
    p.add_argument("--in-process", action="store_true", help="also run the night without Dask")
    p.add_argument("--keep", type=Path, help="keep the databases and logs in this folder")
    args = p.parse_args()
    day = args.inbox / args.date
    if not day.is_dir():
        raise SystemExit(f"no such day folder: {day}")
    audio_h = audio_seconds(day) / 3600

    from pipeline.asr import assemble_pypi_model
    from pipeline.config import get_settings

    assemble_pypi_model(get_settings().model_cache)  # once, before any timed run
    plan = ([0] if args.in_process else []) + args.workers
    with tempfile.TemporaryDirectory(prefix="zhijian-scale-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prefect_home = work / "prefect"
        subprocess.run([str(BIN / "prefect"), "server", "database", "upgrade", "-y"], check=True,
                       env=dict(os.environ, PREFECT_HOME=str(prefect_home)), capture_output=True)
        runs = []
        for n in plan:
            print(f"running {'in-process' if n == 0 else f'{n} Dask worker(s)'} ...", file=sys.stderr, flush=True)
            runs.append(run_night(args.inbox, args.date, n, work, prefect_home))
    first = runs[0]
    counts = first["counts"]
    assert isinstance(counts, dict)
    print(f"day {day}: {counts['conversations']} conversations ({counts['calls']} calls, {counts['chats']} chats), "
          f"{audio_h * 60:.1f} min of call audio; {os.cpu_count()} cores; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'run':<14} {'wall s':>8} {'night s':>8} {'audio h / wall h':>17} {'conv/s':>7} {'speed-up':>9} "
          f"{'analysed':>9} {'failed':>7}  results")
    base = next((r for r in runs if r["workers"] == 1), first)
    for r in runs:
        wall = float(r["wall"])  # type: ignore[arg-type]
        c = r["counts"]
        assert isinstance(c, dict)
        name = "in-process" if r["workers"] == 0 else f"{r['workers']} worker" + ("s" if r["workers"] != 1 else "")
        same = "same as first" if r["records"] == first["records"] else "DIFFERENT from first"
        print(f"{name:<14} {wall:>8.1f} {float(r['night']):>8.1f} {audio_h / (wall / 3600):>17.2f} "  # type: ignore[arg-type]
              f"{int(c['conversations']) / wall:>7.3f} {float(base['wall']) / wall:>8.2f}x "  # type: ignore[arg-type]
              f"{c['analysed']:>9} {c['failed']:>7}  {same}")
    print("wall: the whole `zhijian run` (Prefect API, cluster start, model loads, the night); night s: the flow's "
          "own seconds (runs table); speed-up against 1 worker")
    return 0 if all(r["records"] == first["records"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
