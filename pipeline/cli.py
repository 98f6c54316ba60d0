"""The ``zhijian`` command: run a night, export results, transcribe files, show the per-agent table."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.config import get_settings
from pipeline.errors import ZhijianError

app = typer.Typer(
    help="Zhijian (质检): quality assurance for property-management customer service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, width=max(120, Console(stderr=True).width))
log = logging.getLogger("zhijian")

DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]
DateOption = Annotated[str, typer.Option("--date", help="the inbox day, YYYY-MM-DD")]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)


def _url(db: str | None) -> str:
    return db or get_settings().database_url


def _agent_table(db: str | None, date: str) -> Table:
    from pipeline.store import Store

    store = Store(_url(db))
    try:
        rows = store.agent_table(date)
    finally:
        store.close()
    table = Table(title=f"质检 per-agent scores, {date}")
    for col in ("agent", "name", "team", "conv.", "score", "critical", "rude turns", "escal.", "weakest items"):
        table.add_column(
            col, justify="right" if col in ("conv.", "score", "critical", "rude turns", "escal.") else "left"
        )
    for r in rows:
        rates = sorted(r.script.items(), key=lambda kv: kv[1])
        weakest = ", ".join(f"{k} {v:.0%}" for k, v in rates[:2] if v < 1.0) or "—"
        table.add_row(
            r.agent_id,
            r.agent_name,
            r.team,
            str(r.conversations),
            f"{r.score:.1f}" if r.score is not None else "—",
            str(r.critical),
            str(r.courtesy_violations),
            str(r.escalations),
            weakest,
        )
    return table


@app.command()
def run(
    inbox: Annotated[Path, typer.Option("--inbox", help="inbox root; the day's folder is inbox/<date>/")],
    date: DateOption,
    db: DbOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the nightly flow over INBOX/<date>/ and store the results."""
    _setup_logging(verbose)
    # An ephemeral Prefect API, quiet, and nothing phoned home (the machine may have no network).
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from flows.nightly import nightly, on_progress
    from pipeline.ingest import discover

    # the ephemeral API's services log their own shutdown as errors; they are not the night's errors
    logging.getLogger("prefect.server").setLevel(logging.CRITICAL)

    try:
        total = sum(1 for _ in discover(inbox, date))
    except ZhijianError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("transcribing and judging", total=total)

        def hook(stage: str, conv_id: str, ok: bool) -> None:
            if stage in ("judge", "ingest") or not ok:
                progress.advance(bar)
            progress.update(bar, description=f"{stage} {conv_id}")

        on_progress(hook)
        summary = nightly(str(inbox), date, _url(db))
        on_progress(None)
    for f in summary["failures"]:
        console.print(f"[yellow]failed[/yellow] {f['conversation_id']}: {f['message']}")
    console.print(_agent_table(db, date))
    console.print(
        f"{summary['analysed']} analysed, {summary['failed']} failed, {summary['seconds']} s. "
        f"Results in {summary['db']} — `zhijian export --date {date}` writes them as JSON Lines."
    )


@app.command()
def export(date: DateOption, db: DbOption = None) -> None:
    """One JSON result record per conversation of the day on stdout (spec section 4)."""
    from pipeline.store import Store

    store = Store(_url(db))
    try:
        for record in store.results(date):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        store.close()


@app.command()
def agents(date: DateOption, db: DbOption = None) -> None:
    """The per-agent table of a stored day."""
    Console().print(_agent_table(db, date))


@app.command()
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="recordings (wav, flac, mp3, …)")],
    layout: Annotated[str, typer.Option("--layout", help="stereo_agent_left | stereo_agent_right | mono")] = "mono",
    site: Annotated[str, typer.Option("--site", help="site name, used as a hot word")] = "",
) -> None:
    """Transcribe recordings: one JSON object per file per line on stdout."""
    _setup_logging()
    from pipeline.asr import transcribe_call
    from pipeline.errors import InputError
    from pipeline.schema import ConversationMeta

    if layout not in ("stereo_agent_left", "stereo_agent_right", "mono"):
        raise typer.BadParameter(f"unknown layout {layout!r}")
    settings = get_settings()
    failed = 0
    for path in files:
        meta = ConversationMeta(
            id=path.stem,
            channel="call",
            agent_id="",
            site=site,
            source=str(path),
            audio_path=str(path),
            audio_layout=layout,
        )
        try:
            tr = transcribe_call(meta, settings)
        except Exception as e:  # report every file; one bad recording does not stop the rest
            if not isinstance(e, InputError):
                e = InputError("E099", path, detail=f"{type(e).__name__}: {e}")
            failed += 1
            console.print(f"[red]{e}[/red]")
            sys.stdout.write(
                json.dumps({"file": str(path), "error": e.code, "message": str(e)}, ensure_ascii=False) + "\n"
            )
            continue
        turns = [{"role": t.role, "start": t.start, "end": t.end, "text": t.text} for t in tr.turns]
        sys.stdout.write(json.dumps({"file": str(path), "turns": turns}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


@app.command()
def serve(
    inbox: Annotated[Path, typer.Option("--inbox")],
    cron: Annotated[str, typer.Option("--cron", help="when to run, cron syntax (default 02:00 nightly)")] = "0 2 * * *",
    db: DbOption = None,
) -> None:
    """Serve the nightly flow on a schedule; each run processes yesterday's folder."""
    from flows.nightly import nightly

    nightly.serve(name="zhijian-nightly", cron=cron, parameters={"inbox": str(inbox), "db_url": _url(db)})


def main() -> None:
    app()


if __name__ == "__main__":
    main()
