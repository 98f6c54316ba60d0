"""Scorecard (``pipeline.scorecard``): deductions, red lines, flags, the export record, bad config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RESOURCES, Settings
from pipeline.errors import ConfigError
from pipeline.schema import (
    SCRIPT_ITEMS,
    ConversationMeta,
    Evidence,
    Finding,
    Result,
    Score,
    Transcript,
    Turn,
)
from pipeline.scorecard import Scorecard, Verdict, assemble, score

SPEC_KEYS = {
    "id", "channel", "agent_id", "date", "complaint_type", "complaint_confidence", "script",
    "courtesy_violation_turns", "customer_emotion", "escalation_risk", "dead_air", "score", "critical",
    "flags", "turns", "evidence",
}


@pytest.fixture(scope="module")
def card(settings: Settings) -> Scorecard:
    return Scorecard.load(settings.scorecard_path)


def transcript(n: int = 4, confidences: list[float] | None = None) -> Transcript:
    meta = ConversationMeta(id="C-1", channel="call", agent_id="A017", agent_name="王丽", team="客服组",
                            site="阳光花园", source="calls/C-1.json")
    conf = confidences or [0.9] * n
    return Transcript(meta=meta, turns=[
        Turn(index=i, role="agent" if i % 2 == 0 else "customer", text=f"第{i}句", start=float(2 * i),
             end=2 * i + 1.5, confidence=c)
        for i, c in enumerate(conf)
    ])


def f(item: str, value: Any, confidence: float = 0.9, turn: int | None = 0, source: str = "test:1") -> Finding:
    evidence = [Evidence(turn=turn, text=f"第{turn}句")] if turn is not None else []
    return Finding(item=item, value=value, confidence=confidence, evidence=evidence, source=source)


def findings(missed: tuple[str, ...] = (), rude: tuple[int, ...] = (), dead_air: bool = False,
             escalation: bool = False, emotion: str = "calm", confidence: float = 0.9) -> list[Finding]:
    out = [f("complaint_type", "repair", confidence), f("customer_emotion", emotion, confidence, turn=1),
           f("escalation_risk", escalation, confidence, turn=1 if escalation else None),
           f("dead_air", dead_air, 1.0, turn=None)]
    out += [f(f"script.{it}", it not in missed, confidence, turn=0 if it not in missed else None)
            for it in SCRIPT_ITEMS]
    out += [f("courtesy_violation", True, 0.9, turn=t) for t in rude]
    return out


def scored(card: Scorecard, tr: Transcript | None = None, **kw: Any) -> Score:
    return score(card, Verdict(findings(**kw)), tr or transcript())


def test_the_shipped_scorecard(card: Scorecard) -> None:
    assert card.base == 100
    assert set(card.script) == set(SCRIPT_ITEMS)
    assert card.cap == 59 and set(card.red_line_items) == {"courtesy_violation", "script.ownership"}
    assert card.low_score_below == 70 and card.low_confidence_below == 0.6


def test_perfect_conversation(card: Scorecard) -> None:
    s = scored(card)
    assert (s.score, s.critical, s.flags, s.deductions) == (100.0, False, [], [])


def test_missed_script_items_deduct_their_weight(card: Scorecard) -> None:
    s = scored(card, missed=("greeting", "commitment"))
    assert s.score == 100 - card.script["greeting"] - card.script["commitment"] == 75
    assert sorted(d["item"] for d in s.deductions) == ["script.commitment", "script.greeting"]
    assert not s.critical and s.flags == []


def test_dead_air_deducts_and_flags(card: Scorecard) -> None:
    s = scored(card, dead_air=True)
    assert s.score == 100 - card.dead_air
    assert {"item": "dead_air", "points": card.dead_air} in s.deductions
    assert s.flags == ["dead_air"]


def test_low_score_threshold(card: Scorecard) -> None:
    at = scored(card, missed=("greeting", "identity_check", "restate"))  # 70: not below 70
    assert at.score == 70 and "low_score" not in at.flags
    below = scored(card, missed=("greeting", "identity_check", "restate", "closing"))
    assert below.score == 65 and below.flags == ["low_score"] and not below.critical


def test_score_never_below_zero(card: Scorecard) -> None:
    s = scored(card, missed=SCRIPT_ITEMS, rude=(0, 2, 4), dead_air=True)
    assert s.score == 0 and s.critical


def test_courtesy_violation_is_a_red_line(card: Scorecard) -> None:
    s = scored(card, rude=(2,))
    # 100 - 15 = 85 would pass; the red line caps it
    assert s.critical
    assert s.score <= card.cap and s.score == card.cap
    assert {"item": "courtesy_violation", "turn": 2, "points": card.courtesy_each} in s.deductions
    assert {"item": "red_line", "broken": ["courtesy_violation"]} in s.deductions
    assert s.flags[:2] == ["critical", "low_score"]


def test_each_rude_turn_deducts_once(card: Scorecard) -> None:
    verdict = Verdict([*findings(), f("courtesy_violation", True, turn=2), f("courtesy_violation", True, turn=2),
                       f("courtesy_violation", True, turn=0), f("courtesy_violation", False, turn=3)])
    assert verdict.courtesy == [0, 2]
    s = score(card, verdict, transcript())
    assert [d["turn"] for d in s.deductions if d["item"] == "courtesy_violation"] == [0, 2]


def test_ownership_is_a_red_line(card: Scorecard) -> None:
    s = scored(card, missed=("ownership",))
    assert s.critical and s.score == card.cap
    assert {"item": "red_line", "broken": ["script.ownership"]} in s.deductions


def test_red_line_cap_keeps_a_lower_score(card: Scorecard) -> None:
    s = scored(card, missed=("greeting", "identity_check", "restate", "commitment"), rude=(2,))
    assert s.score == 100 - 10 - 10 - 10 - 15 - 15 == 40 and s.critical


def test_escalation_and_angry_flags(card: Scorecard) -> None:
    s = scored(card, escalation=True, emotion="angry")
    assert s.flags == ["escalation_risk", "angry_customer"]
    assert s.score == 100  # flags, not deductions


def test_low_confidence_from_a_judgement(card: Scorecard) -> None:
    assert "low_confidence" in scored(card, confidence=0.5).flags
    assert "low_confidence" not in scored(card, confidence=0.6).flags


def test_low_confidence_from_the_recogniser(card: Scorecard) -> None:
    unsure = transcript(confidences=[0.9, 0.3, 0.4, 0.9])  # half the turns are unsure
    assert "low_confidence" in scored(card, unsure).flags
    one_in_four = transcript(confidences=[0.9, 0.3, 0.9, 0.9])
    assert "low_confidence" not in scored(card, one_in_four).flags


def test_later_judge_overrides_earlier() -> None:
    v = Verdict([f("complaint_type", "repair", 0.4, source="a:1"), f("complaint_type", "fees", 0.8, source="b:1")])
    assert v.value("complaint_type", "inquiry") == "fees" and v.confidence("complaint_type") == 0.8
    assert v.value("customer_emotion", "calm") == "calm" and v.confidence("customer_emotion") == 0.0
    assert v.script() == dict.fromkeys(SCRIPT_ITEMS, True)  # unjudged items count as done


def test_assemble_export_record(card: Scorecard) -> None:
    tr = transcript()
    verdict = Verdict(findings(missed=("closing",), rude=(2,), escalation=True))
    result = assemble("2026-01-01", tr, verdict, score(card, verdict, tr))
    assert isinstance(result, Result)
    record = result.model_dump(mode="json")
    assert set(record) >= SPEC_KEYS
    assert record["id"] == "C-1" and record["channel"] == "call" and record["agent_id"] == "A017"
    assert record["date"] == "2026-01-01"
    assert record["complaint_type"] == "repair" and record["complaint_confidence"] == 0.9
    assert record["script"]["closing"] is False and record["script"]["greeting"] is True
    assert record["courtesy_violation_turns"] == [2]
    assert record["escalation_risk"] is True and record["critical"] is True and record["score"] <= card.cap
    assert [t["turn"] for t in record["turns"]] == [0, 1, 2, 3]
    assert record["turns"][1] == {"turn": 1, "role": "customer", "start": 2.0, "end": 3.5, "text": "第1句"}
    items = {e["item"] for e in record["evidence"]}
    assert {"greeting", "courtesy_violation", "escalation_risk", "complaint_type"} <= items
    assert "closing" not in items  # a missed item has no evidence turn here


# -- bad scorecard files ----------------------------------------------------------------------------

GOOD_YAML = (RESOURCES / "scorecard.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("syntax.yaml", "script: [greeting: 10\n  commitment: 15"),
        ("no_script.yaml", GOOD_YAML.replace("script:", "scripts:", 1)),
        ("unknown_item.yaml", GOOD_YAML.replace("  farewell: 5", "  farewell: 5\n  smile: 5")),
        ("not_a_number.yaml", GOOD_YAML.replace("deduct_each: 15", "deduct_each: fifteen")),
        ("empty.yaml", ""),
        ("null_script.yaml", GOOD_YAML.replace("script:", "script: null\nold_script:", 1)),
        ("list_script.yaml", "base: 100\nscript: [greeting, closing]\n"),
        ("flat_section.yaml", GOOD_YAML.replace("courtesy_violation:\n  deduct_each: 15", "courtesy_violation: 15")),
    ],
)
def test_bad_scorecard_is_a_config_error_naming_the_file(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        Scorecard.load(path)
    assert e.value.code == "E050"
    assert e.value.path == str(path) and str(path) in str(e.value)


def test_missing_scorecard_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        Scorecard.load(tmp_path / "nowhere.yaml")
    assert e.value.code == "E050" and str(tmp_path / "nowhere.yaml") in str(e.value)


def test_scorecard_copy_loads(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(GOOD_YAML.replace("cap: 59", "cap: 49"), encoding="utf-8")
    assert Scorecard.load(path).cap == 49
