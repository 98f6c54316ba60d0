#!/usr/bin/env python3
"""Time the nightly run on the dev calls against bare faster-whisper, in the same run, on the same machine;
say where the night's time goes and how much memory it takes.

usage: python bench/nightly_vs_bare.py [DAY_DIR] [--no-bare]   (default ../shared/data/dev/2026-11-21)

Runs ``../shared/tools/bare_asr.py`` (plain faster-whisper, same Whisper base model, int8, 2 threads, beam 5,
each channel on its own) and ``zhijian run`` over the same day's calls (chats removed, so both do the same
work), then prints both wall times and their ratio (target <= 0.8), scores both with
``../shared/tools/score.py`` (call_cer: the night's must be equal or better), prints the night's time per
stage and the peak memory (RSS) of each side's process tree, sampled every 0.2 s.

The night runs as ``zhijian run -v`` inside a child of this script that times the stages the pipeline does
not time itself: the text stage (spaCy + jieba), the judges, the store, the start of Prefect's API. The
recognition stages (decode, VAD, recognition, mono speaker labelling, model load) are timed by
``pipeline.asr`` itself, which logs them per group of calls (``asr stages:``), wherever the group ran.
Judging runs on its own thread while the next calls are recognised, and the next call is decoded and its
voices found ("ahead") while one is recognised, so stages overlap; "rest" is the night's wall minus the
stages on the recognition thread and the store, i.e. what judging and decoding did not hide plus process
start, imports, Prefect's flow and task overhead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEV_DAY = SHARED / "data" / "dev" / "2026-11-21"
STARTED = time.perf_counter()
ASR_LINE = re.compile(r"asr stages: calls=(\d+) seconds=([\d.]+) (.*)$")


class PeakRss(threading.Thread):
    """Peak resident memory of a process and all its descendants (summed: shared pages count twice, so
    this is an upper bound), and of the largest single process, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_tree = self.peak_one = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    sizes.append(p.memory_info().rss)
            if sizes:
                self.peak_tree = max(self.peak_tree, sum(sizes))
                self.peak_one = max(self.peak_one, max(sizes))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def timed_run(cmd: list[str], **kw: Any) -> tuple[float, PeakRss]:
    """Run ``cmd`` to the end; its wall seconds and memory sampler. Raises CalledProcessError."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, **kw)
    rss = PeakRss(proc.pid)
    rss.start()
    rc = proc.wait()
    wall = time.monotonic() - t0
    rss.stop()
    if rc:
        raise subprocess.CalledProcessError(rc, cmd)
    return wall, rss


def calls_only(day: Path, tmp: Path) -> Path:
    """An inbox holding only the day's calls (and their labels), so the night and bare do the same work."""
    inbox = tmp / "inbox"
    target = inbox / day.name
    shutil.copytree(day / "calls", target / "calls")
    for name in ("labels.jsonl", "refs.jsonl"):
        if (day / name).exists():
            shutil.copy(day / name, target / name)
    return inbox


def warm_up(env: dict[str, str], tmp: Path) -> None:
    """A night over an empty day first (not timed), as every night after the first finds things: Prefect's
    database created and migrated (minutes on a loaded machine), the model assembled."""
    from pipeline.asr import assemble_pypi_model

    assemble_pypi_model(Path(env["ZHIJIAN_DATA_DIR"]) / "models")
    empty = tmp / "empty-inbox"
    (empty / "2000-01-01").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--inbox", str(empty), "--date", "2000-01-01",
                    "--db", f"sqlite:///{tmp}/warm-up.db"], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_night(inbox: Path, day: str, tmp: Path, env: dict[str, str] | None = None,
              extra: Sequence[str] = ()) -> dict[str, Any]:
    """``zhijian run`` over the inbox's day in a child that times the stages; wall, memory, stages.
    ``extra``: more ``zhijian run`` options (e.g. ``--workers 1``)."""
    stages_path, log_path = tmp / "stages.json", tmp / "night.log"
    env = dict(os.environ if env is None else env, ZHIJIAN_DATA_DIR=str(tmp / "data"),
               PREFECT_HOME=str(tmp / "prefect"))
    warm_up(env, tmp)
    db = f"sqlite:///{tmp}/bench.db"
    with log_path.open("w") as log:
        try:
            wall, rss = timed_run([sys.executable, __file__, "--night-child", str(stages_path), "run", "--inbox",
                                   str(inbox), "--date", day, "--db", db, "-v", *extra], env=env, stdout=log,
                                  stderr=log)
        except subprocess.CalledProcessError:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
    child = json.loads(stages_path.read_text())
    asr: Counter[str] = Counter()
    calls = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if m := ASR_LINE.search(line):
            calls += int(m.group(1))
            for kv in m.group(3).split():
                k, v = kv.split("=")
                asr[k] += float(v)
    return {"wall": wall, "rss": rss, "child": child, "asr": asr, "calls": calls, "db": db, "env": env}


def export(night: dict[str, Any], day: str, out: Path) -> None:
    with out.open("w") as f:
        subprocess.run([sys.executable, "-m", "pipeline.cli", "export", "--date", day, "--db", night["db"]],
                       check=True, env=night["env"], stdout=f, cwd=ROOT)


