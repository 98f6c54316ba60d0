"""Team and site dashboards (REPORTS.md "Per team or site"): score distribution, agents ranked with their
weakest item, complaint-type mix, flags per day, escalation rate, chat first-response time against the SLA,
and the repeat-complaint rate. One builder for both: a team and a site differ only in the column filtered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import Engine, func, select

from pipeline.errors import ConfigError
from pipeline.reports import queries as q
from pipeline.reports.agent import weakest
from pipeline.reports.queries import FLAGS, ITEMS, C, Period, Scope


def group_report(engine: Engine, kind: Literal["team", "site"], name: str, period: Period,
                 sla_minutes: float) -> dict[str, Any]:
    scope = Scope(kind, name)
    with engine.connect() as conn:
        known = conn.execute(select(func.count()).where(scope.where())).scalar_one()
        if not known:
            raise ConfigError("E090", detail=f"no conversations of {kind} {name!r} are stored")
        whole = q.totals(conn, scope, period)
        per_agent = q.totals_by(conn, C.agent_id, scope, period)
        names = {
            str(r[0]): str(r[1] or "") for r in conn.execute(
                select(C.agent_id, func.max(C.agent_name)).where(q.analysed(scope, period)).group_by(C.agent_id))
        }
        hist = q.histogram(conn, C.score, q.analysed(scope, period))
        mix = q.complaint_mix(conn, scope, period)
        days = q.daily(conn, scope, period)
        first = q.first_response(conn, scope, period, sla_minutes * 60)
        repeats = q.repeat_rate(conn, scope, period)

    ranked: list[dict[str, Any]] = []
    for agent_id, t in per_agent.items():
        rates = [{"item": i, "pass_rate": t.pass_rate(i), "team_rate": whole.pass_rate(i)} for i in ITEMS]
        weak = weakest(rates, 1)
        ranked.append({
            "agent_id": agent_id, "agent_name": names.get(agent_id) or "", "conversations": t.conversations,
            "score_mean": t.score_mean, "critical": t.critical,
            "weakest_item": weak[0][0] if weak else None,
            "weakest_pass_rate": weak[0][1] if weak else None,
            "gap": weak[0][2] if weak else None,
        })
    ranked.sort(key=lambda r: (-(r["score_mean"] if r["score_mean"] is not None else -1), r["agent_id"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return {
        kind: name, "from": period.start.isoformat(), "to": period.end.isoformat(),
        "conversations": whole.conversations, "agents": len(per_agent), "score_mean": whole.score_mean,
        "critical": whole.critical,
        "score_deciles": q.deciles(hist),
        "agents_ranked": [{"rank": r.pop("rank"), **r} for r in ranked],
        "complaint_mix": mix,
        "flags_per_day": [{"date": d["date"].isoformat(), "conversations": d["n"], "flagged": d["flagged"],
                           **d["flags"]} for d in days],
        "escalation": {"escalations": whole.escalations, "conversations": whole.conversations,
                       "rate": q.rate(whole.escalations, whole.conversations)},
        "first_response": first,
        "repeat_complaints": repeats,
    }


def tables(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    kind = "team" if "team" in report else "site"
    return {
        "summary": [{"kind": kind, "name": report[kind], "from": report["from"], "to": report["to"],
                     "conversations": report["conversations"], "agents": report["agents"],
                     "score_mean": report["score_mean"], "critical": report["critical"],
                     "escalation_rate": report["escalation"]["rate"],
                     **{f"first_response_{k}": v for k, v in report["first_response"].items()},
                     **{f"repeat_{k}": v for k, v in report["repeat_complaints"].items()}}],
        "score_deciles": list(report["score_deciles"]),
        "agents_ranked": list(report["agents_ranked"]),
        "complaint_mix": list(report["complaint_mix"]),
        "flags_per_day": list(report["flags_per_day"]),
    }


__all__ = ["FLAGS", "group_report", "tables"]
