"""Human decisions over machine findings: which items a person may decide, what values they may take, how
the values in force are made from the machine's findings and the latest decision per item, and where a
conversation stands in the review queue.

Pure functions: the store calls them when a conversation is saved (a re-run keeps every human decision in
force), reviewed or ruled on, and the scorecard then scores the values in force. Nothing here touches the
database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS, Evidence, Finding, Result, Turn

SCRIPT_KEYS: tuple[str, ...] = tuple(f"script.{i}" for i in SCRIPT_ITEMS)
COURTESY = "courtesy_violation_turns"
# The items of `zhijian correct` and of the review API (REVIEW_API.md, "A conversation").
REVIEW_ITEMS: tuple[str, ...] = (
    "complaint_type", "customer_emotion", "escalation_risk", "dead_air", COURTESY, *SCRIPT_KEYS,
)
_BOOL_ITEMS = {"escalation_risk", "dead_air", *SCRIPT_KEYS}

# Queue tiers, most severe first (REVIEW_API.md, "Queue": critical, escalation risk, low score, low
# confidence, the rest); unflagged conversations drawn for calibration come last.
TIER_FLAGS: tuple[str, ...] = ("critical", "escalation_risk", "low_score", "low_confidence")
OTHER_FLAG_TIER = len(TIER_FLAGS)
SAMPLE_TIER = OTHER_FLAG_TIER + 1


HUMAN_KINDS: tuple[str, ...] = ("correction", "review", "ruling")


def is_human(source: str) -> bool:
    """Whether a finding's ``source`` (``<kind>:<who>``) is a person's decision rather than a judge's."""
    return source.split(":", 1)[0] in HUMAN_KINDS


@dataclass(frozen=True)
class Decided:
    """The latest human decision on one item: the value in force and who set it."""

    value: Any
    kind: str  # correction | review | ruling
    by: str
    at: str | None = None  # ISO time


def validate(item: str, value: Any, n_turns: int | None = None) -> Any:
    """The value as stored, or ``ValueError`` naming the item and what is wrong with the value."""
    if item not in REVIEW_ITEMS:
        raise ValueError(f"unknown item {item!r}; expected one of {', '.join(REVIEW_ITEMS)}")
    if item == "complaint_type":
        if value not in COMPLAINT_TYPES:
            raise ValueError(f"{item}: {value!r} is not one of {', '.join(COMPLAINT_TYPES)}")
        return value
    if item == "customer_emotion":
        if value not in EMOTIONS:
            raise ValueError(f"{item}: {value!r} is not one of {', '.join(EMOTIONS)}")
        return value
    if item in _BOOL_ITEMS:
        if not isinstance(value, bool):
            raise ValueError(f"{item}: {value!r} is not true or false")
        return value
    # courtesy_violation_turns: turn indices of the conversation
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise ValueError(f"{item}: {value!r} is not a list of turn numbers")
    turns = sorted(set(value))
    if turns and (turns[0] < 0 or (n_turns is not None and turns[-1] >= n_turns)):
        raise ValueError(f"{item}: turn numbers must be between 0 and {(n_turns or 1) - 1}, got {turns}")
    return turns


def machine_values(result: Mapping[str, Any]) -> dict[str, Any]:
    """Each review item's value in an export record (spec section 4)."""
    script = result.get("script", {})
    out: dict[str, Any] = {
        "complaint_type": result.get("complaint_type"),
        "customer_emotion": result.get("customer_emotion"),
        "escalation_risk": result.get("escalation_risk"),
        "dead_air": result.get("dead_air"),
        COURTESY: list(result.get("courtesy_violation_turns", [])),
    }
    out.update({f"script.{i}": script.get(i) for i in SCRIPT_ITEMS})
    return out


def _evidence(turns: Sequence[Turn], index: int) -> list[Evidence]:
    if 0 <= index < len(turns):
        t = turns[index]
        return [Evidence(turn=t.index, text=t.text, start=t.start, end=t.end)]
    return []


def apply(findings: Sequence[Finding], decided: Mapping[str, Decided], turns: Sequence[Turn]) -> list[Finding]:
    """The findings in force: the machine's, with every decided item replaced by the human value (confidence
    1, source ``<kind>:<by>``). A decided script item keeps the machine's evidence when the human agrees."""
    if not decided:
        return list(findings)
    out: list[Finding] = []
    machine = {f.item: f for f in findings if f.item != "courtesy_violation"}
    for f in findings:
        if f.item == "courtesy_violation" and COURTESY in decided:
            continue
        if f.item in decided:
            continue
        out.append(f)
    for item, d in decided.items():
        source = f"{d.kind}:{d.by}"
        if item == COURTESY:
            out.extend(Finding(item="courtesy_violation", value=True, confidence=1.0, source=source,
                               evidence=_evidence(turns, t)) for t in d.value)
            continue
        before = machine.get(item)
        evidence = before.evidence if before is not None and before.value == d.value else []
        out.append(Finding(item=item, value=d.value, confidence=1.0, evidence=list(evidence), source=source))
    return out


def sampled(conversation_id: str, rate: float) -> bool:
    """Whether an unflagged conversation is drawn for calibration: a pure function of its id, so a re-run of
    the day draws the same ones."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"zhijian-calibration:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def queue_place(conversation_id: str, flags: Sequence[str], rate: float) -> tuple[str | None, int | None]:
    """(reason, tier) of a conversation in the review queue: ``flagged`` with the tier of its most severe
    flag, ``sample`` (calibration draw), or (None, None) when it is not queued."""
    for tier, flag in enumerate(TIER_FLAGS):
        if flag in flags:
            return "flagged", tier
    if flags:
        return "flagged", OTHER_FLAG_TIER
    if sampled(conversation_id, rate):
        return "sample", SAMPLE_TIER
    return None, None


def flag_text(flags: Sequence[str]) -> str:
    """Flags as one string with a space either side of each (``LIKE '% low_score %'`` finds one)."""
    return f" {' '.join(flags)} " if flags else ""


def in_force_columns(result: Result, dissatisfaction: float | None, conversation_id: str,
                     rate: float) -> dict[str, Any]:
    """The conversations row's in-force columns for an export record in force."""
    reason, tier = queue_place(conversation_id, result.flags, rate)
    return {
        "score": result.score, "critical": result.critical, "flags": list(result.flags),
        "flag_text": flag_text(result.flags), "complaint_type": result.complaint_type,
        "complaint_confidence": result.complaint_confidence, "customer_emotion": result.customer_emotion,
        "escalation_risk": result.escalation_risk, "dead_air": result.dead_air,
        "courtesy_violations": len(result.courtesy_violation_turns),
        "customer_dissatisfaction": dissatisfaction,
        **{f"script_{i}": bool(result.script.get(i, True)) for i in SCRIPT_ITEMS},
        "queue_reason": reason, "queue_tier": tier,
    }
