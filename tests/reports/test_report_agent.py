"""The per-agent report over the judged weeks: every number of the JSON against the exported result records
(``Store.results``, the values in force) and against direct SQL; a reviewer's decision moves the numbers."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from statistics import fmean
from typing import Any

import pytest
from conftest import END, START, Judged
from sqlalchemy import text

from pipeline.config import get_settings
from pipeline.reports.agent import agent_report, check_training_map
from pipeline.reports.labels import load_training_map
from pipeline.reports.queries import ITEMS, Period
from pipeline.schema import SCRIPT_ITEMS
from pipeline.store import Store

PERIOD = Period(START, END)


def training() -> dict[str, list[str]]:
    return load_training_map(get_settings().reports.training_map_path)


def exported(store: Store, period: Period = PERIOD) -> list[dict[str, Any]]:
    """The export records of every day of the period, with each one's team from the store."""
    with store.engine.connect() as conn:
        teams: dict[str, str] = dict(conn.execute(text("SELECT id, team FROM conversations")).all())
    out = []
    day = period.start
    while day <= period.end:
        out += [{**r, "team": teams[r["id"]]} for r in store.results(day.isoformat())]
        day += dt.timedelta(days=1)
    return out


def rate(records: list[dict[str, Any]], item: str) -> float | None:
    values = [r["script"][item] for r in records if item in r["script"]]
    return round(sum(values) / len(values), 4) if values else None


def per_100(records: list[dict[str, Any]]) -> float:
    return round(100 * sum(len(r["courtesy_violation_turns"]) for r in records) / len(records), 2)


@pytest.mark.parametrize("agent_id", ["A104", "A202", "A103"])
def test_every_number_matches_the_exported_records(store: Store, agent_id: str) -> None:
    report = agent_report(store.engine, agent_id, PERIOD, training())
    records = exported(store)
    mine = [r for r in records if r["agent_id"] == agent_id]
    team_name = mine[0]["team"]
    team = [r for r in records if r["team"] == team_name]
    assert (report["agent_id"], report["team"], report["from"], report["to"]) == (
        agent_id, team_name, START.isoformat(), END.isoformat())
    assert report["conversations"] == len(mine) > 0
    assert report["score_mean"] == round(fmean(r["score"] for r in mine), 1)
    assert report["critical"] == sum(r["critical"] for r in mine)
    assert [i["item"] for i in report["items"]] == list(ITEMS)
    for row in report["items"]:
        name = row["item"].removeprefix("script.")
        assert row["n"] == sum(1 for r in mine if name in r["script"])
        assert row["pass_rate"] == rate(mine, name)
        assert row["team_rate"] == rate(team, name)
        assert row["company_rate"] == rate(records, name)
    c = report["courtesy"]
    assert c == {"violations": sum(len(r["courtesy_violation_turns"]) for r in mine), "per_100": per_100(mine),
                 "team_per_100": per_100(team), "company_per_100": per_100(records)}
    weeks: dict[str, list[float]] = defaultdict(list)
    for r in mine:
        y, w, _ = dt.date.fromisoformat(r["date"]).isocalendar()
        weeks[f"{y}-W{w:02d}"].append(r["score"])
    assert report["weekly"] == [{"week": k, "conversations": len(v), "score_mean": round(fmean(v), 1)}
                                for k, v in sorted(weeks.items())]
    # weakest: the items below the team, most negative gap first, at most three, with examples and courses
    below = sorted((round(i["pass_rate"] - i["team_rate"], 4), i["item"]) for i in report["items"]
                    if i["pass_rate"] < i["team_rate"])[:3]
    assert [(w["gap_to_team"], w["item"]) for w in report["weakest"]] == below
    by_id = {r["id"]: r for r in mine}
    for w in report["weakest"]:
        name = w["item"].removeprefix("script.")
        missed = [r for r in mine if r["script"][name] is False]
        assert w["pass_rate"] == rate(mine, name)
        assert w["training"] == training()[w["item"]]
        assert min(2, len(missed)) <= len(w["examples"]) <= 3
        for e in w["examples"]:
            rec = by_id[e["conversation_id"]]  # the agent's own conversation, in the period …
            assert rec["script"][name] is False  # … where the item is missed in force
            turn = next(t for t in rec["turns"] if t["turn"] == e["turn"])
            assert (turn["role"], turn["text"]) == ("agent", e["text"])


