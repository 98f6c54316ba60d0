"""Reviewing (REVIEW_API.md "Reviewing"): confirmations and overrides, the score recomputed by the store's
scorecard, optimistic locking, 422 naming the bad item, role boundaries, and a re-run that keeps it all."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import LEAK_ID, Workbench
from sqlalchemy import func, select

from pipeline.store.models import AuditRow, CorrectionRow


def _count(wb: Workbench, model: Any) -> int:
    with wb.store._session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _item(conv: dict[str, Any], item: str) -> dict[str, Any]:
    return next(it for it in conv["items"] if it["item"] == item)


def _override(conv: dict[str, Any]) -> tuple[str, bool]:
    """A script item the machine saw done (so missing it costs its weight), and its new value."""
    done = [k for k, v in conv["script"].items() if v and k not in ("ownership",)]
    assert done, conv["script"]
    return f"script.{done[0]}", False


def test_override_and_confirm_recompute_the_score(workbench: Workbench, stored: Any) -> None:
    before = workbench.conv("qa1", LEAK_ID)
    item, value = _override(before)
    body = {"version": before["version"], "decisions": [
        {"item": item, "value": value, "reason": "没有说开场白"},
        {"item": "complaint_type", "value": _item(before, "complaint_type")["machine_value"]},  # confirmation
    ]}
    r = workbench.post("qa1", f"/api/conversations/{LEAK_ID}/review", body)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["version"] == before["version"] + 1
    assert _item(after, item)["value"] is False and _item(after, item)["source"] == "review"
    assert _item(after, item)["machine_value"] is True
    assert _item(after, "complaint_type")["source"] == "review"
    assert after["script"][item.removeprefix("script.")] is False
    weight = _item(after, item)["weight"]
    if not before["critical"]:
        assert after["score"] == pytest.approx(before["score"] - weight)
    assert ("low_score" in after["flags"]) == (after["score"] < 70)
    assert after["review"]["status"] == "reviewed" and after["review"]["reviewed_by"] == "qa1"
    assert workbench.conv("qa1", LEAK_ID) == after  # GET answers the same
    row = stored(LEAK_ID)
    assert row.score == after["score"] and row.version == after["version"]
    # each decision is a correction `zhijian train` reads, and an audit entry
    with workbench.store._session() as s:
        corrections = s.scalars(select(CorrectionRow).where(CorrectionRow.conversation_id == LEAK_ID)).all()
    assert {(c.item, c.human_value, c.kind, c.reviewer) for c in corrections} == {
        (item, False, "review", "qa1"),
        ("complaint_type", _item(before, "complaint_type")["machine_value"], "review", "qa1")}
    assert any(c.item == item for c in workbench.store.corrections())
    audit = workbench.get("qa1", f"/api/conversations/{LEAK_ID}/audit").json()
    entry = next(e for e in audit if e["item"] == item)
    assert entry == {"at": entry["at"], "by": "qa1", "action": "review", "item": item, "from": True, "to": False,
                     "reason": "没有说开场白"}


def test_a_stale_version_is_409_with_the_current_conversation_and_writes_nothing(workbench: Workbench) -> None:
    conv = workbench.conv("qa", LEAK_ID)
    item, value = _override(conv)
    first = {"version": conv["version"], "decisions": [{"item": item, "value": value, "reason": "a"}]}
    assert workbench.post("qa", f"/api/conversations/{LEAK_ID}/review", first).status_code == 200
    corrections, audit = _count(workbench, CorrectionRow), _count(workbench, AuditRow)
    stale = {"version": conv["version"], "decisions": [{"item": item, "value": True, "reason": "b"}]}
    r = workbench.post("sup", f"/api/conversations/{LEAK_ID}/review", stale)
    assert r.status_code == 409
    current = r.json()
    assert current["version"] == conv["version"] + 1 and _item(current, item)["value"] is False
    assert (_count(workbench, CorrectionRow), _count(workbench, AuditRow)) == (corrections, audit)


@pytest.mark.parametrize(("decision", "named"), [
    ({"item": "script.smile", "value": True}, "script.smile"),
    ({"item": "complaint_type", "value": "banana", "reason": "x"}, "complaint_type"),
    ({"item": "escalation_risk", "value": "yes", "reason": "x"}, "escalation_risk"),
    ({"item": "courtesy_violation_turns", "value": [99], "reason": "x"}, "courtesy_violation_turns"),
    ({"item": "script.greeting", "value": "maybe", "reason": "x"}, "script.greeting"),
])
def test_a_bad_item_or_value_is_422_naming_it_and_writes_nothing(workbench: Workbench, decision: dict[str, Any],
                                                                 named: str) -> None:
    conv = workbench.conv("qa", LEAK_ID)
    ok = {"item": "complaint_type", "value": _item(conv, "complaint_type")["machine_value"]}
    r = workbench.post("qa", f"/api/conversations/{LEAK_ID}/review",
                       {"version": conv["version"], "decisions": [ok, decision]})
    assert r.status_code == 422, r.text
    assert r.json()["item"] == named and named in r.json()["detail"]
    assert _count(workbench, CorrectionRow) == 0
    assert workbench.conv("qa", LEAK_ID)["version"] == conv["version"]


def test_an_override_needs_a_reason(workbench: Workbench) -> None:
    conv = workbench.conv("qa", LEAK_ID)
    item, value = _override(conv)
    r = workbench.post("qa", f"/api/conversations/{LEAK_ID}/review",
                       {"version": conv["version"], "decisions": [{"item": item, "value": value, "reason": " "}]})
    assert r.status_code == 422 and r.json()["item"] == item and "reason" in r.json()["detail"]
    for body in ({"decisions": []}, {"version": "1", "decisions": []}, {"version": conv["version"]}):
        assert workbench.post("qa", f"/api/conversations/{LEAK_ID}/review", body).status_code == 422


@pytest.mark.parametrize(("login", "status"), [("trainer", 403), ("a101", 403), ("a102", 404), ("qa2", 404),
                                               ("sup2", 404)])
def test_who_may_not_review(workbench: Workbench, login: str, status: int) -> None:
    conv = workbench.conv("admin", LEAK_ID)
    item, value = _override(conv)
    r = workbench.post(login, f"/api/conversations/{LEAK_ID}/review",
                       {"version": conv["version"], "decisions": [{"item": item, "value": value, "reason": "x"}]})
    assert r.status_code == status
    assert _count(workbench, CorrectionRow) == 0


@pytest.mark.parametrize("login", ["admin", "sup", "qa", "qa1"])
def test_who_may_review(workbench: Workbench, login: str) -> None:
    conv = workbench.conv(login, LEAK_ID)
    r = workbench.post(login, f"/api/conversations/{LEAK_ID}/review", {"version": conv["version"], "decisions": [
        {"item": "dead_air", "value": _item(conv, "dead_air")["machine_value"]}]})
    assert r.status_code == 200


def test_a_rerun_the_day_after_keeps_the_human_value_and_scores_with_it(workbench: Workbench,
                                                                         analyses: list[Any]) -> None:
    before = workbench.conv("qa", LEAK_ID)
    item, value = _override(before)
    turns = [t["turn"] for t in before["turns"] if t["role"] == "agent"][:1]
    decisions = [{"item": item, "value": value, "reason": "没有开场白"},
                 {"item": "courtesy_violation_turns", "value": turns, "reason": "语气生硬"}]
    reviewed = workbench.post("qa", f"/api/conversations/{LEAK_ID}/review",
                              {"version": before["version"], "decisions": decisions}).json()
    assert reviewed["critical"] and reviewed["score"] <= 59  # a rude turn is a red line
    # the next night runs the same day again: the machine's findings are written afresh
    leak = next(a for a in analyses if a.result.id == LEAK_ID)
    workbench.store.save_analysis(leak, pipeline_version="next-night")
    again = workbench.conv("qa", LEAK_ID)
    assert again["version"] == reviewed["version"] + 1
    assert _item(again, item)["value"] is False and _item(again, item)["source"] == "review"
    assert _item(again, "courtesy_violation_turns")["value"] == turns
    assert again["courtesy_violation_turns"] == turns and again["script"][item.removeprefix("script.")] is False
    assert again["score"] == reviewed["score"] and again["critical"] and again["flags"] == reviewed["flags"]
    assert again["review"]["status"] == "reviewed"
    assert workbench.get("qa", f"/api/conversations/{LEAK_ID}/audit").json()[-1]["action"] == "rerun"
