#!/usr/bin/env python3
"""Does the learned judge's customer emotion rank real dissatisfied customers first?

The NTCIR-14 STC-3 Chinese customer–helpdesk dialogues (Weibo; ../shared/data/real/stc3_customer_helpdesk,
read in place, never copied) each carry 19 annotators' customer-satisfaction scores S in -2..2. Every dialogue
becomes a chat session (customer → customer, helpdesk → agent, one message per non-empty utterance, @mentions
and #topics# removed) and goes through the same Analyser the nightly run uses. The predicted dissatisfaction is
the exported result record's ``customer_dissatisfaction`` (spec section 4: what queues and integrators rank
by; the learned judge's 1 − P(calm), emotion head with the rules' evidence mixed in); the truth is the
annotators' mean S < 0. Prints ROC AUC, and beside it the AUC of the record's three-level
``customer_emotion`` alone (calm < dissatisfied < angry), to show what the continuous score adds.

usage: python bench/stc3_dissatisfaction.py [--limit N] [--sample 200]   (default: all 3,700 annotated dialogues)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import zipfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STC3 = ROOT.parent / "shared" / "data" / "real" / "stc3_customer_helpdesk"

from pipeline.analysis import Analyser  # noqa: E402
from pipeline.config import get_settings  # noqa: E402
from pipeline.schema import Analysis, ConversationMeta, Transcript, Turn  # noqa: E402

_MENTION = re.compile(r"@[^\s@:：,，。!！?？]{1,30}|#[^#]{1,40}#|\u200b")


def dialogues(sample_only: bool) -> list[dict]:
    if sample_only:
        return json.loads((STC3 / "train_data_cn.first200.json").read_text(encoding="utf-8"))
    with zipfile.ZipFile(STC3 / "data.zip") as z:
        return json.loads(z.read("data/train_data_cn.json").decode("utf-8"))


def to_transcript(d: dict) -> Transcript:
    turns: list[Turn] = []
    for t in d["turns"]:
        role = "customer" if t["sender"] == "customer" else "agent"
        for u in t["utterances"]:
            text = _MENTION.sub(" ", u).strip()
            if text:
                turns.append(Turn(index=len(turns), role=role, text=text))
    meta = ConversationMeta(id=f"STC3-{d['id']}", channel="chat", agent_id="helpdesk", source="stc3",
                            started_at=datetime(2018, 9, 3))
    return Transcript(meta=meta, turns=turns)


_LEVEL = {"calm": 0, "dissatisfied": 1, "angry": 2}


def auc(scores: list[float], truth: list[bool]) -> float:
    """ROC AUC by ranks (ties share their average rank)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(truth)
    neg = len(truth) - pos
    return (sum(r for r, t in zip(ranks, truth, strict=True) if t) - pos * (pos + 1) / 2) / (pos * neg)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--sample", action="store_true", help="only the 200-dialogue sample file")
    args = ap.parse_args()
    data = dialogues(args.sample)
    if args.limit:
        data = data[: args.limit]
    analyser = Analyser(get_settings())
    scores, levels, truth, skipped = [], [], [], 0
    emotions: dict[str, int] = {}
    t0 = time.monotonic()
    kept = []
    for d in data:
        tr = to_transcript(d)
        if any(t.role == "customer" for t in tr.turns):
            kept.append((d, tr))
        else:
            skipped += 1
    for (d, _), analysis in zip(kept, analyser.pipe([tr for _, tr in kept], "2018-09-03"), strict=True):
        if not isinstance(analysis, Analysis):
            raise SystemExit(f"dialogue {d['id']}: {analysis.message}")
        record = analysis.result  # what `zhijian export` writes for this conversation
        if record.customer_dissatisfaction is None:
            raise SystemExit(f"dialogue {d['id']}: the result record has no customer_dissatisfaction")
        s = [a["quality"]["S"] for a in d["annotations"]]
        scores.append(record.customer_dissatisfaction)
        levels.append(float(_LEVEL[record.customer_emotion]))
        truth.append(sum(s) / len(s) < 0)
        emotions[record.customer_emotion] = emotions.get(record.customer_emotion, 0) + 1
    seconds = time.monotonic() - t0
    print(f"dialogues {len(scores)} (skipped {skipped} with no customer text), dissatisfied (mean S<0) "
          f"{sum(truth)}, predicted emotions {emotions}")
    print(f"AUC {auc(scores, truth):.4f}  ({seconds:.1f} s, {len(scores) / seconds:.1f} dialogues/s)")
    print(f"AUC of the three-level customer_emotion alone {auc(levels, truth):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
