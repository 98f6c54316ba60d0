"""Signals for one day (REPORTS.md "Signals"): complaint spikes per site, and repeat complaints.

**Spike.** A complaint type at a site fires on day D when its count on D is at least ``MIN_COUNT`` (3) and
the Poisson upper tail P(X ≥ count | λ) is below ``P_MAX`` (0.01). λ is the baseline's daily mean: the type's
count at the site over the previous 28 days divided by the days among them on which the site had any
analysed conversation (so a site that joined the store last week is not compared with 28 empty days), but
never below ``FLOOR`` = 0.1 a day: with no floor a type never seen before would have λ = 0 and any count
would be infinitely surprising; with 0.1, a first-ever 3 on one day fires (P ≈ 1.5e-4) and a first-ever 1
or 2 never does (count < 3). The reported ``baseline_mean`` is the observed mean, before the floor.

**Repeat complaint.** On day D, a customer (same ``customer_ref``) or a room (same ``room`` at the same
site — room numbers repeat across sites) with a conversation on D and an earlier one about the same
complaint type within 7 days (D−7 … D, same day included). ``conversations`` lists all of that key's
conversations of that type in the window, oldest first; ``days_between`` is the days from the oldest to D.
A pair found by both keys is listed once, under the customer.

Inquiries and praise are not complaints: neither spikes nor repeats (``queries.NOT_COMPLAINTS``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from scipy.special import pdtrc
from sqlalchemy import Connection, Engine, and_, func, select
from sqlalchemy.orm import Session

from pipeline.reports import queries as q
from pipeline.reports.queries import REPEAT_DAYS, C

BASELINE_DAYS = 28
MIN_COUNT = 3
P_MAX = 0.01
FLOOR = 0.1  # baseline events per day at least (see the module docstring)


def poisson_upper_tail(count: int, mean: float) -> float:
    """P(X ≥ count) for X ~ Poisson(mean)."""
    if count <= 0:
        return 1.0
    return float(pdtrc(count - 1, mean))


def spikes(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    ok = and_(C.status == "ok", q.is_complaint())
    today = conn.execute(
        select(C.site, C.complaint_type, func.count().label("n")).where(ok, C.date == day)
        .group_by(C.site, C.complaint_type).having(func.count() >= MIN_COUNT)
    ).all()
    if not today:
        return []
    start, end = day - dt.timedelta(days=BASELINE_DAYS), day - dt.timedelta(days=1)
    sites = sorted({r.site for r in today})
    base = {
        (r.site, r.complaint_type): int(r.n)
        for r in conn.execute(
            select(C.site, C.complaint_type, func.count().label("n"))
            .where(ok, C.date.between(start, end), C.site.in_(sites)).group_by(C.site, C.complaint_type))
    }
    active = {
        str(r[0]): int(r[1]) for r in conn.execute(
            select(C.site, func.count(func.distinct(C.date))).where(C.status == "ok", C.date.between(start, end),
                                                                  C.site.in_(sites)).group_by(C.site))
    }
    out = []
    for r in today:
        days = int(active.get(r.site, 0))
        mean = base.get((r.site, r.complaint_type), 0) / days if days else 0.0
        p = poisson_upper_tail(int(r.n), max(mean, FLOOR))
        if p < P_MAX:
            out.append({"site": r.site, "complaint_type": r.complaint_type, "count": int(r.n),
                        "baseline_mean": round(mean, 3), "p": float(f"{p:.3g}")})
    out.sort(key=lambda s: (s["p"], s["site"], s["complaint_type"]))
    return out


def repeats(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    start = day - dt.timedelta(days=REPEAT_DAYS)
    window = and_(C.status == "ok", q.is_complaint(), C.date.between(start, day))
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for key_cols, label in (((C.customer_ref,), "customer"), ((C.site, C.room), "room")):
        present = and_(*(and_(k.is_not(None), k != "") for k in key_cols[-1:]))
        groups = conn.execute(
            select(C.complaint_type, *key_cols).where(window, present)
            .group_by(C.complaint_type, *key_cols)
            .having(func.count() >= 2, func.max(C.date) == day)
        ).all()
        for g in groups:
            kind, values = g[0], tuple(g[1:])
            match = and_(window, C.complaint_type == kind, *(k == v for k, v in zip(key_cols, values, strict=True)))
            rows = conn.execute(
                select(C.id, C.date).where(match).order_by(C.date, C.started_at, C.id)
            ).all()
            ids = tuple(str(r.id) for r in rows)
            if ids in seen:
                continue
            seen.add(ids)
            oldest = rows[0].date if isinstance(rows[0].date, dt.date) else dt.date.fromisoformat(str(rows[0].date))
            key = f"customer:{values[0]}" if label == "customer" else f"room:{values[0]} {values[1]}"
            found.append({"complaint_type": kind, "key": key, "conversations": list(ids),
                          "days_between": (day - oldest).days})
    found.sort(key=lambda r: (r["complaint_type"], r["key"]))
    return found


def signals(conn: Connection, day: dt.date) -> dict[str, Any]:
    return {"date": day.isoformat(), "spikes": spikes(conn, day), "repeats": repeats(conn, day)}


def signals_for(store_or_session: Any, date: str | dt.date) -> dict[str, Any]:
    """Signals of ``date`` from a Store, an Engine, a Connection or a Session: the nightly summary's hook."""
    day = date if isinstance(date, dt.date) else q.Period.parse(date, date).start
    target = getattr(store_or_session, "engine", store_or_session)
    if isinstance(target, Engine):
        with target.connect() as conn:
            return signals(conn, day)
    if isinstance(target, Session):
        return signals(target.connection(), day)
    if isinstance(target, Connection):
        return signals(target, day)
    raise TypeError(f"signals_for needs a Store, Engine, Connection or Session, got {type(store_or_session)}")
