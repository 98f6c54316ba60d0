"""``zhijian report agent|team|site|compare`` and ``zhijian signals`` (REPORTS.md).

Every command prints its numbers as text tables, or one JSON object with ``--json``; ``--html`` / ``--pdf``
write the report with its charts and ``--csv DIR`` each of its tables. Heavy imports (matplotlib, Jinja2)
happen only when a file is asked for, so a JSON or text answer stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import get_settings
from pipeline.errors import ZhijianError

report_app = typer.Typer(help="Trainer and operations reports (REPORTS.md).", no_args_is_help=True)
err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]
FromOption = Annotated[str, typer.Option("--from", help="first inbox day, YYYY-MM-DD")]
ToOption = Annotated[str, typer.Option("--to", help="last inbox day, YYYY-MM-DD (included)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="write the report as HTML here")]
PdfOption = Annotated[Path | None, typer.Option("--pdf", help="write the report as PDF here")]
CsvOption = Annotated[Path | None, typer.Option("--csv", help="write each table as DIR/<table>.csv")]


class _Reader:
    """The store, opened for reading: a plain engine, without Alembic's check of the schema (the reports only
    read, and the check costs more than the report's own queries). If a table or column the reports need is
    missing — an older schema, a new file — ``retry`` opens the Store once, which migrates, and the report runs
    again."""

    def __init__(self, db: str | None) -> None:
        from sqlalchemy import create_engine

        self.url = db or get_settings().database_url
        self.engine = create_engine(self.url)
        self.migrated = False

    def run(self, build: Callable[[Any], Any]) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return build(self)
        except (OperationalError, ProgrammingError):
            if self.migrated:
                raise
        from pipeline.store import Store

        self.engine.dispose()
        Store(self.url).close()  # migrates
        self.migrated = True
        from sqlalchemy import create_engine

        self.engine = create_engine(self.url)
        return build(self)

    def close(self) -> None:
        self.engine.dispose()


def _open(db: str | None) -> _Reader:
    return _Reader(db)


def _fail(e: Exception) -> typer.Exit:
    err.print(f"[red]{e}[/red]")
    return typer.Exit(2)


def _emit(report: Mapping[str, Any], as_json: bool, text: Callable[[Mapping[str, Any]], None], html: Path | None,
          pdf: Path | None, csv: Path | None, to_html: Callable[[], str],
          tables: Callable[[Mapping[str, Any]], Mapping[str, Any]]) -> None:
    if html is not None or pdf is not None:
        from pipeline.reports.render import write_pdf

        page = to_html()
        if html is not None:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(page, encoding="utf-8")
            err.print(f"HTML: {html}")
        if pdf is not None:
            err.print(f"PDF: {write_pdf(page, pdf, get_settings())}")
    if csv is not None:
        from pipeline.reports.render import write_csv

        paths = write_csv(csv, tables(report))
        err.print(f"CSV: {', '.join(str(p) for p in paths)}")
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        text(report)


def _out() -> Console:
    """stdout, at least 120 columns wide (ids and Chinese names are not cut when piped)."""
    return Console(width=max(120, Console().width))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def _table(title: str, cols: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*("—" if v is None else str(v) for v in r))
    return t


def _print_agent(r: Mapping[str, Any]) -> None:
    from pipeline.reports.labels import item_zh

    out = _out()
    c = r["courtesy"]
    out.print(f"[bold]{r['agent_name']} {r['agent_id']}[/bold] · {r['team']} · {r['from']} … {r['to']}: "
              f"{r['conversations']} conversations, mean score {r['score_mean']}, critical {r['critical']}, "
              f"courtesy violations {c['violations']} ({c['per_100']} per 100; team {c['team_per_100']}, "
              f"company {c['company_per_100']})")
    out.print(_table("pass rate per item", ["item", "n", "agent", "team", "company"], [
        [f"{item_zh(i['item'])} {i['item']}", i["n"], _pct(i["pass_rate"]), _pct(i["team_rate"]),
         _pct(i["company_rate"])] for i in r["items"]]))
    out.print(_table("score by ISO week", ["week", "conversations", "mean score"],
                     [[w["week"], w["conversations"], w["score_mean"]] for w in r["weekly"]]))
    for w in r["weakest"]:
        out.print(f"[bold red]weak: {item_zh(w['item'])}[/bold red] {_pct(w['pass_rate'])} "
                  f"({w['gap_to_team'] * 100:+.1f} points vs team) → {'；'.join(w['training']) or '—'}")
        for e in w["examples"]:
            out.print(f"   {e['conversation_id']} turn {e['turn']}: {e['text']}")


def _print_group(r: Mapping[str, Any]) -> None:
    from pipeline.reports.labels import item_zh, type_zh

    kind = "team" if "team" in r else "site"
    out = _out()
    fr, rep = r["first_response"], r["repeat_complaints"]
    out.print(f"[bold]{kind} {r[kind]}[/bold] · {r['from']} … {r['to']}: {r['conversations']} conversations, "
              f"{r['agents']} agents, mean score {r['score_mean']}, critical {r['critical']}, escalation rate "
              f"{_pct(r['escalation']['rate'])}; chat first response median {fr['median_seconds']} s, p90 "
              f"{fr['p90_seconds']} s, within {fr['sla_minutes']:g} min {_pct(fr['within_sla'])}; repeat "
              f"complaints {rep['repeats']}/{rep['complaints']} ({_pct(rep['rate'])})")
    out.print(_table("score deciles", ["percentile", "score"],
                     [[f"p{d['p']}", d["score"]] for d in r["score_deciles"]]))
    out.print(_table("agents ranked", ["agent", "conversations", "mean score", "critical", "weakest item"], [
        [f"{a['rank']}. {a['agent_name']} {a['agent_id']}", a["conversations"], a["score_mean"], a["critical"],
         f"{item_zh(a['weakest_item'])} {_pct(a['weakest_pass_rate'])}" if a["weakest_item"] else None]
        for a in r["agents_ranked"]]))
    out.print(_table("complaint types", ["type", "count", "share"], [
        [f"{type_zh(m['complaint_type'])} {m['complaint_type']}", m["count"], _pct(m["share"])]
        for m in r["complaint_mix"]]))
    from pipeline.reports.queries import FLAGS

    out.print(_table("flags per day", ["date", "conversations", "flagged", *FLAGS], [
        [d["date"], d["conversations"], d["flagged"], *(d[f] for f in FLAGS)] for d in r["flags_per_day"]]))


def _print_compare(r: Mapping[str, Any]) -> None:
    from pipeline.reports.labels import item_zh

    out = _out()
    who = f"{r.get('agent_name', '')} {r[r['scope']]}".strip()
    b, a, s = r["before"], r["after"], r["score"]
    out.print(f"[bold]{who}[/bold]: before {b['from']} … {b['to']} ({b['conversations']}), after {a['from']} … "
              f"{a['to']} ({a['conversations']}); mean score {s['before_mean']} → {s['after_mean']} "
              f"(p {s['p']}, {s['verdict']}). Test: {r['test']}")
    out.print(_table("before / after", ["item", "before", "after", "change", "z", "p", "verdict"], [
        [f"{item_zh(i['item'])} {i['item']}", f"{_pct(i['before_rate'])} (n={i['before_n']})",
         f"{_pct(i['after_rate'])} (n={i['after_n']})",
         None if i["change"] is None else f"{i['change'] * 100:+.1f} pts", i["z"], i["p"], i["verdict"]]
        for i in r["items"]]))


def _print_signals(r: Mapping[str, Any]) -> None:
    from pipeline.reports.labels import type_zh

    out = _out()
    out.print(_table(f"spikes {r['date']}", ["site", "type", "count", "baseline mean", "p"], [
        [s["site"], f"{type_zh(s['complaint_type'])} {s['complaint_type']}", s["count"], s["baseline_mean"], s["p"]]
        for s in r["spikes"]]))
    out.print(_table(f"repeat complaints {r['date']}", ["type", "key", "conversations", "days between"], [
        [f"{type_zh(x['complaint_type'])} {x['complaint_type']}", x["key"], ", ".join(x["conversations"]),
         x["days_between"]] for x in r["repeats"]]))


@report_app.command("agent")
def agent_cmd(agent_id: Annotated[str, typer.Argument(help="the agent's id, e.g. A104")], start: FromOption,
              end: ToOption, as_json: JsonOption = False, html: HtmlOption = None, pdf: PdfOption = None,
              csv: CsvOption = None, db: DbOption = None) -> None:
    """Weak skills of one agent against the team and the company, weekly trend, example turns, courses."""
    from pipeline.reports import agent
    from pipeline.reports.labels import load_training_map
    from pipeline.reports.queries import Period

    settings = get_settings()
    store = _open(db)
    try:
        training = load_training_map(settings.reports.training_map_path)
        agent.check_training_map(training)
        period = Period.parse(start, end)
        report = store.run(lambda st: agent.agent_report(st.engine, agent_id, period, training))
    except (ZhijianError, ValueError) as e:
        raise _fail(e) from None
    finally:
        store.close()

    def page() -> str:
        from pipeline.reports.render import agent_html

        return agent_html(report, settings)

    try:
        _emit(report, as_json, _print_agent, html, pdf, csv, page, agent.tables)
    except ZhijianError as e:
        raise _fail(e) from None


def _group(kind: str, name: str, start: str, end: str, as_json: bool, html: Path | None, pdf: Path | None,
           csv: Path | None, db: str | None) -> None:
    from pipeline.reports import dashboard
    from pipeline.reports.queries import Period
    from pipeline.reports.signals import scoped, signals_for

    settings = get_settings()
    store = _open(db)
    try:
        period = Period.parse(start, end)
        report = store.run(lambda st: dashboard.group_report(
            st.engine, "team" if kind == "team" else "site", name, period, settings.reports.chat_sla_minutes))
        signals = (scoped(store.engine, signals_for(store.engine, period.end), kind, name)
                   if (html or pdf) else None)
    except (ZhijianError, ValueError) as e:
        raise _fail(e) from None
    finally:
        store.close()

    def page() -> str:
        from pipeline.reports.render import dashboard_html

        return dashboard_html(report, settings, signals)

    try:
        _emit(report, as_json, _print_group, html, pdf, csv, page, dashboard.tables)
    except ZhijianError as e:
        raise _fail(e) from None


@report_app.command("team")
def team_cmd(team: Annotated[str, typer.Argument(help="team name, e.g. 海棠湾客服组")], start: FromOption,
             end: ToOption, as_json: JsonOption = False, html: HtmlOption = None, pdf: PdfOption = None,
             csv: CsvOption = None, db: DbOption = None) -> None:
    """Team dashboard: score deciles, agents ranked, complaint mix, flags per day, escalation, first response,
    repeat complaints."""
    _group("team", team, start, end, as_json, html, pdf, csv, db)


@report_app.command("site")
def site_cmd(site: Annotated[str, typer.Argument(help="site name, e.g. 海棠湾")], start: FromOption,
             end: ToOption, as_json: JsonOption = False, html: HtmlOption = None, pdf: PdfOption = None,
             csv: CsvOption = None, db: DbOption = None) -> None:
    """Site dashboard (as the team one, over a site's conversations)."""
    _group("site", site, start, end, as_json, html, pdf, csv, db)


@report_app.command("compare")
def compare_cmd(
    scope: Annotated[str, typer.Argument(help="agent | team")],
    key: Annotated[str, typer.Argument(help="the agent's id or the team's name")],
    before: Annotated[str, typer.Option("--before", help="D..D, the period before the course")],
    after: Annotated[str, typer.Option("--after", help="D..D, the period after it")],
    as_json: JsonOption = False, html: HtmlOption = None, pdf: PdfOption = None, csv: CsvOption = None,
    db: DbOption = None,
) -> None:
    """Each skill before and after, with a two-proportion z-test: is the change larger than noise?"""
    from pipeline.reports import compare
    from pipeline.reports.queries import Period

    if scope not in ("agent", "team"):
        raise _fail(ValueError(f"compare what? expected 'agent ID' or 'team T', got {scope!r}"))
    settings = get_settings()
    store = _open(db)
    try:
        periods = Period.parse_range(before), Period.parse_range(after)
        report = store.run(lambda st: compare.compare_report(
            st.engine, "agent" if scope == "agent" else "team", key, *periods))
    except (ZhijianError, ValueError) as e:
        raise _fail(e) from None
    finally:
        store.close()

    def page() -> str:
        from pipeline.reports.render import compare_html

        return compare_html(report, settings)

    try:
        _emit(report, as_json, _print_compare, html, pdf, csv, page, compare.tables)
    except ZhijianError as e:
        raise _fail(e) from None


def signals_cmd(date: Annotated[str, typer.Option("--date", help="the inbox day, YYYY-MM-DD")],
                as_json: JsonOption = False, html: HtmlOption = None, pdf: PdfOption = None,
                csv: CsvOption = None, db: DbOption = None) -> None:
    """Complaint spikes per site and repeat complaints on one day."""
    from pipeline.reports.signals import signals_for

    store = _open(db)
    try:
        report = store.run(lambda st: signals_for(st.engine, date))
    except (ZhijianError, ValueError) as e:
        raise _fail(e) from None
    finally:
        store.close()

    def page() -> str:
        from pipeline.reports.render import signals_html

        return signals_html(report)

    def tables(r: Mapping[str, Any]) -> dict[str, Any]:
        return {"spikes": r["spikes"],
                "repeats": [{**x, "conversations": " ".join(x["conversations"])} for x in r["repeats"]]}

    try:
        _emit(report, as_json, _print_signals, html, pdf, csv, page, tables)
    except ZhijianError as e:
        raise _fail(e) from None


def register(app: typer.Typer) -> None:
    """Add ``report …`` and ``signals`` to the ``zhijian`` command."""
    app.add_typer(report_app, name="report")
    app.command("signals")(signals_cmd)
