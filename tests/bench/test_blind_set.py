"""The blind hard set stays what bench/blind/README.md says it is: scripts that match the spec, an inbox
rendered from exactly those scripts (labels never drift from them), small enough for the repository; and
bench/blind_eval.py's table judges each target the right way round. Nothing here runs the judge: the set
is measured by bench/blind_eval.py, never fitted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
BLIND = ROOT / "bench" / "blind"
DAY = BLIND / "inbox" / "2026-11-25"  # writers 1-3
DAYS = (DAY, BLIND / "inbox" / "2026-11-26")  # and writers 4-6: one night each
AUDIO_EXT = (".wav", ".flac", ".mp3")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _scripts() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((BLIND / "scripts").glob("*.json"))}


def test_every_script_matches_the_spec() -> None:
    validate = _load("blind_validate", BLIND / "validate.py")
    scripts = sorted((BLIND / "scripts").glob("*.json"))
    assert len(scripts) >= 120  # issue 12: at least 60 conversations; two groups of writers, 66 each
    problems = {p.name: validate.check(p)[0] for p in scripts}
    assert {name: errors for name, errors in problems.items() if errors} == {}


def test_validator_catches_what_it_is_for(tmp_path: Path) -> None:
    validate = _load("blind_validate", BLIND / "validate.py")
    conv = _scripts()["W20261125-1002"]
    conv["labels"]["courtesy_violation_turns"] = [0, 99]  # a customer turn and one out of range
    conv["turns"][3]["at"] = "2026-11-25T00:00:00+08:00"  # before the message it follows
    conv["labels"]["customer_emotion"] = "furious"
    path = tmp_path / "W20261125-1002.json"
    path.write_text(json.dumps(conv, ensure_ascii=False), encoding="utf-8")
    errors = " | ".join(validate.check(path)[0])
    assert "courtesy turn 0 is a customer turn" in errors
    assert "courtesy turn 99 out of range" in errors
    assert "before the previous time" in errors
    assert "customer_emotion 'furious'" in errors


def _day_of(conv: dict) -> Path:
    return BLIND / "inbox" / conv["started_at"][:10]


def test_inbox_is_rendered_from_exactly_these_scripts() -> None:
    scripts = _scripts()
    assert {_day_of(conv) for conv in scripts.values()} == set(DAYS)
    labels = [json.loads(line) for day in DAYS
              for line in (day / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(labels) == len({x["id"] for x in labels})  # no conversation in two nights
    assert {x["id"]: {k: v for k, v in x.items() if k != "id"} for x in labels} == {
        k: conv["labels"] for k, conv in scripts.items()
    }
    refs: dict[str, list[dict]] = {}
    for day in DAYS:
        for line in (day / "refs.jsonl").read_text(encoding="utf-8").splitlines():
            ref = json.loads(line)
            refs.setdefault(ref["id"], []).append(ref)
    for k, conv in scripts.items():
        day = _day_of(conv)
        if conv["channel"] == "call":
            audio = [p for p in (day / "calls").glob(f"{k}.*") if p.suffix in AUDIO_EXT]
            assert len(audio) == 1, k
            sidecar = json.loads((day / "calls" / f"{k}.json").read_text(encoding="utf-8"))
            assert sidecar["audio_layout"] == conv["audio_layout"]
            assert [(r["role"], r["text"]) for r in refs[k]] == [(t["role"], t["text"]) for t in conv["turns"]]
        else:
            chat = json.loads((day / "chats" / f"{k}.json").read_text(encoding="utf-8"))
            assert [m["text"] for m in chat["messages"]] == [t["text"] for t in conv["turns"]]
            assert k not in refs


def test_inbox_stays_small_enough_for_the_repository() -> None:
    for day in DAYS:  # about 1 MB a call
        total = sum(p.stat().st_size for p in day.rglob("*") if p.is_file())
        assert total < 40 * 1024 * 1024, day


def test_table_marks_targets_the_right_way_round() -> None:
    blind_eval = _load("blind_eval", ROOT / "bench" / "blind_eval.py")
    assert blind_eval.met(0.85, 0.85, True) == "met"
    assert blind_eval.met(0.84, 0.85, True) == "NOT met"
    assert blind_eval.met(0.10, 0.20, False) == "met"
    assert blind_eval.met(0.5, None, True) == ""
    scores = {"blind": {"courtesy_f1": 0.5, "dead_air_acc": 1.0}, "dev": {"courtesy_f1": 0.9, "dead_air_acc": 0.96}}
    text = blind_eval.table(scores, {"blind": 10.0, "dev": 20.0}, "run")
    courtesy = next(line for line in text.splitlines() if line.startswith("courtesy_f1"))
    assert courtesy.split()[2:] == ["0.85", "0.500", "NOT", "met", "0.900", "met"]
    dead_air = next(line for line in text.splitlines() if line.startswith("dead_air_acc"))
    assert dead_air.split()[2:] == ["0.97", "1.000", "met", "0.960", "NOT", "met"]
    assert "—" in next(line for line in text.splitlines() if line.startswith("call_cer"))
