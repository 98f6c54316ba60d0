"""Signals on constructed cases: what must fire, and what must not (a type that is always frequent at a site,
a repeat 8 days apart, the same type at another room, the same room at another site, inquiries)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from pipeline.config import get_settings
from pipeline.reports import signals as sig
from pipeline.reports.signals import poisson_upper_tail, signals_for
from pipeline.schema import SCRIPT_ITEMS, Analysis, ConversationMeta, Finding, Transcript, Turn
from pipeline.scorecard import Scorecard, Verdict, assemble, score
from pipeline.store import Store

TZ = dt.timezone(dt.timedelta(hours=8))
D = dt.date(2026, 11, 30)
_ids = itertools.count(1)


def make(day: dt.date, site: str, kind: str, *, ref: str | None = None, room: str | None = None,
         hour: int = 10) -> Analysis:
    """One judged chat, scored by the real scorecard, with the metadata signals read."""
    conv_id = f"W{day:%Y%m%d}-{next(_ids):05d}"
    start = dt.datetime.combine(day, dt.time(hour, 0), TZ)
    turns = [Turn(index=0, role="customer", text="我家水管漏了", at=start),
             Turn(index=1, role="agent", text="您好，物业客服中心，马上安排。", at=start + dt.timedelta(seconds=50))]
    meta = ConversationMeta(id=conv_id, channel="chat", agent_id="A1", agent_name="王丽", team=f"{site}客服组",
                            site=site, started_at=start, customer_ref=ref, room=room, source=f"/inbox/{conv_id}.json")
    findings = [Finding(item="complaint_type", value=kind, confidence=0.9, source="test:1"),
                *(Finding(item=f"script.{i}", value=True, confidence=0.9, source="test:1") for i in SCRIPT_ITEMS),
                Finding(item="customer_emotion", value="calm", source="test:1"),
                Finding(item="escalation_risk", value=False, source="test:1"),
                Finding(item="dead_air", value=False, source="dead_air:1")]
    transcript = Transcript(meta=meta, turns=turns)
    verdict = Verdict(findings)
    card = Scorecard.load(get_settings().scorecard_path)
    result = assemble(day.isoformat(), transcript, verdict, score(card, verdict, transcript))
    return Analysis(date=day.isoformat(), transcript=transcript, findings=findings,
                    score=score(card, verdict, transcript), result=result)


def save(store: Store, analyses: list[Analysis]) -> list[str]:
    for a in analyses:
        store.save_analysis(a)
    return [a.result.id for a in analyses]


def test_poisson_tail() -> None:
    assert poisson_upper_tail(0, 2.0) == 1.0
    assert poisson_upper_tail(1, 2.0) == pytest.approx(1 - 2.718281828 ** -2.0)
    # first-ever 3 on a day (floor 0.1/day): ≈ 1.5e-4, fires; a first-ever 2 never reaches MIN_COUNT
    assert poisson_upper_tail(3, sig.FLOOR) == pytest.approx(1.547e-4, rel=1e-3)


def test_spikes(empty_store: Store) -> None:
    s = empty_store
    rows: list[Analysis] = []
    for back in range(1, 29):  # 28 days before D: repair at 阳光花园 five a day, every day
        day = D - dt.timedelta(days=back)
        rows += [make(day, "阳光花园", "repair", hour=8 + h) for h in range(5)]
        rows.append(make(day, "海棠湾", "parking"))  # 海棠湾 is active every day; facility never seen there
    rows += [make(D, "阳光花园", "repair", hour=8 + h) for h in range(7)]  # 7 against a mean of 5: noise
    rows += [make(D, "海棠湾", "facility", hour=8 + h) for h in range(4)]  # never seen before: a spike
    rows += [make(D, "海棠湾", "noise", hour=9 + h) for h in range(2)]  # new too, but 2 < 3
    rows += [make(D, "海棠湾", "inquiry", hour=9 + h) for h in range(5)]  # inquiries are not complaints
    save(s, rows)
    out = signals_for(s, D)
    assert out["date"] == D.isoformat()
    assert out["spikes"] == [{"site": "海棠湾", "complaint_type": "facility", "count": 4, "baseline_mean": 0.0,
                              "p": float(f"{poisson_upper_tail(4, sig.FLOOR):.3g}")}]
    # the always-frequent type: its p is far from 0.01
    assert poisson_upper_tail(7, 5.0) > 0.1


def test_spike_against_its_own_baseline(empty_store: Store) -> None:
    """A type seen once a week at a site, then 4 in a day: baseline 4/28 a day, fires."""
    rows = [make(D - dt.timedelta(days=b), "翠湖苑", "parking") for b in range(1, 29)]  # the site is active daily
    rows += [make(D - dt.timedelta(days=b), "翠湖苑", "cleaning", hour=15) for b in (3, 10, 17, 24)]
    rows += [make(D, "翠湖苑", "cleaning", hour=8 + h) for h in range(4)]
    save(empty_store, rows)
    [spike] = signals_for(empty_store, D)["spikes"]
    assert (spike["site"], spike["complaint_type"], spike["count"]) == ("翠湖苑", "cleaning", 4)
    assert spike["baseline_mean"] == round(4 / 28, 3)
    assert spike["p"] == float(f"{poisson_upper_tail(4, 4 / 28):.3g}")
    assert spike["p"] < 0.01


def test_repeats_fire_and_do_not_fire(empty_store: Store) -> None:
    s = empty_store
    # fires: the same customer, the same type, 3 days apart (at another room even: the person is the key)
    a1 = make(D - dt.timedelta(days=3), "阳光花园", "repair", ref="138****0001", room="1-1-101")
    a2 = make(D, "阳光花园", "repair", ref="138****0001", room="1-1-101")
    # fires: the same room (no customer_ref), the same type, 7 days apart — the edge of the window
    b1 = make(D - dt.timedelta(days=7), "阳光花园", "noise", room="2-1-1502")
    b2 = make(D, "阳光花园", "noise", room="2-1-1502")
    # does not fire: 8 days apart
    c1 = make(D - dt.timedelta(days=8), "阳光花园", "fees", ref="139****0002")
    c2 = make(D, "阳光花园", "fees", ref="139****0002")
    # does not fire: the same type at another room of the same site
    d1 = make(D - dt.timedelta(days=1), "阳光花园", "parking", room="3-2-0801")
    d2 = make(D, "阳光花园", "parking", room="3-2-0802")
    # does not fire: the same room number at another site
    e1 = make(D - dt.timedelta(days=2), "海棠湾", "cleaning", room="5-1-0301")
    e2 = make(D, "阳光花园", "cleaning", room="5-1-0301")
    # does not fire: the same customer about another type; or an inquiry asked twice
    f1 = make(D - dt.timedelta(days=2), "阳光花园", "security", ref="137****0003")
    f2 = make(D, "阳光花园", "greening", ref="137****0003")
    g1 = make(D - dt.timedelta(days=1), "阳光花园", "inquiry", ref="136****0004")
    g2 = make(D, "阳光花园", "inquiry", ref="136****0004")
    # does not fire on D: the repeat happened yesterday (it fired then)
    h1 = make(D - dt.timedelta(days=4), "阳光花园", "renovation", ref="135****0005")
    h2 = make(D - dt.timedelta(days=1), "阳光花园", "renovation", ref="135****0005")
    # fires, same day: twice on D about the same thing
    i1 = make(D, "海棠湾", "facility", ref="134****0006", hour=9)
    i2 = make(D, "海棠湾", "facility", ref="134****0006", hour=16)
    save(s, [a1, a2, b1, b2, c1, c2, d1, d2, e1, e2, f1, f2, g1, g2, h1, h2, i1, i2])
    repeats = signals_for(s, D)["repeats"]
    assert repeats == sorted([
        {"complaint_type": "repair", "key": "customer:138****0001", "conversations": [a1.result.id, a2.result.id],
         "days_between": 3},
        {"complaint_type": "noise", "key": "room:阳光花园 2-1-1502", "conversations": [b1.result.id, b2.result.id],
         "days_between": 7},
        {"complaint_type": "facility", "key": "customer:134****0006",
         "conversations": [i1.result.id, i2.result.id], "days_between": 0},
    ], key=lambda r: (r["complaint_type"], r["key"]))
    # the pair found by customer and by room is listed once (a1/a2 share both)
    assert sum(1 for r in repeats if a2.result.id in r["conversations"]) == 1
    # a site's or a team's dashboard shows only its own
    found = signals_for(s, D)
    assert [r["key"] for r in sig.scoped(s.engine, found, "site", "海棠湾")["repeats"]] == ["customer:134****0006"]
    team = sig.scoped(s.engine, found, "team", "阳光花园客服组")
    assert {r["key"] for r in team["repeats"]} == {"customer:138****0001", "room:阳光花园 2-1-1502"}
    assert team["spikes"] == []
    # the day before: h1/h2 fired then
    yesterday = signals_for(s, D - dt.timedelta(days=1))["repeats"]
    assert [r["conversations"] for r in yesterday] == [[h1.result.id, h2.result.id]]


def test_signals_for_takes_store_engine_connection_session(empty_store: Store) -> None:
    save(empty_store, [make(D, "阳光花园", "repair")])
    want = signals_for(empty_store, D)
    assert signals_for(empty_store.engine, D.isoformat()) == want
    with empty_store.engine.connect() as conn:
        assert signals_for(conn, D) == want
    with empty_store._session() as session:
        assert signals_for(session, D) == want
    with pytest.raises(TypeError):
        signals_for(object(), D)
