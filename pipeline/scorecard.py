"""Scorecard: judged findings → score, critical, flags; and the export record (spec section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline.decisions import is_human
from pipeline.errors import ConfigError
from pipeline.schema import (
    SCRIPT_ITEMS,
    Finding,
    Result,
    ResultEvidence,
    ResultTurn,
    Score,
    Transcript,
)


@dataclass(frozen=True)
class Scorecard:
    base: float
    script: dict[str, float]
    courtesy_each: float
    dead_air: float
    red_line_items: tuple[str, ...]
    cap: float
    low_score_below: float
    low_confidence_below: float

    @classmethod
    def load(cls, path: Path) -> Scorecard:
        return _load(path)


@lru_cache(maxsize=4)
def _load(path: Path) -> Scorecard:
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        script = {k: float(v) for k, v in raw["script"].items()}
        unknown = set(script) - set(SCRIPT_ITEMS)
        if unknown:
            raise ValueError(f"unknown script items {sorted(unknown)}")
        card = Scorecard(
            base=float(raw.get("base", 100)),
            script=script,
            courtesy_each=float(raw["courtesy_violation"]["deduct_each"]),
            dead_air=float(raw["dead_air"]["deduct"]),
            red_line_items=tuple(raw["red_lines"]["items"]),
            cap=float(raw["red_lines"]["cap"]),
            low_score_below=float(raw["flags"]["low_score_below"]),
            low_confidence_below=float(raw["flags"]["low_confidence_below"]),
        )
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError("E050", path, detail=f"{type(e).__name__}: {e}") from None
    return card


class Verdict:
    """The findings of all judges for one conversation, merged by item (a later judge overrides)."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        self.by_item: dict[str, Finding] = {}
        for f in findings:
            if f.item != "courtesy_violation":
                self.by_item[f.item] = f
        self.courtesy = sorted({f.evidence[0].turn for f in findings
                                if f.item == "courtesy_violation" and f.value and f.evidence})

    def value(self, item: str, default: Any) -> Any:
        f = self.by_item.get(item)
        return default if f is None or f.value is None else f.value

    def confidence(self, item: str) -> float:
        f = self.by_item.get(item)
        return f.confidence if f else 0.0

    def script(self) -> dict[str, bool]:
        return {it: bool(self.value(f"script.{it}", True)) for it in SCRIPT_ITEMS}


def _red_line_broken(item: str, verdict: Verdict) -> bool:
    """A red line is a courtesy violation, a script item not done, or any other item found true."""
    if item == "courtesy_violation":
        return bool(verdict.courtesy)
    if item.startswith("script."):
        return not verdict.script()[item.removeprefix("script.")]
    return bool(verdict.value(item, False))


def score(card: Scorecard, verdict: Verdict, transcript: Transcript) -> Score:
    deductions: list[dict[str, Any]] = []
    for item, done in verdict.script().items():
        if not done and card.script.get(item):
            deductions.append({"item": f"script.{item}", "points": card.script[item]})
    for turn in verdict.courtesy:
        deductions.append({"item": "courtesy_violation", "turn": turn, "points": card.courtesy_each})
    if verdict.value("dead_air", False):
        deductions.append({"item": "dead_air", "points": card.dead_air})
    value = max(0.0, card.base - sum(d["points"] for d in deductions))
    broken = [it for it in card.red_line_items if _red_line_broken(it, verdict)]
    critical = bool(broken)
    if critical:
        value = min(value, card.cap)
    flags: list[str] = []
    if critical:
        flags.append("critical")
    if value < card.low_score_below:
        flags.append("low_score")
    if verdict.value("escalation_risk", False):
        flags.append("escalation_risk")
    if verdict.value("dead_air", False):
        flags.append("dead_air")
    if verdict.value("customer_emotion", "calm") == "angry":
        flags.append("angry_customer")
    unsure = [f for f in verdict.findings if f.confidence < card.low_confidence_below]
    asr_unsure = [t for t in transcript.turns if t.confidence < card.low_confidence_below]
    if unsure or (transcript.turns and len(asr_unsure) / len(transcript.turns) > 0.3):
        flags.append("low_confidence")
    return Score(score=round(value, 1), critical=critical, flags=flags,
                 deductions=[*deductions, {"item": "red_line", "broken": broken}] if broken else deductions)


# Where a person decided the emotion, the machine's score is kept inside that emotion's band, so the number
# still agrees with the label it sits beside (spec section 4: calm lowest).
_BANDS = {"calm": (0.0, 0.35), "dissatisfied": (0.35, 0.7), "angry": (0.7, 1.0)}


def _dissatisfaction(verdict: Verdict) -> float | None:
    f = verdict.by_item.get("customer_dissatisfaction")
    if f is None or not isinstance(f.value, int | float) or isinstance(f.value, bool):
        return None
    value = float(f.value)
    emotion = verdict.by_item.get("customer_emotion")
    if emotion is not None and is_human(emotion.source):
        low, high = _BANDS.get(str(emotion.value), (0.0, 1.0))
        value = min(max(value, low), high)
    return round(value, 4)


def assemble(date: str, transcript: Transcript, verdict: Verdict, result_score: Score) -> Result:
    """The export record of spec section 4."""
    evidence: list[ResultEvidence] = []
    for f in verdict.findings:
        if f.item.startswith("script.") or f.value is True or f.item in ("complaint_type", "customer_emotion"):
            evidence.extend(ResultEvidence(item=f.item.removeprefix("script."), turn=e.turn, text=e.text)
                            for e in f.evidence)
    meta = transcript.meta
    return Result(
        id=meta.id,
        channel=meta.channel,
        agent_id=meta.agent_id,
        agent_name=meta.agent_name,
        team=meta.team,
        site=meta.site,
        date=date,
        complaint_type=str(verdict.value("complaint_type", "inquiry")),
        complaint_confidence=round(verdict.confidence("complaint_type"), 3),
        script=verdict.script(),
        courtesy_violation_turns=verdict.courtesy,
        customer_emotion=str(verdict.value("customer_emotion", "calm")),
        customer_dissatisfaction=_dissatisfaction(verdict),
        escalation_risk=bool(verdict.value("escalation_risk", False)),
        dead_air=bool(verdict.value("dead_air", False)),
        score=result_score.score,
        critical=result_score.critical,
        flags=result_score.flags,
        turns=[ResultTurn(turn=t.index, role=t.role, start=t.start, end=t.end, text=t.text, at=t.at)
               for t in transcript.turns],
        evidence=evidence,
    )
