"""Per-agent weak-skill report (REPORTS.md "Per agent"): pass rates against team and company, the score by
ISO week, the weakest items with example turns and their training modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from pipeline.errors import ConfigError
from pipeline.reports import queries as q
from pipeline.reports.queries import ITEMS, Period, Scope
from pipeline.schema import SCRIPT_ITEMS

MAX_WEAKEST = 3
SCRIPT_ORDER = SCRIPT_ITEMS  # the order a conversation follows the script
EXAMPLES = 3


def _rates(mine: q.Totals, team: q.Totals, company: q.Totals) -> list[dict[str, Any]]:
    return [
        {"item": item, "n": mine.judged[item], "pass_rate": mine.pass_rate(item),
         "team_rate": team.pass_rate(item), "company_rate": company.pass_rate(item)}
        for item in ITEMS
    ]


def _example_turn(item: str, turns: Sequence[tuple[int, str, str]],
                  evidence: Mapping[str, Sequence[int]]) -> int | None:
    """Which agent turn shows the missed item. The judges' evidence turn for the item itself if there is one
    (e.g. the turn that pushed the resident away); else where the script says the item belongs, skipping the
    turns that are evidence of other items (the greeting, the check, the closing…): the opening for the
    greeting, the first remaining reply to the resident for the check and the restatement, the last
    remaining reply for the commitment, the last reply for the closing and the farewell."""
    agent = [t for t, role, _ in turns if role == "agent"]
    if not agent:
        return None
    for t in evidence.get(item, []):
        if t in agent:
            return t
    name = item.removeprefix("script.")
    if name == "greeting":
        return agent[0]
    if name in ("closing", "farewell"):
        return agent[-1]
    first_customer = next((t for t, role, _ in turns if role == "customer"), -1)
    taken = {t for other, ts in evidence.items() if other != item for t in ts}
    after = [t for t in agent if t > first_customer]
    free = [t for t in after if t not in taken]
    if free:
        return free[-1] if name == "commitment" else free[0]
    # every reply is another item's evidence: show the reply where the agent moved on instead (a missed
    # restatement → the commitment that came straight after the check)
    order = [i for i in SCRIPT_ORDER if i != "ownership"]
    later = order[order.index(name) + 1:] if name in order else []
    for nxt in later:
        hits = [t for t in evidence.get(f"script.{nxt}", []) if t in agent]
        if hits:
            return hits[0]
    return (after or agent)[0]


def examples(conn: Any, agent_id: str, period: Period, item: str, limit: int = EXAMPLES) -> list[dict[str, Any]]:
    ids = q.missed_conversations(conn, agent_id, period, item, limit)
    by_id = q.conversation_turns(conn, ids)
    evidence = q.evidence_turns(conn, ids)
    out = []
    for cid in ids:
        turns = by_id.get(cid, [])
        t = _example_turn(item, turns, evidence.get(cid, {}))
        if t is None:
            continue
        text = next(x for i, _, x in turns if i == t)
        out.append({"conversation_id": cid, "turn": t, "text": text})
    return out


def weakest(items: Sequence[Mapping[str, Any]], limit: int = MAX_WEAKEST) -> list[tuple[str, float, float]]:
    """(item, pass_rate, gap_to_team) of the items below the team, most negative gap first, at most ``limit``."""
    gaps = [
        (r["item"], r["pass_rate"], round(r["pass_rate"] - r["team_rate"], 4))
        for r in items
        if r["pass_rate"] is not None and r["team_rate"] is not None and r["pass_rate"] < r["team_rate"]
    ]
    gaps.sort(key=lambda g: (g[2], g[0]))
    return gaps[:limit]


def agent_report(engine: Engine, agent_id: str, period: Period, training: Mapping[str, list[str]]) -> dict[str, Any]:
    """The report as the spec's JSON object (values in force)."""
    with engine.connect() as conn:
        who = q.identity(conn, agent_id, period)
        if who is None:
            raise ConfigError("E090", detail=f"no conversations of agent {agent_id!r} are stored")
        mine = q.totals(conn, Scope("agent", agent_id), period)
        team = q.totals(conn, Scope("team", who["team"]), period)
        company = q.totals(conn, Scope("company"), period)
        items = _rates(mine, team, company)
        weak = [
            {"item": item, "pass_rate": rate, "gap_to_team": gap,
             "examples": examples(conn, agent_id, period, item), "training": list(training.get(item, []))}
            for item, rate, gap in weakest(items)
        ]
        days = q.daily(conn, Scope("agent", agent_id), period)
    return {
        "agent_id": agent_id, "agent_name": who["agent_name"], "team": who["team"],
        "from": period.start.isoformat(), "to": period.end.isoformat(),
        "conversations": mine.conversations, "score_mean": mine.score_mean, "critical": mine.critical,
        "items": items,
        "courtesy": {"violations": mine.courtesy_violations, "per_100": mine.per_100,
                     "team_per_100": team.per_100, "company_per_100": company.per_100},
        "weekly": q.weekly(days),
        "weakest": weak,
    }


def tables(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every table of the report, flat, for --csv."""
    return {
        "summary": [{k: report[k] for k in ("agent_id", "agent_name", "team", "from", "to", "conversations",
                                            "score_mean", "critical")} | report["courtesy"]],
        "items": list(report["items"]),
        "weekly": list(report["weekly"]),
        "weakest": [{"item": w["item"], "pass_rate": w["pass_rate"], "gap_to_team": w["gap_to_team"],
                     "training": "；".join(w["training"])} for w in report["weakest"]],
        "examples": [{"item": w["item"], **e} for w in report["weakest"] for e in w["examples"]],
    }


def check_training_map(training: Mapping[str, list[str]]) -> None:
    unknown = sorted(set(training) - set(ITEMS) - {"courtesy"})
    if unknown:
        raise ConfigError("E091", detail=f"unknown items {unknown}; expected script.<item> or courtesy")
