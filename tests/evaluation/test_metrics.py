"""Agreement measures (``pipeline.evaluation.metrics``)."""

from __future__ import annotations

import pytest

from pipeline.evaluation.metrics import PRF, cohen_kappa, evaluate
from pipeline.schema import SCRIPT_ITEMS


def test_prf() -> None:
    p = PRF()
    for truth, pred in [(True, True), (True, False), (False, True), (False, False), (True, True)]:
        p.add(truth, pred)
    assert (p.tp, p.fp, p.fn) == (2, 1, 1)
    assert p.precision == pytest.approx(2 / 3) and p.recall == pytest.approx(2 / 3)
    assert p.f1 == pytest.approx(2 / 3)
    assert PRF().f1 == 1.0  # nothing to find and nothing found


def test_cohen_kappa_known_values() -> None:
    # 2x2 table: agree yes 20, agree no 15, disagreements 5 and 10 → po 0.7, pe 0.5, kappa 0.4
    pairs = [(True, True)] * 20 + [(False, False)] * 15 + [(True, False)] * 5 + [(False, True)] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def _label(cid: str, **over: object) -> dict:
    base = {"id": cid, "complaint_type": "repair", "script": dict.fromkeys(SCRIPT_ITEMS, True),
            "courtesy_violation_turns": [], "customer_emotion": "calm", "escalation_risk": False,
            "dead_air": False}
    return {**base, **over}


def test_evaluate_counts_like_score_py() -> None:
    labels = {"W1": _label("W1", courtesy_violation_turns=[3], customer_emotion="angry"),
              "W2": _label("W2", complaint_type="fees", script={**dict.fromkeys(SCRIPT_ITEMS, True),
                                                                "restate": False})}
    results = [
        {**_label("W1", courtesy_violation_turns=[3, 5], customer_emotion="angry"), "channel": "chat"},
        {**_label("W2", complaint_type="noise"), "channel": "chat"},
    ]
    r = evaluate(results, labels)
    assert r.complaint_accuracy == 0.5
    assert r.complaint_confusion["fees"]["noise"] == 1
    assert (r.courtesy.tp, r.courtesy.fp, r.courtesy.fn) == (1, 1, 0)
    assert r.script["restate"].fn == 1 and r.script["restate"].f1 == 0.0
    assert r.script["greeting"].f1 == 1.0
    h = r.headline()
    assert h["coverage"] == 1.0 and h["emotion_macro_f1"] == 1.0
    assert r.as_json()["script_kappa"]["greeting"] == 1.0


def test_missing_results_count_against() -> None:
    r = evaluate([], {"W1": _label("W1")})
    assert r.coverage == 0.0 and r.missing == ["W1"]
