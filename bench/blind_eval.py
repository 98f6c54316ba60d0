#!/usr/bin/env python3
"""The blind hard set (bench/blind/), measured through the full nightly path, beside dev.

usage: python bench/blind_eval.py [--dev] [--via run|eval] [--out DIR] [--load DIR] [--json]

The blind set is two days, written by two groups of three writers: ``blind`` (2026-11-25, writers 1-3) and
``blind2`` (2026-11-26, writers 4-6, added 2026-12-03). Each is run as its own night; ``blind_all`` scores both
nights' records together against both days' labels (score.py over one folder holding both days' labels and
references). ``blind_all`` is the headline: with twice the conversations, one conversation moves a figure half as
much.

For each set: ``zhijian run`` over the inbox into a fresh SQLite store (audio recognised, chats read, judges,
scorecard, store), ``zhijian export`` of the day, then ``../shared/tools/score.py DAY_DIR EXPORT --json``.
Prints the sets side by side with issue 12's targets and whether each is met. ``--dev`` adds
``../shared/data/dev`` (2026-11-21; about 10 minutes on 2 cores); the blind set alone takes a few minutes.

``--via eval`` is the fallback for when the nightly flow is broken mid-change: ``zhijian eval --results``
runs the same recogniser, judges and scorecard outside the flow and store, and score.py reads its records.
The figures are then labelled as such; the issue's "done when" needs ``--via run``.

``--out DIR`` keeps each set's result records and ``<set>-run.json`` (path, seconds, scores); ``--load DIR``
takes a set's figures from such a file instead of running it again (e.g. blind earlier, dev now).

The blind set is never trained or tuned on (bench/blind/README.md): this script only measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent
SCORE = SHARED / "tools" / "score.py"

SETS = {
    "blind": (ROOT / "bench" / "blind" / "inbox", "2026-11-25"),
    "blind2": (ROOT / "bench" / "blind" / "inbox", "2026-11-26"),
    "dev": (SHARED / "data" / "dev", "2026-11-21"),
}
# sets scored together: their labels, references and result records joined
JOINED = {"blind_all": ("blind", "blind2")}

# (metric, target, higher is better); None = reported, no target in issue 12
METRICS: list[tuple[str, float | None, bool]] = [
    ("coverage", None, True),
    ("courtesy_precision", None, True),
    ("courtesy_recall", 0.80, True),
    ("courtesy_f1", 0.85, True),
    ("escalation_f1", 0.90, True),
    ("missed_ownership_f1", 0.80, True),
    ("missed_greeting_f1", None, True),
    ("missed_identity_check_f1", None, True),
    ("missed_restate_f1", None, True),
    ("missed_commitment_f1", None, True),
    ("missed_closing_f1", None, True),
    ("missed_farewell_f1", None, True),
    ("script_missed_macro_f1", 0.85, True),
    ("complaint_acc", 0.90, True),
    ("emotion_macro_f1", 0.80, True),
    ("dead_air_acc", 0.97, True),
    ("call_cer", None, False),
]


def run_nightly(inbox: Path, date: str, work: Path) -> tuple[Path, float]:
    """``zhijian run`` into a fresh store, then ``zhijian export``; returns the export and the run's seconds.

    The data directory is left as configured so the assembled Whisper model is reused; only the store is new.
    """
    db = f"sqlite:///{work / 'store.db'}"
    t0 = time.monotonic()
    done = subprocess.run([str(BIN / "zhijian"), "run", "--inbox", str(inbox), "--date", date, "--db", db],
                          capture_output=True, text=True)
    seconds = time.monotonic() - t0
    # the run's own summary (agent table, counts) is not the benchmark's output: show it only when it failed
    if done.returncode != 0 and "E044" in done.stdout + done.stderr:
        # In a shared tree a migration may land while a long run is going: the run stored every conversation
        # with the code it started with, and only reopening the store at the end meets the newer schema.
        # Bring the store up to it, as an operator would, and export what the run stored.
        print("zhijian run: a newer migration landed during the run (E044); `zhijian db upgrade`, then export",
              file=sys.stderr)
        subprocess.run([str(BIN / "zhijian"), "db", "upgrade", "--db", db], check=True, capture_output=True)
    elif done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"zhijian run failed ({done.returncode}); try --via eval")
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed")]
    for line in failed:
        print(line, file=sys.stderr)
    export = work / "export.jsonl"
    with export.open("w", encoding="utf-8") as f:
        subprocess.run([str(BIN / "zhijian"), "export", "--date", date, "--db", db], check=True, stdout=f)
    return export, seconds


def run_eval(inbox: Path, date: str, work: Path) -> tuple[Path, float]:
    """The fallback: ``zhijian eval --results`` (same recogniser, judges and scorecard, no flow, no store)."""
    results = work / "eval-results.jsonl"
    labels = inbox / date / "labels.jsonl"
    t0 = time.monotonic()
    subprocess.run([str(BIN / "zhijian"), "eval", "--inbox", str(inbox), "--date", date, "--labels", str(labels),
                    "--results", str(results), "--json"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return results, time.monotonic() - t0


def score(day: Path, results: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(SCORE), str(day), str(results), "--json"],
                         check=True, capture_output=True, text=True).stdout
    parsed: dict[str, float] = json.loads(out)
    return parsed


def score_joined(parts: list[tuple[Path, bytes]], work: Path) -> dict[str, float]:
    """score.py over several days at once: one folder with every day's labels and references, and every
    night's result records (as exported) in one file (ids are unique across the days)."""
    day = work / "joined"
    day.mkdir()
    for name in ("labels.jsonl", "refs.jsonl"):
        with (day / name).open("w", encoding="utf-8") as f:
            for part, _ in parts:
                f.write((part / name).read_text(encoding="utf-8"))
    results = work / "joined-results.jsonl"
    with results.open("w", encoding="utf-8") as f:
        for _, records in parts:
            f.write(records.decode("utf-8"))
    return score(day, results)


