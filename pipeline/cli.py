"""The ``zhijian`` command: run a night, export results, transcribe files, show the per-agent table."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

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


def _progress(transient: bool = False) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=transient)


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
    # the first start after installing compiles and migrates the API's database: give it time
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
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
    with _progress() as progress:
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


@app.command()
def train(
    corpus: Annotated[list[Path] | None, typer.Option(
        "--corpus", help="corpus files or folders (default: models/corpus/conversations)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="model folder to write (default: the configured judge_model_path)")] = None,
    base: Annotated[Path | None, typer.Option(
        "--base", help="a pretrained transformers encoder folder to fine-tune, e.g. bert-base-chinese/")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    corrections: Annotated[bool, typer.Option(
        "--corrections/--no-corrections", help="include reviewers' corrections from the store")] = True,
    db: DbOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the learned judge on the corpus (and reviewers' corrections); writes the model folder and its card."""
    _setup_logging(verbose)
    from pipeline.corpus import load_corpus
    from pipeline.training import TrainOptions, corrections_from_store, write_card
    from pipeline.training import train as train_model

    settings = get_settings()
    paths = corpus or [settings.corpus_path]
    try:
        conversations = load_corpus(paths)
        from_store = corrections_from_store(_url(db)) if corrections else []
    except ZhijianError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    target = out or settings.judge_model_path
    console.print(f"training on {len(conversations)} corpus conversations and {len(from_store)} corrected ones "
                  f"→ {target}")
    options = TrainOptions(out=target, base=base, epochs=epochs, seed=seed)
    with _progress() as progress:
        bar = progress.add_task("epochs", total=epochs)

        def tick(epoch: int, total: int, loss: float) -> None:
            progress.update(bar, completed=epoch, description=f"epoch {epoch}/{total} loss {loss:.3f}")

        try:
            _, summary = train_model([*conversations, *from_store], options, settings, progress=tick)
        except ZhijianError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    card = write_card(target, summary)
    table = Table(title=f"validation ({summary['conversations']['validation']} held-out conversations)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary["validation"].items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"model written to {target} ({summary['seconds']} s); card: {card}")


@app.command()
def correct(
    conversation_id: Annotated[str, typer.Argument(help="the conversation's id")],
    item: Annotated[str, typer.Argument(help="complaint_type | customer_emotion | escalation_risk | dead_air | "
                                       "courtesy_violation_turns | script.<item>")],
    value: Annotated[str, typer.Argument(
        help="the right value: a type, an emotion, true/false, or turn numbers '3,5'")],
    reason: Annotated[str, typer.Option("--reason", help="why the machine was wrong")] = "",
    reviewer: Annotated[str, typer.Option("--reviewer", help="who corrects")] = os.environ.get("USER", "reviewer"),
    db: DbOption = None,
) -> None:
    """Record a reviewer's correction of one judgement; `zhijian train` learns from it."""
    from pipeline.corpus import parse_correction
    from pipeline.store import Store

    try:
        human = parse_correction(item, value)
    except ZhijianError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    store = Store(_url(db))
    try:
        row = store.add_correction(conversation_id, item, human, reviewer, reason)
    except ValueError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"correction {row.id}: {conversation_id} {item}: machine {row.machine_value!r} → "
                  f"{row.human_value!r} ({reviewer})")


@app.command(name="eval")
def evaluate_cmd(
    inbox: Annotated[Path, typer.Option("--inbox", help="inbox root; the day's folder is inbox/<date>/")],
    date: DateOption,
    labels: Annotated[Path, typer.Option("--labels", help="labels.jsonl (spec section 2)")],
    refs: Annotated[Path | None, typer.Option(
        "--refs", help="per-turn times of labelled calls (default: refs.jsonl beside the labels)")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="JSON Lines file of transcripts: read if present, written after recognition")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    results_out: Annotated[Path | None, typer.Option("--results", help="also write the result records here")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the judges over a labelled day and print precision, recall, F1, the complaint confusion matrix and
    Cohen's kappa per script item."""
    _setup_logging(verbose)
    from pipeline.evaluation import evaluate, load_labels, load_refs
    from pipeline.judging import judge_day

    try:
        truth = load_labels(labels)
        ref = load_refs(refs or labels.parent / "refs.jsonl")
    except ZhijianError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    settings = get_settings()
    with _progress(transient=True) as progress:
        bar = progress.add_task("judging", total=None)

        def tick(done: int, total: int, conv_id: str) -> None:
            progress.update(bar, completed=done, total=total, description=f"judging {conv_id}")

        try:
            results, failures = judge_day(inbox, date, settings, cache=cache, progress=tick)
        except ZhijianError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    for f in failures:
        console.print(f"[yellow]failed[/yellow] {f.conversation_id}: {f.message}")
    if results_out is not None:
        results_out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
    report = evaluate(results, truth, ref)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), ensure_ascii=False) + "\n")
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    out = Console(width=max(120, Console().width))
    head = Table(title=f"headline ({report.conversations} labelled conversations)")
    head.add_column("metric")
    head.add_column("value", justify="right")
    for k, v in report.headline().items():
        head.add_row(k, f"{v:.4f}")
    out.print(head)

    def prf_table(title: str, rows: dict[str, Any], extra: dict[str, float] | None = None) -> Table:
        t = Table(title=title)
        for col in ("label", "precision", "recall", "F1", "support", *(["kappa"] if extra else [])):
            t.add_column(col, justify="left" if col == "label" else "right")
        for name, p in rows.items():
            cells = [name, f"{p.precision:.3f}", f"{p.recall:.3f}", f"{p.f1:.3f}", str(p.support)]
            if extra:
                cells.append(f"{extra[name]:.3f}")
            t.add_row(*cells)
        return t

    out.print(prf_table("script items (positive = missed), with Cohen's kappa machine vs labels", report.script,
                        report.script_kappa))
    out.print(prf_table("complaint type", report.complaint))
    types = list(report.complaint_confusion)
    cm = Table(title="complaint type confusion (rows: label, columns: machine)")
    cm.add_column("label")
    for k in types:
        cm.add_column(k[:6], justify="right")
    for k in types:
        cm.add_row(k, *(str(report.complaint_confusion[k][j] or ".") for j in types))
    out.print(cm)
    out.print(prf_table("customer emotion", report.emotion))
    out.print(prf_table("turn-level and conversation flags", {
        "courtesy_violation (turns)": report.courtesy, "escalation_risk": report.escalation,
        "dead_air": report.dead_air}))
    if report.missing:
        out.print(f"[yellow]{len(report.missing)} labelled conversations have no result[/yellow]: "
                  + ", ".join(report.missing[:10]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
