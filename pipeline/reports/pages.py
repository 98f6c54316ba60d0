"""The trainers' and operations' pages in the workbench (培训报告 / 运营看板): the agent, team and site reports
and the day's signals, rendered with the same builders and templates as `zhijian report` (so a page shows
the numbers the command prints), each also as a PDF (``?format=pdf``).

Include with ``app.include_router(pipeline.reports.pages.router)``. Who sees what follows REVIEW_API.md's
roles: a user with teams sees the reports of those teams (and of sites all of whose teams are theirs); a user
without teams sees everything; an agent sees only their own report. What a user may not see is answered 404,
exactly as what does not exist.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape
from sqlalchemy import Connection, func, select

from pipeline.errors import ZhijianError
from pipeline.reports import agent as agent_mod
from pipeline.reports import dashboard, render
from pipeline.reports.labels import load_training_map
from pipeline.reports.queries import C, Period
from pipeline.reports.signals import scoped, signals_for
from pipeline.web.deps import PageUser, SettingsDep, StoreDep

router = APIRouter(prefix="/reports", include_in_schema=False)
DEFAULT_DAYS = 28


def _teams_of_site(conn: Connection, site: str) -> set[str]:
    return {str(t) for t in conn.scalars(select(C.team).where(C.site == site).distinct())}


def _may_team(user: Any, team: str) -> bool:
    if user.role == "agent":
        return False
    return not user.teams or team in user.teams


def _may_site(conn: Connection, user: Any, site: str) -> bool:
    if user.role == "agent":
        return False
    return not user.teams or _teams_of_site(conn, site) <= set(user.teams)


def _period(conn: Connection, start: str | None, end: str | None) -> Period:
    """The asked period, or the last four weeks up to the latest stored day."""
    if start and end:
        return Period.parse(start, end)
    latest = conn.execute(select(func.max(C.date)).where(C.status == "ok")).scalar_one()
    last = latest if isinstance(latest, dt.date) else (dt.date.fromisoformat(latest) if latest else dt.date.today())
    return Period.parse(start, last.isoformat()) if start else Period(last - dt.timedelta(days=DEFAULT_DAYS - 1), last)


def _nav(page: str, period: Period, pdf: bool = True) -> str:
    q = f"from={period.start}&to={period.end}"
    links = [f'<a href="/reports?{q}">← 全部报告</a>', '<a href="/">工作台</a>']
    if pdf:
        links.append(f'<a href="?{q}&format=pdf">下载 PDF</a>')
    return ('<nav class="webnav" style="font-family: sans-serif; font-size: 10pt; padding: 6px 10px; '
            'background: #1f4e79; display: flex; gap: 16px;">'
            + "".join(f'<span style="color:#fff">{link}</span>'.replace("<a ", '<a style="color:#fff" ')
                      for link in links)
            + "</nav>")


def _page(html: str, nav: str) -> HTMLResponse:
    return HTMLResponse(html.replace('<div class="sheet">', nav + '<div class="sheet">', 1))


def _pdf(html: str, settings: Any, name: str) -> Response:
    with tempfile.TemporaryDirectory(prefix="zhijian-page-pdf-") as folder:
        out = render.write_pdf(html, Path(folder) / "report.pdf", settings)
        data = out.read_bytes()
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{name}.pdf"})


def _not_found(what: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset='utf-8'><title>未找到</title><p>未找到：{escape(what)}</p>"
                        "<p><a href='/reports'>全部报告</a></p>", status_code=404)


@router.get("", response_class=HTMLResponse)
def index(user: PageUser, store: StoreDep, start: str | None = Query(None, alias="from"),
          end: str | None = Query(None, alias="to")) -> HTMLResponse:
    """What the user may open: their agents, teams and sites, for the period."""
    with store.engine.connect() as conn:
        period = _period(conn, start, end)
        rows = conn.execute(select(C.agent_id, func.max(C.agent_name), C.team, C.site)
                            .where(C.status == "ok").group_by(C.agent_id, C.team, C.site)
                            .order_by(C.site, C.team, C.agent_id)).all()
        sites = sorted({str(r[3]) for r in rows if _may_site(conn, user, str(r[3]))})
    q = f"from={period.start}&to={period.end}"
    agents = [r for r in rows if (user.role == "agent" and r[0] == user.agent_id)
              or (user.role != "agent" and _may_team(user, str(r[2])))]
    teams = sorted({str(r[2]) for r in agents if _may_team(user, str(r[2]))})
    parts = [f"<h1>培训与运营报告</h1><form><label>从 <input name='from' value='{period.start}'></label> "
             f"<label>到 <input name='to' value='{period.end}'></label> <button>更新</button></form>"]
    if sites:
        parts.append("<h2>项目点看板</h2><ul>" + "".join(
            f"<li><a href='/reports/site/{escape(s)}?{q}'>{escape(s)}</a></li>" for s in sites) + "</ul>")
        parts.append(f"<p><a href='/reports/signals?date={period.end}'>当日信号（{period.end}）</a></p>")
    if teams:
        parts.append("<h2>班组看板</h2><ul>" + "".join(
            f"<li><a href='/reports/team/{escape(t)}?{q}'>{escape(t)}</a></li>" for t in teams) + "</ul>")
    parts.append("<h2>坐席培训报告</h2><ul>" + "".join(
        f"<li><a href='/reports/agent/{escape(r[0])}?{q}'>{escape(r[1] or '')} {escape(r[0])}</a> "
        f"<span style='color:#777'>{escape(r[2])}</span></li>" for r in agents) + "</ul>")
    return HTMLResponse("<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>报告 · 质检</title>"
                        "<body style='font-family: \"Noto Sans CJK SC\", sans-serif; max-width: 60em; "
                        "margin: 1em auto'>"
                        + _nav("index", period, pdf=False) + "".join(parts) + "</body></html>")


@router.get("/agent/{agent_id}", response_class=HTMLResponse)
def agent_page(agent_id: str, user: PageUser, store: StoreDep, settings: SettingsDep, request: Request,
               start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
               format: str = "html") -> Response:
    with store.engine.connect() as conn:
        try:
            period = _period(conn, start, end)
        except ValueError as e:
            return HTMLResponse(str(escape(str(e))), status_code=422)
    try:
        training = load_training_map(settings.reports.training_map_path)
        report = agent_mod.agent_report(store.engine, agent_id, period, training)
    except ZhijianError:
        return _not_found(agent_id)
    visible = (user.agent_id == agent_id) if user.role == "agent" else _may_team(user, report["team"])
    if not visible:
        return _not_found(agent_id)
    html = render.agent_html(report, settings, link_base="")
    if format == "pdf":
        return _pdf(html, settings, f"agent-{agent_id}")
    return _page(html, _nav("agent", period))


def _group_page(kind: str, name: str, user: Any, store: Any, settings: Any, start: str | None, end: str | None,
                format: str) -> Response:
    with store.engine.connect() as conn:
        try:
            period = _period(conn, start, end)
        except ValueError as e:
            return HTMLResponse(str(escape(str(e))), status_code=422)
        visible = _may_team(user, name) if kind == "team" else _may_site(conn, user, name)
    if not visible:
        return _not_found(name)
    try:
        report = dashboard.group_report(store.engine, "team" if kind == "team" else "site", name, period,
                                        settings.reports.chat_sla_minutes)
    except ZhijianError:
        return _not_found(name)
    signals = scoped(store.engine, signals_for(store, period.end), kind, name)
    html = render.dashboard_html(report, settings, signals, link_base="")
    if format == "pdf":
        return _pdf(html, settings, f"{kind}-{name}")
    return _page(html, _nav(kind, period))


@router.get("/team/{team}", response_class=HTMLResponse)
def team_page(team: str, user: PageUser, store: StoreDep, settings: SettingsDep,
              start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
              format: str = "html") -> Response:
    return _group_page("team", team, user, store, settings, start, end, format)


@router.get("/site/{site}", response_class=HTMLResponse)
def site_page(site: str, user: PageUser, store: StoreDep, settings: SettingsDep,
              start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
              format: str = "html") -> Response:
    return _group_page("site", site, user, store, settings, start, end, format)


@router.get("/signals", response_class=HTMLResponse)
def signals_page(user: PageUser, store: StoreDep, date: str | None = None) -> Response:
    """The day's spikes and repeats, limited to the sites the user may see."""
    if user.role == "agent":
        return _not_found("signals")
    with store.engine.connect() as conn:
        try:
            period = _period(conn, date, date) if date else _period(conn, None, None)
        except ValueError as e:
            return HTMLResponse(str(escape(str(e))), status_code=422)
        found = signals_for(conn, period.end)
        sites = {s["site"] for s in found["spikes"]}
        allowed = {s for s in sites if _may_site(conn, user, s)}
        repeats = []
        for r in found["repeats"]:
            row = conn.execute(select(C.site, C.team).where(C.id == r["conversations"][-1])).first()
            if row is not None and _may_team(user, str(row.team)):
                repeats.append(r)
    found = {**found, "spikes": [s for s in found["spikes"] if s["site"] in allowed], "repeats": repeats}
    one_day = Period(period.end, period.end)
    return _page(render.signals_html(found), _nav("signals", one_day, pdf=False))