def test_the_habits_show(store: Store) -> None:
    """The generated agents' habits come out of the real judge: 周强 restates least, 陈静 greets least."""
    zhou = agent_report(store.engine, "A104", PERIOD, training())
    assert zhou["agent_name"] == "周强"
    assert zhou["weakest"][0]["item"] == "script.restate"
    assert zhou["weakest"][0]["training"] == ["沟通技巧：复述确认"]
    chen = agent_report(store.engine, "A202", PERIOD, training())
    assert {w["item"] for w in chen["weakest"][:2]} == {"script.greeting", "script.farewell"}
    zhang = agent_report(store.engine, "A103", PERIOD, training())
    assert zhang["courtesy"]["per_100"] > zhang["courtesy"]["company_per_100"]


def test_numbers_match_direct_sql(store: Store) -> None:
    report = agent_report(store.engine, "A104", PERIOD, training())
    cols = ", ".join(f"SUM(CASE WHEN script_{i} THEN 1 ELSE 0 END), COUNT(script_{i})" for i in SCRIPT_ITEMS)
    sql = text(f"SELECT COUNT(*), AVG(score), SUM(CASE WHEN critical THEN 1 ELSE 0 END), "
               f"SUM(courtesy_violations), {cols} FROM conversations "
               f"WHERE status = 'ok' AND agent_id = :a AND date >= :f AND date <= :t")
    with store.engine.connect() as conn:
        row = conn.execute(sql, {"a": "A104", "f": START, "t": END}).one()
    assert report["conversations"] == row[0]
    assert report["score_mean"] == round(row[1], 1)
    assert report["critical"] == row[2]
    assert report["courtesy"]["violations"] == row[3]
    for k, item in enumerate(report["items"]):
        done, n = row[4 + 2 * k], row[5 + 2 * k]
        assert (item["n"], item["pass_rate"]) == (n, round(done / n, 4))


def test_a_period_limits_the_numbers(store: Store) -> None:
    week = Period(START, START + dt.timedelta(days=6))
    report = agent_report(store.engine, "A104", week, training())
    assert [w["week"] for w in report["weekly"]] == ["2026-W41"]
    assert report["conversations"] == len([r for r in exported(store, week) if r["agent_id"] == "A104"])


def test_unknown_agent_is_a_coded_error(store: Store) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[E090\].*A999"):
        agent_report(store.engine, "A999", PERIOD, training())


def test_training_map_is_configurable(tmp_path: Any) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("script.restate: 复述训练营\ncourtesy: [礼仪课]\n", encoding="utf-8")
    assert load_training_map(path) == {"script.restate": ["复述训练营"], "courtesy": ["礼仪课"]}
    path.write_text("script.restat: 复述\n", encoding="utf-8")
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="E091"):
        check_training_map(load_training_map(path))
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_training_map(path)


def test_a_reviewed_item_changes_the_report(empty_store: Store, judged: Judged) -> None:
    """Values in force: a reviewer marking one restatement as not done moves the pass rate and the score."""
    mine = [a for a in judged.analyses if a.result.agent_id == "A101"][:12]
    for a in mine:
        empty_store.save_analysis(a)
    before = agent_report(empty_store.engine, "A101", PERIOD, training())
    done = [a for a in mine if a.result.script["restate"]]
    target = done[0].result.id
    empty_store.decide(target, [("script.restate", False, "只问了房号，没有复述问题")], by="qa01", kind="review")
    after = agent_report(empty_store.engine, "A101", PERIOD, training())
    rate_of = {r["item"]: r for r in before["items"]}["script.restate"]
    now = {r["item"]: r for r in after["items"]}["script.restate"]
    n = rate_of["n"]
    assert now["pass_rate"] == round(round(rate_of["pass_rate"] * n) / n - 1 / n, 4)
    assert now["team_rate"] < rate_of["team_rate"]
    # the scorecard deducts the restatement's weight (10) from that conversation: the mean moves by 10 / n
    assert after["score_mean"] == pytest.approx(before["score_mean"] - 10 / before["conversations"], abs=0.1)
    # and the weakest list now has the restatement with the reviewed conversation as an example
    weak = {w["item"]: w for w in after["weakest"]}
    if "script.restate" in weak:
        assert target in [e["conversation_id"] for e in weak["script.restate"]["examples"]]
