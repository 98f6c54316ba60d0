"""Validate the blind hard set's conversation scripts against the spec.

Checks every script in bench/blind/scripts against ../shared/spec/CONVERSATIONS.md sections 2-3 and the
render_calls.py script format: metadata keys, label keys and values, turn indices in range, courtesy
turns on agent turns, chat `at` times increasing, call pauses consistent with the dead_air label.
It only reports; labels are ground truth written blind and are never changed here.

    python3 bench/blind/validate.py [SCRIPTS_DIR]

Exit status 1 when any script has an error (warnings alone exit 0).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path

COMPLAINT_TYPES = {
    "repair", "facility", "security", "cleaning", "greening", "parking", "fees", "noise", "neighbor",
    "renovation", "staff_attitude", "inquiry", "praise",
}
SCRIPT_ITEMS = {"greeting", "identity_check", "restate", "commitment", "ownership", "closing", "farewell"}
EMOTIONS = {"calm", "dissatisfied", "angry"}
LABEL_KEYS = {
    "complaint_type", "script", "courtesy_violation_turns", "customer_emotion", "escalation_risk", "dead_air",
}
LAYOUTS = {"stereo_agent_left", "stereo_agent_right", "mono"}
META = ["id", "channel", "agent_id", "agent_name", "team", "site", "started_at"]
# The TTS voice reads Chinese characters, digits and Chinese punctuation; Latin letters beyond a short
# word such as "App" are read letter by letter or dropped, which would make the reference text wrong.
LATIN = re.compile(r"[A-Za-z]{4,}")
DEAD_AIR_S = 10.0  # spec section 3: a silence of 10 s or more in the middle of a call


def check(path: Path) -> tuple[list[str], list[str]]:
    """Return (errors, warnings) for one script."""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        conv = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"not readable JSON: {exc}"], []
    for key in [*META, "turns", "labels"]:
        if key not in conv:
            errors.append(f"missing key {key!r}")
    if errors:
        return errors, warnings
    if conv["id"] != path.stem:
        errors.append(f"id {conv['id']!r} differs from the file name")
    channel = conv["channel"]
    if channel not in ("call", "chat"):
        errors.append(f"channel {channel!r}")
    if (channel == "call") != conv["id"].startswith("C"):
        errors.append("id prefix does not match the channel (C = call, W = chat)")
    try:
        started = datetime.fromisoformat(conv["started_at"])
        if started.tzinfo is None:
            errors.append("started_at has no UTC offset")
    except ValueError:
        errors.append(f"started_at {conv['started_at']!r} is not ISO 8601")
        started = None
    turns = conv["turns"]
    if not isinstance(turns, list) or not turns:
        return [*errors, "turns is empty or not a list"], warnings
    for i, turn in enumerate(turns):
        if turn.get("role") not in ("agent", "customer"):
            errors.append(f"turn {i}: role {turn.get('role')!r}")
        if not isinstance(turn.get("text"), str) or not turn["text"].strip():
            errors.append(f"turn {i}: empty text")
    if channel == "call":
        _check_call(conv, errors, warnings)
    else:
        _check_chat(conv, started, errors, warnings)
    _check_labels(conv, errors, warnings)
    return errors, warnings


def _check_call(conv: dict, errors: list[str], warnings: list[str]) -> None:
    if conv.get("audio_layout") not in LAYOUTS:
        errors.append(f"audio_layout {conv.get('audio_layout')!r}")
    turns = conv["turns"]
    for i, turn in enumerate(turns):
        if "at" in turn:
            warnings.append(f"turn {i}: call turn carries 'at' (ignored by the renderer)")
        for key in ("pause_before", "overlap"):
            if key in turn and (not isinstance(turn[key], (int, float)) or turn[key] < 0):
                errors.append(f"turn {i}: {key} {turn[key]!r} is not a non-negative number")
        latin = LATIN.search(turn["text"])
        if latin:
            warnings.append(f"turn {i}: Latin word in call text: {latin[0]!r}")
    long_pauses = [
        i for i, t in enumerate(turns) if 0 < i < len(turns) - 1 and float(t.get("pause_before", 0)) >= DEAD_AIR_S
    ]
    dead_air = conv["labels"].get("dead_air")
    if dead_air is True and not long_pauses:
        errors.append("dead_air is true but no mid-call pause_before >= 10 s: the audio would contradict it")
    if dead_air is False and long_pauses:
        errors.append(f"dead_air is false but turns {long_pauses} have pause_before >= 10 s")
    if not 6 <= len(turns) <= 16:
        warnings.append(f"{len(turns)} turns (brief: 6-16)")


def _check_chat(conv: dict, started: datetime | None, errors: list[str], warnings: list[str]) -> None:
    if "audio_layout" in conv:
        warnings.append("chat carries audio_layout (dropped by the renderer)")
    previous = started
    for i, turn in enumerate(conv["turns"]):
        if "at" not in turn:
            errors.append(f"turn {i}: chat message without 'at'")
            continue
        try:
            at = datetime.fromisoformat(turn["at"])
        except ValueError:
            errors.append(f"turn {i}: at {turn['at']!r} is not ISO 8601")
            continue
        if at.tzinfo is None:
            errors.append(f"turn {i}: at has no UTC offset")
            continue
        if previous is not None and at < previous:
            errors.append(f"turn {i}: at {turn['at']} is before the previous time")
        previous = at
        if "pause_before" in turn or "overlap" in turn:
            warnings.append(f"turn {i}: chat message carries call timing keys")
    if conv["labels"].get("dead_air") is not False:
        errors.append("a chat's dead_air must be false")


def _check_labels(conv: dict, errors: list[str], warnings: list[str]) -> None:
    labels = conv["labels"]
    turns = conv["turns"]
    if set(labels) != LABEL_KEYS:
        errors.append(f"label keys differ: missing {sorted(LABEL_KEYS - set(labels))}, extra "
                      f"{sorted(set(labels) - LABEL_KEYS)}")
    if labels.get("complaint_type") not in COMPLAINT_TYPES:
        errors.append(f"complaint_type {labels.get('complaint_type')!r}")
    script = labels.get("script")
    if not isinstance(script, dict) or set(script) != SCRIPT_ITEMS:
        errors.append(f"script keys {sorted(script) if isinstance(script, dict) else script!r}")
    elif not all(isinstance(v, bool) for v in script.values()):
        errors.append("script values must be booleans")
    if labels.get("customer_emotion") not in EMOTIONS:
        errors.append(f"customer_emotion {labels.get('customer_emotion')!r}")
    for key in ("escalation_risk", "dead_air"):
        if not isinstance(labels.get(key), bool):
            errors.append(f"{key} {labels.get(key)!r} is not a boolean")
    courtesy = labels.get("courtesy_violation_turns")
    if not isinstance(courtesy, list):
        errors.append("courtesy_violation_turns is not a list")
        return
    if len(set(courtesy)) != len(courtesy):
        errors.append("courtesy_violation_turns has duplicates")
    for turn in courtesy:
        if not isinstance(turn, int) or isinstance(turn, bool) or not 0 <= turn < len(turns):
            errors.append(f"courtesy turn {turn!r} out of range (0..{len(turns) - 1})")
        elif turns[turn].get("role") != "agent":
            errors.append(f"courtesy turn {turn} is a {turns[turn].get('role')} turn, not an agent turn")
    if courtesy != sorted(courtesy):
        warnings.append("courtesy_violation_turns not sorted")


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "scripts"
    paths = sorted(folder.glob("*.json"))
    bad = 0
    for path in paths:
        errors, warnings = check(path)
        for message in errors:
            print(f"ERROR {path.name}: {message}")
        for message in warnings:
            print(f"warn  {path.name}: {message}")
        bad += bool(errors)
    print(f"{len(paths)} scripts, {bad} with errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
