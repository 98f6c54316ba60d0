"""``zhijian eval``: how well the judges agree with human labels (spec section 2), per label.

Measured the way ``tools/score.py`` measures (the positive class of a script item is a *missed* item; courtesy
is per turn, and for calls a labelled turn counts as found when a reported turn overlaps it in time, given the
labelled turns' times in ``refs.jsonl``), and reported in full: precision, recall and F1 for every value of every
label, the complaint-type confusion matrix, and Cohen's kappa between machine and labels for each script item.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS

_SLACK = 0.3  # seconds of tolerance when matching a reported turn to a labelled one (as score.py)


@dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, truth: bool, pred: bool) -> None:
        self.tp += truth and pred
        self.fp += pred and not truth
        self.fn += truth and not pred

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        if self.tp == 0:
            return 1.0 if self.fp == 0 and self.fn == 0 else 0.0
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    @property
    def support(self) -> int:
        return self.tp + self.fn


def cohen_kappa(pairs: Sequence[tuple[Any, Any]]) -> float:
    """Agreement beyond chance between two raters; 1.0 when both always give the same single value."""
    n = len(pairs)
    if not n:
        return float("nan")
    observed = sum(a == b for a, b in pairs) / n
    left: dict[Any, int] = defaultdict(int)
    right: dict[Any, int] = defaultdict(int)
    for a, b in pairs:
        left[a] += 1
        right[b] += 1
    expected = sum(left[k] * right.get(k, 0) for k in left) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


@dataclass
class Report:
    conversations: int
    coverage: float
    complaint: dict[str, PRF]
    complaint_confusion: dict[str, dict[str, int]]  # truth → predicted → count
    complaint_accuracy: float
    script: dict[str, PRF]  # positive class: the item was missed
    script_kappa: dict[str, float]
    courtesy: PRF
    emotion: dict[str, PRF]
    escalation: PRF
    dead_air: PRF
    dead_air_calls: int = 0  # labelled calls, over which dead-air accuracy is counted
    dead_air_accuracy: float = 1.0
    missing: list[str] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """The figures of ``tools/score.py``, same names."""
        out = {
            "coverage": self.coverage,
            "complaint_acc": self.complaint_accuracy,
            **{f"missed_{k}_f1": v.f1 for k, v in self.script.items()},
            "script_missed_macro_f1": sum(v.f1 for v in self.script.values()) / len(self.script),
            "courtesy_precision": self.courtesy.precision,
            "courtesy_recall": self.courtesy.recall,
            "courtesy_f1": self.courtesy.f1 if self.courtesy.tp else 0.0,
            "emotion_macro_f1": sum(v.f1 for v in self.emotion.values()) / len(self.emotion),
            "escalation_f1": self.escalation.f1,
        }
        if self.dead_air_calls:
            out["dead_air_acc"] = self.dead_air_accuracy
        return {k: round(v, 4) for k, v in out.items()}

    def as_json(self) -> dict[str, Any]:
        def prf(p: PRF) -> dict[str, float]:
            return {"precision": round(p.precision, 4), "recall": round(p.recall, 4), "f1": round(p.f1, 4),
                    "support": p.support}

        return {
            "headline": self.headline(),
            "complaint_type": {k: prf(v) for k, v in self.complaint.items()},
            "complaint_confusion": self.complaint_confusion,
            "script_missed": {k: prf(v) for k, v in self.script.items()},
            "script_kappa": {k: round(v, 4) for k, v in self.script_kappa.items()},
            "courtesy_violation": prf(self.courtesy),
            "customer_emotion": {k: prf(v) for k, v in self.emotion.items()},
            "escalation_risk": prf(self.escalation),
            "missing": self.missing,
        }


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError("E076", path, detail=f"line {n}: not JSON: {e}") from e
    return rows


def load_labels(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise InputError("E076", path, detail="file not found")
    labels = {}
    for row in load_jsonl(path):
        missing = {"id", "complaint_type", "script", "courtesy_violation_turns", "customer_emotion",
                   "escalation_risk"} - set(row)
        if missing:
            raise InputError("E076", path, detail=f"{row.get('id', '?')}: missing {sorted(missing)}")
        labels[row["id"]] = row
    return labels


def load_refs(path: Path | None) -> dict[str, dict[int, dict[str, Any]]]:
    refs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    if path is not None and path.is_file():
        for r in load_jsonl(path):
            refs[r["id"]][int(r["turn"])] = r
    return refs


def evaluate(results: Sequence[dict[str, Any]], labels: dict[str, dict[str, Any]],
             refs: dict[str, dict[int, dict[str, Any]]] | None = None) -> Report:
    refs = refs or {}
    by_id = {r["id"]: r for r in results}
    complaint = {k: PRF() for k in COMPLAINT_TYPES}
    confusion: dict[str, dict[str, int]] = {k: dict.fromkeys(COMPLAINT_TYPES, 0) for k in COMPLAINT_TYPES}
    script = {k: PRF() for k in SCRIPT_ITEMS}
    pairs: dict[str, list[tuple[bool, bool]]] = {k: [] for k in SCRIPT_ITEMS}
    courtesy, escalation, dead_air = PRF(), PRF(), PRF()
    emotion = {k: PRF() for k in EMOTIONS}
    correct = 0
    dead_ok = dead_n = 0
    for cid, lab in labels.items():
        res = by_id.get(cid, {})
        truth_ct, pred_ct = lab["complaint_type"], res.get("complaint_type")
        correct += truth_ct == pred_ct
        for k in COMPLAINT_TYPES:
            complaint[k].add(truth_ct == k, pred_ct == k)
        if truth_ct in confusion and pred_ct in confusion[truth_ct]:
            confusion[truth_ct][pred_ct] += 1
        for it in SCRIPT_ITEMS:
            truth_done = bool(lab["script"][it])
            pred_done = bool(res.get("script", {}).get(it, True))
            script[it].add(not truth_done, not pred_done)
            if res:
                pairs[it].append((truth_done, pred_done))
        _courtesy(courtesy, lab, res, refs.get(cid, {}))
        for e in EMOTIONS:
            emotion[e].add(lab["customer_emotion"] == e, res.get("customer_emotion") == e)
        escalation.add(bool(lab["escalation_risk"]), res.get("escalation_risk") is True)
        if res.get("channel", "chat" if cid.startswith("W") else "call") == "call" and "dead_air" in lab:
            dead_n += 1
            dead_ok += res.get("dead_air") == lab["dead_air"]
            dead_air.add(bool(lab["dead_air"]), res.get("dead_air") is True)
    n = len(labels)
    return Report(
        conversations=n,
        coverage=sum(1 for k in labels if k in by_id) / max(1, n),
        complaint=complaint, complaint_confusion=confusion, complaint_accuracy=correct / max(1, n),
        script=script, script_kappa={k: cohen_kappa(v) for k, v in pairs.items()},
        courtesy=courtesy, emotion=emotion, escalation=escalation, dead_air=dead_air,
        missing=sorted(k for k in labels if k not in by_id),
        dead_air_calls=dead_n, dead_air_accuracy=dead_ok / dead_n if dead_n else 1.0,
    )


def _courtesy(acc: PRF, lab: dict[str, Any], res: dict[str, Any], refs: dict[int, dict[str, Any]]) -> None:
    truth = set(lab["courtesy_violation_turns"])
    pred = set(res.get("courtesy_violation_turns") or [])
    if res.get("channel") != "call" or not refs:  # chats: indices line up
        acc.tp += len(truth & pred)
        acc.fp += len(pred - truth)
        acc.fn += len(truth - pred)
        return
    turns = {t["turn"]: t for t in res.get("turns", [])}
    spans = [(turns[i]["start"], turns[i]["end"]) for i in pred if i in turns]

    def hit(a: float, b: float, s: float, e: float) -> bool:
        return a < e + _SLACK and s < b + _SLACK

    for i in truth:
        r = refs.get(i)
        found = r is not None and any(hit(r["start"], r["end"], s, e) for s, e in spans)
        acc.tp += found
        acc.fn += not found
    for s, e in spans:
        if not any(i in refs and hit(refs[i]["start"], refs[i]["end"], s, e) for i in truth):
            acc.fp += 1
