"""SQL aggregates over the store's in-force columns: every number of every report comes from here.

The reports never load result records into Python: each question is one aggregate query (GROUP BY over
indexed columns: (agent_id, date), (team, date), (site, date), (date)), and Python only combines the few
rows that come back. The in-force columns (``script_*``, ``courtesy_violations``, ``score``, ``critical``,
``flag_text``, ``complaint_type``, ``escalation_risk``) already carry reviewers' and rulings' decisions, so
every number here is the value in force.

The tables are described with SQLAlchemy Core (``table()``/``column()``), not the ORM models: the queries
need only the columns named here, and this module stays independent of how the models evolve.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from pipeline.schema import SCRIPT_ITEMS

# -- the columns the reports read ------------------------------------------------------------------

conversations = table(
    "conversations",
    column("id", String), column("date", Date), column("channel", String), column("agent_id", String),
    column("agent_name", String), column("team", String), column("site", String),
    column("started_at", DateTime), column("status", String), column("score", Float),
    column("critical", Boolean), column("flag_text", String), column("complaint_type", String),
    column("escalation_risk", Boolean), column("courtesy_violations", Integer),
    column("customer_ref", String), column("room", String), column("first_response_seconds", Float),
    *(column(f"script_{item}", Boolean) for item in SCRIPT_ITEMS),
)
turns = table(
    "turns", column("conversation_id", String), column("turn", Integer), column("role", String),
    column("text", Text),
)
findings = table(
    "findings", column("conversation_id", String), column("item", String), column("evidence", JSON),
)
C = conversations.c

ITEMS: tuple[str, ...] = tuple(f"script.{i}" for i in SCRIPT_ITEMS)
FLAGS: tuple[str, ...] = ("critical", "low_score", "escalation_risk", "dead_air", "angry_customer", "low_confidence")
# Contacts that are not complaints: neither a spike nor a repeat complaint (a resident asking twice about the
# opening hours, or thanking twice, is not a complaint getting worse).
NOT_COMPLAINTS: tuple[str, ...] = ("inquiry", "praise")
REPEAT_DAYS = 7

ScopeKind = Literal["agent", "team", "site", "company"]


@dataclass(frozen=True)
class Scope:
    """Whose conversations: one agent, one team, one site, or everyone (``company``)."""

    kind: ScopeKind
    value: str = ""

    def where(self) -> ColumnElement[bool]:
        if self.kind == "company":
            return literal(True)
        col = {"agent": C.agent_id, "team": C.team, "site": C.site}[self.kind]
        return col == self.value


@dataclass(frozen=True)
class Period:
    """Inbox dates, both ends included."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        return cls(_date(start), _date(end))

    @classmethod
    def parse_range(cls, text: str) -> Period:
        """``2026-10-01..2026-10-31`` (or a single day)."""
        start, sep, end = text.partition("..")
        return cls.parse(start, end if sep else start)

    def where(self) -> ColumnElement[bool]:
        return C.date.between(self.start, self.end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {text!r}") from None


def analysed(scope: Scope, period: Period) -> ColumnElement[bool]:
    return and_(C.status == "ok", scope.where(), period.where())


def _true(col: Any, only: Any = None) -> Any:
    """1 where a boolean column is true (and ``only`` holds), else 0; NULL counts as not done (not judged)."""
    cond = col.is_(True) if only is None else and_(only, col.is_(True))
    return func.sum(case((cond, 1), else_=0))


def _counted(col: Any, only: Any = None) -> Any:
    return func.count(col if only is None else case((only, col)))


def _sum(x: Any, only: Any = None) -> Any:
    return func.sum(x if only is None else case((only, x)))


# -- rounding: the JSON shows these precisions, and the tests compare at the same ones ----------------

def rate(k: float, n: float) -> float | None:
    return round(k / n, 4) if n else None


def mean1(total: float | None, n: int) -> float | None:
    return round(total / n, 1) if n and total is not None else None


# -- per-scope totals ------------------------------------------------------------------------------

@dataclass
class Totals:
    """What one scope did in one period: counts, sums, and per-item done / judged."""

    conversations: int
    score_sum: float
    score_sq_sum: float
    scored: int
    critical: int
    escalations: int
    courtesy_violations: int
    courtesy_clean: int  # conversations without any courtesy violation
    done: dict[str, int]  # item -> conversations where it was done
    judged: dict[str, int]  # item -> conversations where it was judged at all (not NULL)

    @property
    def score_mean(self) -> float | None:
        return mean1(self.score_sum, self.scored)

    def pass_rate(self, item: str) -> float | None:
        return rate(self.done[item], self.judged[item])

    @property
    def per_100(self) -> float | None:
        return round(100.0 * self.courtesy_violations / self.conversations, 2) if self.conversations else None


def _totals_columns(only: Any = None, prefix: str = "") -> list[Any]:
    """The aggregates of ``Totals``; with ``only``, over the rows where it holds (CASE inside each aggregate;
    measured slower on PostgreSQL than a second, indexed query, so the reports do not combine scopes)."""
    one = literal(1) if only is None else case((only, 1), else_=0)
    cols: list[Any] = [
        func.coalesce(func.sum(one), 0).label(f"{prefix}conversations"),
        func.coalesce(_sum(C.score, only), 0.0).label(f"{prefix}score_sum"),
        func.coalesce(_sum(C.score * C.score, only), 0.0).label(f"{prefix}score_sq_sum"),
        _counted(C.score, only).label(f"{prefix}scored"),
        func.coalesce(_true(C.critical, only), 0).label(f"{prefix}critical"),
        func.coalesce(_true(C.escalation_risk, only), 0).label(f"{prefix}escalations"),
        func.coalesce(_sum(C.courtesy_violations, only), 0).label(f"{prefix}courtesy_violations"),
        func.coalesce(_sum(case((func.coalesce(C.courtesy_violations, 0) == 0, 1), else_=0), only), 0)
        .label(f"{prefix}courtesy_clean"),
    ]
    for item in SCRIPT_ITEMS:
        col = C[f"script_{item}"]
        cols += [func.coalesce(_true(col, only), 0).label(f"{prefix}done_{item}"),
                 _counted(col, only).label(f"{prefix}judged_{item}")]
    return cols


def _totals(row: Any, prefix: str = "") -> Totals:
    m = row._mapping
    return Totals(
        conversations=int(m[f"{prefix}conversations"]), score_sum=float(m[f"{prefix}score_sum"]),
        score_sq_sum=float(m[f"{prefix}score_sq_sum"]), scored=int(m[f"{prefix}scored"]),
        critical=int(m[f"{prefix}critical"]), escalations=int(m[f"{prefix}escalations"]),
        courtesy_violations=int(m[f"{prefix}courtesy_violations"]),
        courtesy_clean=int(m[f"{prefix}courtesy_clean"]),
        done={f"script.{i}": int(m[f"{prefix}done_{i}"]) for i in SCRIPT_ITEMS},
        judged={f"script.{i}": int(m[f"{prefix}judged_{i}"]) for i in SCRIPT_ITEMS},
    )


def totals(conn: Connection, scope: Scope, period: Period) -> Totals:
    return _totals(conn.execute(select(*_totals_columns()).where(analysed(scope, period))).one())


def totals_by(conn: Connection, key: Any, scope: Scope, period: Period) -> dict[str, Totals]:
    """Totals per value of ``key`` (e.g. per agent of a team), one GROUP BY."""
    q = select(key.label("k"), *_totals_columns()).where(analysed(scope, period)).group_by(key)
    return {str(r.k): _totals(r) for r in conn.execute(q)}


def identity(conn: Connection, agent_id: str, period: Period) -> dict[str, str] | None:
    """The agent's name, team and site as of their latest analysed conversation in the period (a failed one
    may carry no team)."""
    q = (select(C.agent_name, C.team, C.site).where(C.agent_id == agent_id, period.where())
         .order_by((C.status == "ok").desc(), C.date.desc(), C.id.desc()).limit(1))
    row = conn.execute(q).first()
    if row is None:  # none in the period: the latest ever, so a report on a quiet month still names them
        row = conn.execute(select(C.agent_name, C.team, C.site).where(C.agent_id == agent_id)
                           .order_by((C.status == "ok").desc(), C.date.desc(), C.id.desc()).limit(1)).first()
    return None if row is None else {"agent_name": row.agent_name, "team": row.team, "site": row.site}


# -- by day / ISO week -----------------------------------------------------------------------------

def daily(conn: Connection, scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Per day: conversations, score sum, escalations, and conversations carrying each flag."""
    flag_cols = [
        func.sum(case((C.flag_text.like(f"% {f} %"), 1), else_=0)).label(f"flag_{f}") for f in FLAGS
    ]
    q = (
        select(C.date, func.count().label("n"), func.coalesce(func.sum(C.score), 0.0).label("score_sum"),
               func.count(C.score).label("scored"), func.coalesce(_true(C.escalation_risk), 0).label("esc"),
               func.sum(case((and_(C.flag_text.is_not(None), C.flag_text != "", C.flag_text != " "), 1),
                             else_=0)).label("flagged"),
               *flag_cols)
        .where(analysed(scope, period)).group_by(C.date).order_by(C.date)
    )
    out = []
    for r in conn.execute(q):
        m = r._mapping
        day = m["date"] if isinstance(m["date"], dt.date) else dt.date.fromisoformat(str(m["date"]))
        out.append({"date": day, "n": int(m["n"]), "score_sum": float(m["score_sum"]), "scored": int(m["scored"]),
                    "escalations": int(m["esc"] or 0), "flagged": int(m["flagged"] or 0),
                    "flags": {f: int(m[f"flag_{f}"] or 0) for f in FLAGS}})
    return out


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weekly(days: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ISO weeks from the per-day rows (portable: SQLite has no ISO week function)."""
    weeks: dict[str, list[float]] = {}
    for d in days:
        w = weeks.setdefault(iso_week(d["date"]), [0, 0.0, 0])
        w[0] += d["n"]
        w[1] += d["score_sum"]
        w[2] += d["scored"]
    return [{"week": k, "conversations": int(n), "score_mean": mean1(s, int(k2))}
            for k, (n, s, k2) in sorted(weeks.items())]


# -- distributions from histograms (portable percentiles) ------------------------------------------

def histogram(conn: Connection, col: Any, where: ColumnElement[bool]) -> list[tuple[float, int]]:
    """(value, count) of every distinct non-NULL value, ascending: scores take few distinct values and
    chat reply delays are whole seconds, so this is a short list even over a quarter."""
    q = select(col.label("v"), func.count().label("n")).where(where, col.is_not(None)).group_by(col).order_by(col)
    return [(float(r.v), int(r.n)) for r in conn.execute(q)]


def percentile(hist: Sequence[tuple[float, int]], q: float) -> float | None:
    """The q-quantile (0–1) with linear interpolation between closest ranks — PostgreSQL's
    ``percentile_cont`` and numpy's default — computed from a histogram."""
    n = sum(c for _, c in hist)
    if n == 0:
        return None
    pos = (n - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)

    def at(rank: int) -> float:
        seen = 0
        for v, c in hist:
            seen += c
            if rank < seen:
                return v
        return hist[-1][0]

    a, b = at(lo), at(hi)
    return a + (pos - lo) * (b - a)


def deciles(hist: Sequence[tuple[float, int]]) -> list[dict[str, Any]]:
    """p0 (min), p10 … p90, p100 (max)."""
    out = []
    for k in range(11):
        v = percentile(hist, k / 10)
        out.append({"p": k * 10, "score": None if v is None else round(v, 1)})
    return out


# -- complaint mix ---------------------------------------------------------------------------------

def complaint_mix(conn: Connection, scope: Scope, period: Period) -> list[dict[str, Any]]:
    q = (select(C.complaint_type, func.count().label("n")).where(analysed(scope, period), C.complaint_type.is_not(None))
         .group_by(C.complaint_type))
    rows = [(str(r.complaint_type), int(r.n)) for r in conn.execute(q)]
    total = sum(n for _, n in rows)
    rows.sort(key=lambda kv: (-kv[1], kv[0]))
    return [{"complaint_type": t, "count": n, "share": rate(n, total)} for t, n in rows]


# -- chat first response ---------------------------------------------------------------------------

def first_response(conn: Connection, scope: Scope, period: Period, sla_seconds: float) -> dict[str, Any]:
    where = and_(analysed(scope, period), C.channel == "chat")
    hist = histogram(conn, C.first_response_seconds, where)
    n = sum(c for _, c in hist)
    within = sum(c for v, c in hist if v <= sla_seconds)
    med, p90 = percentile(hist, 0.5), percentile(hist, 0.9)
    chats = conn.execute(select(func.count()).where(where)).scalar_one()
    return {
        "chats": int(chats), "measured": n,
        "median_seconds": None if med is None else round(med, 1),
        "p90_seconds": None if p90 is None else round(p90, 1),
        "sla_minutes": round(sla_seconds / 60, 2), "within_sla": rate(within, n),
    }


# -- repeat complaints -----------------------------------------------------------------------------

def is_complaint() -> ColumnElement[bool]:
    return and_(C.complaint_type.is_not(None), C.complaint_type.not_in(NOT_COMPLAINTS))


class days_since(FunctionElement[int]):
    """Whole days from ``earlier`` to ``later`` (two dates) in each dialect's own words."""

    type = Integer()
    inherit_cache = True
    name = "days_since"


@compiles(days_since)
def _days_since_default(element: days_since, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"  # PostgreSQL: date - date


@compiles(days_since, "sqlite")
def _days_since_sqlite(element: days_since, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (f"CAST(julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})"
            " AS INTEGER)")


def repeat_rate(conn: Connection, scope: Scope, period: Period) -> dict[str, Any]:
    """Share of the scope's complaints in the period that repeat an earlier one (same customer, or same room of
    the same site, same type, within 7 days; the earlier one may be anyone's and may fall before the period).

    One pass with window functions: a complaint repeats an earlier one within 7 days exactly when the
    previous contact of the same key and type (LAG, in order of date, start time, id) is within 7 days —
    an index-free self-join per conversation would be quadratic over a quarter."""
    window_start = period.start - dt.timedelta(days=REPEAT_DAYS)
    order = (C.date, C.started_at, C.id)
    has_ref = and_(C.customer_ref.is_not(None), C.customer_ref != "")
    has_room = and_(C.room.is_not(None), C.room != "")
    contacts = (
        select(
            C.id, C.date, C.agent_id, C.team, C.site,
            case((has_ref, 1), else_=0).label("has_ref"), case((has_room, 1), else_=0).label("has_room"),
            func.lag(C.date).over(partition_by=(C.customer_ref, C.complaint_type), order_by=order).label("prev_c"),
            func.lag(C.date).over(partition_by=(C.site, C.room, C.complaint_type), order_by=order).label("prev_r"),
        )
        .where(C.status == "ok", is_complaint(), C.date.between(window_start, period.end))
        .subquery("contacts")
    )
    k = contacts.c
    repeat = or_(
        and_(k.has_ref == 1, k.prev_c.is_not(None), days_since(k.date, k.prev_c) <= REPEAT_DAYS),
        and_(k.has_room == 1, k.prev_r.is_not(None), days_since(k.date, k.prev_r) <= REPEAT_DAYS),
    )
    in_scope = literal(True) if scope.kind == "company" else (
        {"agent": k.agent_id, "team": k.team, "site": k.site}[scope.kind] == scope.value)
    q = select(func.count().label("n"), func.coalesce(func.sum(case((repeat, 1), else_=0)), 0).label("k")).where(
        in_scope, k.date.between(period.start, period.end))
    r = conn.execute(q).one()
    return {"complaints": int(r.n), "repeats": int(r.k), "rate": rate(int(r.k), int(r.n)),
            "window_days": REPEAT_DAYS}


# -- example turns ---------------------------------------------------------------------------------

def missed_conversations(conn: Connection, agent_id: str, period: Period, item: str, limit: int) -> list[str]:
    """The agent's latest conversations where ``item`` is missed in force."""
    col = C[f"script_{item.removeprefix('script.')}"]
    q = (select(C.id).where(analysed(Scope("agent", agent_id), period), col.is_(False))
         .order_by(C.date.desc(), C.id.desc()).limit(limit))
    return [str(i) for i in conn.scalars(q)]


def conversation_turns(conn: Connection, ids: Sequence[str]) -> dict[str, list[tuple[int, str, str]]]:
    if not ids:
        return {}
    q = (select(turns.c.conversation_id, turns.c.turn, turns.c.role, turns.c.text)
         .where(turns.c.conversation_id.in_(list(ids))).order_by(turns.c.conversation_id, turns.c.turn))
    out: dict[str, list[tuple[int, str, str]]] = {i: [] for i in ids}
    for r in conn.execute(q):
        out[str(r.conversation_id)].append((int(r.turn), str(r.role), str(r.text)))
    return out


def evidence_turns(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, list[int]]]:
    """Per conversation, per script item, the turns the judges cited (e.g. the greeting turn, or the turn that
    pushed the resident away for a missed ownership): example turns are picked around them."""
    if not ids:
        return {}
    q = select(findings.c.conversation_id, findings.c.item, findings.c.evidence).where(
        findings.c.conversation_id.in_(list(ids)), findings.c.item.like("script.%"))
    out: dict[str, dict[str, list[int]]] = {}
    for r in conn.execute(q):
        ev = r.evidence if isinstance(r.evidence, list) else []
        out.setdefault(str(r.conversation_id), {}).setdefault(str(r.item), []).extend(
            int(e["turn"]) for e in ev if isinstance(e, dict) and isinstance(e.get("turn"), int))
    return out


def select_ids(q: Select[Any], conn: Connection) -> list[str]:
    return [str(i) for i in conn.scalars(q)]
