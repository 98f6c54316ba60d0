#!/usr/bin/env python3
"""Check training-corpus files against FORMAT.md: usage: validate.py FILE.jsonl..."""
from __future__ import annotations

import json
import sys
from collections import Counter

TYPES = {"repair", "facility", "security", "cleaning", "greening", "parking", "fees", "noise", "neighbor",
         "renovation", "staff_attitude", "inquiry", "praise"}
ITEMS = ["greeting", "identity_check", "restate", "commitment", "ownership", "closing", "farewell"]
TAGS = {"greeting", "identity_check", "restate", "commitment", "closing", "farewell", "ownership_violation"}


def check(conv: dict) -> list[str]:
    errs: list[str] = []
    turns, lab = conv["turns"], conv["labels"]
    if lab["complaint_type"] not in TYPES:
        errs.append(f"bad complaint_type {lab['complaint_type']}")
    if lab["customer_emotion"] not in {"calm", "dissatisfied", "angry"}:
        errs.append("bad customer_emotion")
    tagged: set[str] = set()
    rude, esc = [], False
    for i, t in enumerate(turns):
        if t["role"] not in {"agent", "customer"} or not t.get("text"):
            errs.append(f"turn {i}: bad role or empty text")
        bad = set(t.get("items", [])) - TAGS
        if bad:
            errs.append(f"turn {i}: unknown items {bad}")
        if t["role"] == "customer" and (t.get("items") or t.get("courtesy_violation")):
            errs.append(f"turn {i}: customer turn with agent tags")
        tagged |= set(t.get("items", []))
        if t.get("courtesy_violation"):
            rude.append(i)
        esc |= bool(t.get("escalation"))
    for it in ITEMS:
        want = "ownership_violation" not in tagged if it == "ownership" else it in tagged
        if lab["script"][it] != want:
            errs.append(f"script.{it}={lab['script'][it]} but tags say {want}")
    if sorted(lab["courtesy_violation_turns"]) != rude:
        errs.append(f"courtesy_violation_turns {lab['courtesy_violation_turns']} != tagged {rude}")
    if lab["escalation_risk"] != esc:
        errs.append(f"escalation_risk {lab['escalation_risk']} != tagged {esc}")
    return errs


def main() -> int:
    bad = 0
    types: Counter[str] = Counter()
    ids: set[str] = set()
    for path in sys.argv[1:]:
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                conv = json.loads(line)
                errs = check(conv)
            except (KeyError, TypeError, ValueError) as e:
                errs = [f"unreadable: {e!r}"]
                conv = {}
            if conv.get("id") in ids:
                errs.append("duplicate id")
            ids.add(conv.get("id", ""))
            types[conv.get("labels", {}).get("complaint_type", "?")] += 1
            for e in errs:
                bad += 1
                print(f"{path}:{n} {conv.get('id')}: {e}")
    print(f"{len(ids)} conversations, {bad} problems; types: {dict(types)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
