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
from collections import defaultdict
from typing import Any

from scipy.special import pdtrc
from sqlalchemy import Connection, Engine, and_, func, or_, select
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
    """One indexed range read of the window's complaints (ids, keys, dates: no records), grouped here."""
    start = day - dt.timedelta(days=REPEAT_DAYS)
    has_ref = and_(C.customer_ref.is_not(None), C.customer_ref != "")
    has_room = and_(C.room.is_not(None), C.room != "")
    rows = conn.execute(
        select(C.id, C.date, C.complaint_type, C.customer_ref, C.site, C.room)
        .where(C.status == "ok", q.is_complaint(), C.date.between(start, day), or_(has_ref, has_room))
        .order_by(C.date, C.started_at, C.id)
    ).all()
    groups: dict[tuple[str, ...], list[tuple[str, dt.date]]] = defaultdict(list)
    for r in rows:
        when = r.date if isinstance(r.date, dt.date) else dt.date.fromisoformat(str(r.date))
        if r.customer_ref:
            groups[("customer", r.complaint_type, r.customer_ref)].append((str(r.id), when))
        if r.room:
            groups[("room", r.complaint_type, r.site, r.room)].append((str(r.id), when))
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    # customers first: a pair found by both keys is listed once, under the customer
    for key in sorted(groups, key=lambda g: (g[0] != "customer", g)):
        contacts = groups[key]
        if len(contacts) < 2 or contacts[-1][1] != day:
            continue
        ids = tuple(i for i, _ in contacts)
        if ids in seen:
            continue
        seen.add(ids)
        label = f"customer:{key[2]}" if key[0] == "customer" else f"room:{key[2]} {key[3]}"
        found.append({"complaint_type": key[1], "key": label, "conversations": list(ids),
                      "days_between": (day - contacts[0][1]).days})
    found.sort(key=lambda r: (r["complaint_type"], r["key"]))
    return found


def signals(conn: Connection, day: dt.date) -> dict[str, Any]:
    return {"date": day.isoformat(), "spikes": spikes(conn, day), "repeats": repeats(conn, day)}


def scoped(engine: Engine, found: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The signals that concern one site or team: a site's spikes, and the repeats whose latest conversation
    is the site's or the team's (a team's dashboard shows no spikes: they are counted per site)."""
    latest = [r["conversations"][-1] for r in found["repeats"]]
    col = C.site if kind == "site" else C.team
    with engine.connect() as conn:
        mine = {str(i) for i in conn.scalars(select(C.id).where(C.id.in_(latest), col == name))} if latest else set()
    return {**found,
            "spikes": [s for s in found["spikes"] if kind == "site" and s["site"] == name],
            "repeats": [r for r in found["repeats"] if r["conversations"][-1] in mine]}


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
