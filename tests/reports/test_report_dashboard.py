"""Team and site dashboards over the judged weeks, every number against the exported records (and, for the
first-response times and repeats, against the generated inbox itself)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from statistics import fmean
from typing import Any

import numpy as np
import pytest
from conftest import END, START, Judged
from sqlalchemy import text
from test_report_agent import PERIOD, exported, rate

from pipeline.reports.dashboard import group_report
from pipeline.reports.queries import FLAGS, ITEMS
from pipeline.store import Store

SLA = 30.0


def scope_records(store: Store, kind: str, name: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        sites: dict[str, str] = dict(conn.execute(text("SELECT id, site FROM conversations")).all())
    records = [{**r, "site": sites[r["id"]]} for r in exported(store)]
    return [r for r in records if r[kind] == name]


def first_response(chat: dict[str, Any]) -> float | None:
    msgs = chat["messages"]
    first = next((m for m in msgs if m["role"] == "customer"), None)
    if first is None:
        return None
    reply = next((m for m in msgs[msgs.index(first) + 1:] if m["role"] == "agent"), None)
    if reply is None:
        return None
    return (dt.datetime.fromisoformat(reply["at"]) - dt.datetime.fromisoformat(first["at"])).total_seconds()


def repeats_brute_force(records: list[dict[str, Any]], every: list[dict[str, Any]],
                        chats: dict[str, dict[str, Any]]) -> int:
    """How many of ``records`` repeat an earlier complaint (of anyone: ``every``) by the same customer or room;
    customer, room and start time are read from the generated chats, not from the store."""
    def when(c: dict[str, Any]) -> tuple[str, str, str]:
        return (c["date"], c["started_at"], c["id"])

    everyone = [{**chats[r["id"]], "type": r["complaint_type"], "date": r["date"]} for r in every]
    n = 0
    for r in records:
        c = {**chats[r["id"]], "type": r["complaint_type"], "date": r["date"]}
        if c["type"] in ("inquiry", "praise"):
            continue
        for p in everyone:
            if p["type"] != c["type"] or when(p) >= when(c):
                continue
            if (dt.date.fromisoformat(c["date"]) - dt.date.fromisoformat(p["date"])).days > 7:
                continue
            same_customer = c.get("customer_ref") and p.get("customer_ref") == c["customer_ref"]
            same_room = c.get("room") and p.get("room") == c["room"] and p["site"] == c["site"]
            if same_customer or same_room:
                n += 1
                break
    return n


@pytest.mark.parametrize(("kind", "name"), [("team", "海棠湾夜班组"), ("site", "阳光花园"), ("team", "阳光花园客服组")])
def test_every_number_matches(store: Store, judged: Judged, kind: str, name: str) -> None:
    report = group_report(store.engine, kind, name, PERIOD, SLA)  # type: ignore[arg-type]
    mine = scope_records(store, kind, name)
    scores = [r["score"] for r in mine]
    assert (report[kind], report["from"], report["to"]) == (name, START.isoformat(), END.isoformat())
    assert report["conversations"] == len(mine) > 0
    assert report["score_mean"] == round(fmean(scores), 1)
    assert report["critical"] == sum(r["critical"] for r in mine)
    assert report["score_deciles"] == [{"p": k * 10, "score": round(float(np.percentile(scores, k * 10)), 1)}
                                       for k in range(11)]
    # agents ranked by mean score, each with their weakest item against the scope
    agents = sorted({r["agent_id"] for r in mine})
    assert report["agents"] == len(agents)
    expected = []
    for a in agents:
        theirs = [r for r in mine if r["agent_id"] == a]
        gaps = sorted((round(rate(theirs, i[7:]) - rate(mine, i[7:]), 4), i) for i in ITEMS   # type: ignore[operator]
                      if rate(theirs, i[7:]) < rate(mine, i[7:]))  # type: ignore[operator]
        expected.append({"agent_id": a, "conversations": len(theirs),
                         "score_mean": round(fmean(x["score"] for x in theirs), 1),
                         "critical": sum(x["critical"] for x in theirs),
                         "weakest_item": gaps[0][1] if gaps else None, "gap": gaps[0][0] if gaps else None})
    expected.sort(key=lambda e: (-e["score_mean"], e["agent_id"]))
    got = [{k: r[k] for k in ("agent_id", "conversations", "score_mean", "critical", "weakest_item", "gap")}
           for r in report["agents_ranked"]]
    assert got == expected
    assert [r["rank"] for r in report["agents_ranked"]] == list(range(1, len(agents) + 1))
    # complaint-type mix
    mix = Counter(r["complaint_type"] for r in mine)
    assert report["complaint_mix"] == [
        {"complaint_type": t, "count": c, "share": round(c / len(mine), 4)}
        for t, c in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))]
    # flags per day
    days = sorted({r["date"] for r in mine})
    assert report["flags_per_day"] == [
        {"date": d, "conversations": sum(1 for r in mine if r["date"] == d),
         "flagged": sum(1 for r in mine if r["date"] == d and r["flags"]),
         **{f: sum(1 for r in mine if r["date"] == d and f in r["flags"]) for f in FLAGS}} for d in days]
    # escalation rate
    esc = sum(r["escalation_risk"] for r in mine)
    assert report["escalation"] == {"escalations": esc, "conversations": len(mine), "rate": round(esc / len(mine), 4)}
    # chat first response, from the generated messages' own times
    waits = [w for r in mine if (w := first_response(judged.chats[r["id"]])) is not None]
    fr = report["first_response"]
    assert fr["chats"] == sum(1 for r in mine if r["channel"] == "chat")
    assert fr["measured"] == len(waits) > 0
    assert fr["median_seconds"] == round(float(np.median(waits)), 1)
    assert fr["p90_seconds"] == round(float(np.percentile(waits, 90)), 1)
    assert fr["within_sla"] == round(sum(w <= SLA * 60 for w in waits) / len(waits), 4)
    assert fr["sla_minutes"] == SLA
    # repeat complaints: same customer or room, same type, within 7 days, earlier contact anywhere
    rep = report["repeat_complaints"]
    complaints = [r for r in mine if r["complaint_type"] not in ("inquiry", "praise")]
    assert rep["complaints"] == len(complaints)
    assert rep["repeats"] == repeats_brute_force(mine, exported(store), judged.chats)
    assert rep["rate"] == round(rep["repeats"] / rep["complaints"], 4)


def test_slow_agent_misses_the_sla(store: Store) -> None:
    """黄磊 (A205) answers chats after ~40 minutes: his team's SLA share is the lowest."""
    night = group_report(store.engine, "team", "海棠湾夜班组", PERIOD, SLA)
    day = group_report(store.engine, "team", "海棠湾客服组", PERIOD, SLA)
    assert night["first_response"]["within_sla"] < day["first_response"]["within_sla"]
    assert night["first_response"]["p90_seconds"] > SLA * 60


def test_deciles_match_postgres_percentile_cont(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("percentile_cont is PostgreSQL's")
    report = group_report(store.engine, "site", "海棠湾", PERIOD, SLA)
    with store.engine.connect() as conn:
        for d in report["score_deciles"]:
            want = conn.execute(text(
                "SELECT percentile_cont(:q) WITHIN GROUP (ORDER BY score) FROM conversations "
                "WHERE status = 'ok' AND site = :s AND date BETWEEN :f AND :t"),
                {"q": d["p"] / 100, "s": "海棠湾", "f": START, "t": END}).scalar_one()
            assert d["score"] == round(want, 1)


def test_unknown_team_is_a_coded_error(store: Store) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="E090"):
        group_report(store.engine, "team", "没有这个组", PERIOD, SLA)