def score(day: Path, path: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(day), str(path), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def stage_table(night: dict[str, Any]) -> list[tuple[str, float]]:
    asr, child = night["asr"], night["child"]
    rows = [
        ("ahead: decode (PyAV, resample to 16 kHz)", asr.get("decode", 0.0)),
        ("ahead: VAD (Silero + crosstalk gate)", asr.get("vad", 0.0)),
        ("ASR model load", asr.get("model_load", 0.0)),
        ("recognition (features, encode, beam search, word times)", asr.get("recognition", 0.0)),
        ("mono speaker labelling (voice features + roles)", asr.get("mono_speakers", 0.0)),
        ("judging: text stage (spaCy + jieba)", child.get("text", 0.0)),
        ("judging: judges + scorecard", max(0.0, child.get("judging", 0.0) - child.get("text", 0.0))),
        ("store (SQLite, one transaction per conversation)", child.get("store", 0.0)),
        ("Prefect ephemeral API start", child.get("prefect_api", 0.0)),
        ("imports before the CLI starts (pipeline, numpy, pydantic)", child.get("imports", 0.0)),
        ("judging: judges' models load (once per process)", child.get("judge_load", 0.0)),
    ]
    serial = sum(v for k, v in rows if not k.startswith(("judging", "ahead")))
    rows.append(("rest: Prefect import, flow and task overhead, judging and decoding not hidden",
                 night["wall"] - serial))
    return rows


# -- the night's child: time what the pipeline does not time itself, then run the CLI --------------------


def night_child(stages_path: Path, argv: list[str]) -> None:
    import atexit

    lock = threading.Lock()
    spent: Counter[str] = Counter()

    def wrap(owner: Any, name: str, stage: str) -> None:
        fn = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with lock:
                    spent[stage] += time.perf_counter() - t0

        setattr(owner, name, timed)

    from pipeline import analysis, cli, text
    from pipeline.store import Store

    spent["imports"] = time.perf_counter() - STARTED
    wrap(analysis.Analyser, "__init__", "judge_load")
    wrap(text, "prepare", "text")
    wrap(analysis.Analyser, "_analyse", "judging")
    wrap(Store, "save_analysis", "store")
    wrap(Store, "save_failure", "store")
    wrap(cli, "_start_ephemeral_api", "prefect_api")
    atexit.register(lambda: stages_path.write_text(json.dumps(spent)))
    sys.argv = ["zhijian", *argv]
    cli.app()


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--night-child":
        sys.path.insert(0, str(ROOT))
        night_child(Path(sys.argv[2]), sys.argv[3:])
        return 0
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_bare = "--no-bare" not in sys.argv
    day = Path(args[0]) if args else DEV_DAY
    sys.path.insert(0, str(ROOT))
    from pipeline.asr import PYPI_MODEL, assemble_pypi_model
    from pipeline.config import get_settings

    settings = get_settings()
    model_dir = assemble_pypi_model(settings.model_cache)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        inbox = calls_only(day, tmp)
        bare_out, ours_out = tmp / "bare.jsonl", tmp / "ours.jsonl"
        if with_bare:
            bare_s, bare_rss = timed_run([sys.executable, str(SHARED / "tools" / "bare_asr.py"), str(model_dir),
                                          str(inbox / day.name), str(bare_out)], stdout=subprocess.DEVNULL)
        night = run_night(inbox, day.name, tmp)
        export(night, day.name, ours_out)
        b = score(day, bare_out) if with_bare else {}
        o = score(day, ours_out)
    gib = 1 << 30
    cfg = settings.asr
    print(f"model: {PYPI_MODEL} ({model_dir}); night: beam {cfg.beam_size}, batch {cfg.batch_size} windows, "
          f"{cfg.calls_per_batch} calls per group, cpu_threads {cfg.cpu_threads or os.cpu_count()}; "
          f"{night['calls']} calls")
    if with_bare:
        print(f"bare faster-whisper: {bare_s:7.1f} s   call_cer {b.get('call_cer')}  role_cer {b.get('role_cer')}  "
              f"role_acc {b.get('role_acc')}  peak RSS {bare_rss.peak_tree / gib:.2f} GiB")
    print(f"zhijian run:         {night['wall']:7.1f} s   call_cer {o.get('call_cer')}  role_cer {o.get('role_cer')}  "
          f"role_acc {o.get('role_acc')}  peak RSS {night['rss'].peak_tree / gib:.2f} GiB (process tree; largest "
          f"process {night['rss'].peak_one / gib:.2f} GiB)")
    if with_bare:
        ratio = night["wall"] / bare_s
        cer_ok = (o.get("call_cer") or 1.0) <= (b.get("call_cer") or 0.0)
        print(f"ratio zhijian/bare: {ratio:.3f}  (target <= 0.8: {'met' if ratio <= 0.8 else 'NOT met'}); "
              f"call_cer {'equal or better' if cer_ok else 'WORSE'} than bare's")
    print("the night's time per stage (seconds; judging overlaps recognition):")
    for name, seconds in stage_table(night):
        print(f"  {name:62s} {seconds:8.1f}  {100 * seconds / night['wall']:5.1f} %")
    print(f"  {'night wall':62s} {night['wall']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