def met(value: float | None, target: float | None, higher: bool) -> str:
    if target is None or value is None:
        return ""
    ok = value >= target if higher else value <= target
    return "met" if ok else "NOT met"


def table(scores: dict[str, dict[str, float]], seconds: dict[str, float], via: str) -> str:
    names = list(scores)
    head = f"{'metric':<26}{'target':>9}" + "".join(f"{name:>10}{'':>9}" for name in names)
    lines = [f"path: zhijian {via}" + ("" if via == "run" else " (fallback, not the nightly flow)"), head,
             "-" * len(head)]
    for metric, target, higher in METRICS:
        shown = "" if target is None else ("≥ " if higher else "≤ ") + f"{target:.2f}"
        row = f"{metric:<26}{shown:>9}"
        for name in names:
            value = scores[name].get(metric)
            row += f"{'—' if value is None else f'{value:.3f}':>10}{met(value, target, higher):>9}"
        lines.append(row)
    lines.append("-" * len(head))
    lines.append(f"{'wall seconds':<35}" + "".join(f"{seconds[name]:>10.0f}{'':>9}" for name in names))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", action="store_true", help="also run dev (../shared/data/dev, 2026-11-21)")
    ap.add_argument("--via", choices=["run", "eval"], default="run",
                    help="run = zhijian run + export (the nightly path); eval = zhijian eval --results (fallback)")
    ap.add_argument("--out", type=Path, help="keep each set's result records and <set>-run.json in this folder")
    ap.add_argument("--load", type=Path, help="take a set's figures from <set>-run.json here instead of running it")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    names = ["blind", "blind2", "dev"] if args.dev else ["blind", "blind2"]
    scores: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    # each set's records as exported, for the joined score: held in memory (a night's are a few MB), so the
    # only copy on disk is the one --out asks for
    records_of: dict[str, bytes] = {}
    for name in names:
        inbox, date = SETS[name]
        day = inbox / date
        saved = args.load / f"{name}-run.json" if args.load is not None else None
        if saved is not None and saved.exists():
            record = json.loads(saved.read_text())
            if record["via"] != args.via:
                print(f"{name}: {saved} was measured via {record['via']}, not {args.via}", file=sys.stderr)
                return 2
            scores[name], seconds[name] = record["scores"], record["seconds"]
            if (args.load / f"{name}-results.jsonl").exists():
                records_of[name] = (args.load / f"{name}-results.jsonl").read_bytes()
            print(f"{name}: loaded from {saved}", file=sys.stderr)
            continue
        if not (day / "labels.jsonl").exists():
            print(f"{name}: no {day / 'labels.jsonl'}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix=f"zj-{name}-") as tmp:
            work = Path(tmp)
            runner = run_nightly if args.via == "run" else run_eval
            results, seconds[name] = runner(inbox, date, work)
            scores[name] = score(day, results)
            records_of[name] = results.read_bytes()
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{name}-results.jsonl").write_bytes(records_of[name])
                record = {"via": args.via, "date": date, "seconds": round(seconds[name], 1), "scores": scores[name]}
                (args.out / f"{name}-run.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: done in {seconds[name]:.0f} s", file=sys.stderr)
    for joined, parts in JOINED.items():
        if all(p in records_of for p in parts):
            with tempfile.TemporaryDirectory(prefix=f"zj-{joined}-") as tmp:
                scores[joined] = score_joined([(SETS[p][0] / SETS[p][1], records_of[p]) for p in parts], Path(tmp))
            seconds[joined] = sum(seconds[p] for p in parts)
    # the headline first: the joined blind set, then its days, then dev
    order = [n for n in (*JOINED, *names) if n in scores]
    scores, seconds = {n: scores[n] for n in order}, {n: seconds[n] for n in order}
    if args.json:
        print(json.dumps({"via": args.via, "seconds": seconds, "scores": scores}, ensure_ascii=False))
    else:
        print(table(scores, seconds, args.via))
    return 0


if __name__ == "__main__":
    sys.exit(main())
