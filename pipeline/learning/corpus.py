"""Training data for the learned judge: the project's written corpus, plus reviewers' corrections.

The corpus (``models/corpus/conversations/*.jsonl``, format in ``models/corpus/FORMAT.md``) is tagged turn by
turn, so every tag of every turn is known. A correction is known only for the item the reviewer changed, and
mostly only for the conversation as a whole ("restate was done"), not for a turn; such labels are kept as
*weak* labels, and training asks only that some turn of the right role carries the tag (multiple-instance
learning). Both become the same record, ``TrainingConversation``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.errors import InputError
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS, Record, Role

log = logging.getLogger("zhijian")

# Per-turn tags the model predicts. Agent turns carry the first eight, customer turns the last.
AGENT_TAGS: tuple[str, ...] = (
    "greeting", "identity_check", "restate", "commitment", "closing", "farewell", "ownership_violation",
    "courtesy_violation",
)
CUSTOMER_TAGS: tuple[str, ...] = ("escalation",)
TURN_TAGS: tuple[str, ...] = AGENT_TAGS + CUSTOMER_TAGS
ITEM_TAGS = {"greeting", "identity_check", "restate", "commitment", "closing", "farewell", "ownership_violation"}


def tags_for(role: Role) -> tuple[str, ...]:
    return AGENT_TAGS if role == "agent" else CUSTOMER_TAGS


class TrainingTurn(Record):
    role: Role
    text: str
    tags: dict[str, bool] = Field(default_factory=dict, description="known tags only; absent = unknown")


class TrainingConversation(Record):
    id: str
    channel: str = "chat"
    turns: list[TrainingTurn]
    complaint_type: str | None = None
    customer_emotion: str | None = None
    weak: dict[str, bool] = Field(default_factory=dict,
                                  description="tag -> whether some turn carries it, where no turn is named")
    source: str = ""


def _corpus_conversation(raw: dict[str, Any], where: str) -> TrainingConversation:
    try:
        labels = raw["labels"]
        turns: list[TrainingTurn] = []
        for t in raw["turns"]:
            role = t["role"]
            if role not in ("agent", "customer") or not isinstance(t.get("text"), str) or not t["text"].strip():
                raise ValueError(f"turn {len(turns)}: bad role or empty text")
            items = set(t.get("items", []))
            unknown = items - ITEM_TAGS
            if unknown:
                raise ValueError(f"turn {len(turns)}: unknown items {sorted(unknown)}")
            if role == "agent":
                tags = {tag: tag in items for tag in AGENT_TAGS[:-1]}
                tags["courtesy_violation"] = bool(t.get("courtesy_violation"))
            else:
                tags = {"escalation": bool(t.get("escalation"))}
            turns.append(TrainingTurn(role=role, text=t["text"], tags=tags))
        complaint, emotion = labels["complaint_type"], labels["customer_emotion"]
        if complaint not in COMPLAINT_TYPES:
            raise ValueError(f"unknown complaint_type {complaint!r}")
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown customer_emotion {emotion!r}")
        return TrainingConversation(id=str(raw["id"]), channel=str(raw.get("channel", "chat")), turns=turns,
                                    complaint_type=complaint, customer_emotion=emotion, source=where)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError("E070", where, detail=str(e)) from e


def corpus_files(folder: Path) -> list[Path]:
    """A corpus folder's ``*.jsonl`` files in training order: its own files by name, then each subfolder's, the
    subfolders by name. Batches that join the corpus later go in a subfolder of their own, so they come after
    every older batch and the older ones keep their order: the order the conversations are read in changes the
    trained bytes (vocabulary ties, shuffling), and a judge trained with ``--corpus conversations --corpus
    candidates`` is reproduced by the default corpus once the candidates join it as a subfolder."""
    return [*sorted(folder.glob("*.jsonl")),
            *(f for sub in sorted(d for d in folder.iterdir() if d.is_dir()) for f in corpus_files(sub))]


def load_corpus(paths: Iterable[Path]) -> list[TrainingConversation]:
    """Every conversation of the given corpus files (or folders, ``corpus_files``), in a stable order."""
    files: list[Path] = []
    for p in paths:
        files.extend(corpus_files(p) if p.is_dir() else [p])
    out: list[TrainingConversation] = []
    seen: set[str] = set()
    for f in files:
        if not f.is_file():
            raise InputError("E071", f)
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{f}:{n}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError("E070", where, detail=f"not JSON: {e}") from e
            conv = _corpus_conversation(raw, where)
            if conv.id in seen:
                raise InputError("E070", where, detail=f"duplicate id {conv.id}")
            seen.add(conv.id)
            out.append(conv)
    return out


# --------------------------------------------------------------------------------------------------
# reviewers' corrections


def parse_correction(item: str, value: str) -> Any:
    """A reviewer's value from the command line, checked against the item's kind (E062 when wrong)."""
    v = value.strip()
    truthy, falsy = {"true", "yes", "1", "是", "done"}, {"false", "no", "0", "否", "missed"}
    if item == "complaint_type":
        if v not in COMPLAINT_TYPES:
            raise InputError("E072", item, detail=f"{v!r} is not one of {', '.join(COMPLAINT_TYPES)}")
        return v
    if item == "customer_emotion":
        if v not in EMOTIONS:
            raise InputError("E072", item, detail=f"{v!r} is not one of {', '.join(EMOTIONS)}")
        return v
    if item == "courtesy_violation_turns":
        if v.lower() in ("", "none", "[]", "无"):
            return []
        try:
            return sorted({int(x) for x in v.replace("，", ",").split(",") if x.strip()})
        except ValueError as e:
            raise InputError("E072", item, detail=f"{v!r} is not a comma-separated list of turn numbers") from e
    if item in {f"script.{i}" for i in SCRIPT_ITEMS} | {"escalation_risk", "dead_air"}:
        if v.lower() in truthy:
            return True
        if v.lower() in falsy:
            return False
        raise InputError("E072", item, detail=f"{v!r} is not true or false")
    known = ["complaint_type", "customer_emotion", "courtesy_violation_turns", "escalation_risk", "dead_air",
             *(f"script.{i}" for i in SCRIPT_ITEMS)]
    raise InputError("E072", item, detail=f"unknown item; expected one of {', '.join(known)}")


def from_corrections(result: dict[str, Any], corrections: Sequence[tuple[str, Any]]) -> TrainingConversation | None:
    """A training conversation from a stored result (its turns) and the reviewers' values for it
    (item, value; later ones win). Only what a reviewer said is used: the machine's other values are not
    taken as truth, so a mistake the reviewer did not look at is not learnt."""
    values = dict(corrections)
    turns = [TrainingTurn(role=t["role"], text=t["text"]) for t in result.get("turns", []) if t.get("text")]
    index = [t["turn"] for t in result.get("turns", []) if t.get("text")]
    if not turns:
        return None
    conv = TrainingConversation(id=f"correction:{result['id']}", channel=result.get("channel", "chat"), turns=turns,
                                source="corrections")
    for item, value in values.items():
        if item == "complaint_type":
            conv.complaint_type = value
        elif item == "customer_emotion":
            conv.customer_emotion = value
        elif item == "escalation_risk":
            if value:
                conv.weak["escalation"] = True
            else:
                for t in turns:
                    if t.role == "customer":
                        t.tags["escalation"] = False
        elif item == "courtesy_violation_turns":
            rude = set(value)
            for i, t in zip(index, turns, strict=True):
                if t.role == "agent":
                    t.tags["courtesy_violation"] = i in rude
        elif item.startswith("script."):
            name = item.removeprefix("script.")
            tag, present = ("ownership_violation", not value) if name == "ownership" else (name, bool(value))
            if present:
                conv.weak[tag] = True
            else:
                for t in turns:
                    if t.role == "agent":
                        t.tags[tag] = False
    return conv
