"""Before/after (``zhijian report compare``): did a course move the skills it was meant to move?

For each script item (and ``courtesy`` = share of conversations without a courtesy violation) the pass rates
before and after are compared with a **two-proportion z-test** (pooled, two-sided):
p̂ = (x₁+x₂)/(n₁+n₂), z = (p₂−p₁) / √(p̂(1−p̂)(1/n₁+1/n₂)), p = erfc(|z|/√2). A change is **"larger than
noise"** when p < 0.05, else "within noise"; with no conversations on one side, "not enough data". The mean
score is compared with Welch's t-test (from the sums and sums of squares the database returns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from scipy.special import stdtr
from sqlalchemy import Engine

from pipeline.errors import ConfigError
from pipeline.reports import queries as q
from pipeline.reports.queries import ITEMS, Period, Scope

ALPHA = 0.05
TEST = "two-proportion z-test (pooled, two-sided), alpha 0.05; score: Welch's t-test"


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, float | None]:
    """(z, two-sided p) of the change from x1/n1 to x2/n2; (None, None) when a side is empty."""
    if n1 == 0 or n2 == 0:
        return None, None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # both sides all done or all missed: no change, nothing to test
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def welch(t1: q.Totals, t2: q.Totals) -> tuple[float | None, float | None]:
    n1, n2 = t1.scored, t2.scored
    if n1 < 2 or n2 < 2:
        return None, None
    m1, m2 = t1.score_sum / n1, t2.score_sum / n2
    v1 = max(0.0, (t1.score_sq_sum - n1 * m1 * m1) / (n1 - 1))
    v2 = max(0.0, (t2.score_sq_sum - n2 * m2 * m2) / (n2 - 1))
    se2 = v1 / n1 + v2 / n2
    if se2 == 0:
        return 0.0, 1.0 if m1 == m2 else 0.0
    t = (m2 - m1) / math.sqrt(se2)
    df = se2 * se2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1)) if v1 + v2 > 0 else n1 + n2 - 2
    return t, float(2 * stdtr(df, -abs(t)))


def verdict(p: float | None) -> str:
    if p is None:
        return "not enough data"
    return "larger than noise" if p < ALPHA else "within noise"


def _side(t: q.Totals, period: Period) -> dict[str, Any]:
    return {"from": period.start.isoformat(), "to": period.end.isoformat(), "conversations": t.conversations,
            "score_mean": t.score_mean}


def _row(item: str, x1: int, n1: int, x2: int, n2: int) -> dict[str, Any]:
    z, p = two_proportion(x1, n1, x2, n2)
    r1, r2 = q.rate(x1, n1), q.rate(x2, n2)
    change = round(x2 / n2 - x1 / n1, 4) if n1 and n2 else None
    return {"item": item, "before_n": n1, "before_rate": r1, "after_n": n2, "after_rate": r2, "change": change,
            "z": None if z is None else round(z, 3), "p": None if p is None else float(f"{p:.4g}"),
            "verdict": verdict(p),
            "direction": None if change is None else ("better" if change > 0 else "worse" if change < 0 else "same")}


def compare_report(engine: Engine, kind: Literal["agent", "team"], key: str, before: Period,
                   after: Period) -> dict[str, Any]:
    scope = Scope(kind, key)
    with engine.connect() as conn:
        who = q.identity(conn, key, after) if kind == "agent" else None
        if kind == "agent" and who is None:
            raise ConfigError("E090", detail=f"no conversations of agent {key!r} are stored")
        t1, t2 = q.totals(conn, scope, before), q.totals(conn, scope, after)
    if kind == "team" and t1.conversations + t2.conversations == 0:
        raise ConfigError("E090", detail=f"team {key!r} has no analysed conversations in either period")
    items = [_row(i, t1.done[i], t1.judged[i], t2.done[i], t2.judged[i]) for i in ITEMS]
    items.append(_row("courtesy", t1.courtesy_clean, t1.conversations, t2.courtesy_clean, t2.conversations))
    t, p = welch(t1, t2)
    head: dict[str, Any] = {"scope": kind, kind: key}
    if who is not None:
        head |= {"agent_name": who["agent_name"], "team": who["team"]}
    change = (round(t2.score_sum / t2.scored - t1.score_sum / t1.scored, 2) if t1.scored and t2.scored else None)
    return head | {
        "before": _side(t1, before), "after": _side(t2, after), "test": TEST, "alpha": ALPHA,
        "items": items,
        "score": {"before_mean": t1.score_mean, "after_mean": t2.score_mean, "change": change,
                  "t": None if t is None else round(t, 3), "p": None if p is None else float(f"{p:.4g}"),
                  "verdict": verdict(p)},
    }


def tables(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {"items": list(report["items"]),
            "score": [{"before_from": report["before"]["from"], "before_to": report["before"]["to"],
                       "after_from": report["after"]["from"], "after_to": report["after"]["to"],
                       **report["score"]}]}
