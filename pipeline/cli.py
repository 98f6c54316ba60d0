"""The ``zhijian`` command: run a night, export results, transcribe files, show the per-agent table."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.config import get_settings
from pipeline.errors import ConfigError, InputError, ZhijianError

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


def _fail(e: Exception, code: int = 2) -> typer.Exit:
    """One line on stderr (the coded error's message), no traceback."""
    console.print(f"[red]{escape(str(e))}[/red]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _check_url(url: str) -> str:
    """A usable SQLAlchemy URL with its driver installed, else ConfigError E043 (before any work)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as e:
        raise ConfigError("E043", url=url, detail=str(e).splitlines()[0]) from None
    return url


def _open_store(db: str | None, *, migrate: bool = False, must_exist: bool = True) -> Any:
    """The store for ``--db``: readers never migrate (``zhijian run`` and ``zhijian db upgrade`` do) and never
    create a database. Raises ConfigError (E043 bad URL or unreachable, E044 schema to upgrade) or
    LookupError (nothing stored there)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    from pipeline.store import Store

    url = _check_url(_url(db))
    parsed = make_url(url)
    if must_exist and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).is_file():
        raise LookupError(f"nothing stored: no database at {parsed.database}")
    try:
        return Store(url, migrate=migrate)
    except DBAPIError as e:
        raise ConfigError("E043", url=url, detail=str(e.orig or e).strip().splitlines()[0]) from None


def _reader(db: str | None) -> Any:
    try:
        return _open_store(db)
    except ConfigError as e:
        raise _fail(e) from None
    except LookupError as e:
        raise _fail(e, 1) from None


def _agent_table(store: Any, date: str) -> Table | None:
    rows = store.agent_table(date)
    if not rows:
        return None
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


def _check_date(date: str) -> str:
    from pipeline.ingest import check_date

    try:
        return check_date(date)
    except ConfigError as e:
        raise _fail(e) from None


def _prefect_environment() -> None:
    """Prefect's state in the data directory, an ephemeral API, quiet, and nothing phoned home (the machine
    may have no network). Set before Prefect is first imported."""
    os.environ.setdefault("PREFECT_HOME", str(get_settings().data_dir / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the first start after installing compiles and migrates the API's database: give it time
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _die_with_parent() -> None:  # runs in the forked child, before exec
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: a killed run takes it along


def _start_ephemeral_api() -> Any:
    """Start Prefect's ephemeral API server in a session of its own, so Ctrl-C (SIGINT to the terminal's
    process group) reaches the run, not the API the run reports to; it still dies with the run (SIGKILL
    included). Returns the server (None when PREFECT_API_URL names a real one)."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    import subprocess
    import types
    from unittest import mock

    from prefect.server.api import server as prefect_server

    api = prefect_server.SubprocessASGIServer()
    launch = prefect_server.SubprocessASGIServer._run_uvicorn_command
    real_popen: Any = subprocess.Popen

    def own_session(self: Any) -> Any:
        def popen(*args: Any, **kwargs: Any) -> Any:
            return real_popen(*args, start_new_session=True, preexec_fn=_die_with_parent, **kwargs)

        with mock.patch.object(subprocess, "Popen", popen):  # only while Prefect launches its server
            return launch(self)

    api._run_uvicorn_command = types.MethodType(own_session, api)  # type: ignore[method-assign]
    api.start()
    return api


@app.command()
def run(
    inbox: Annotated[Path, typer.Option("--inbox", help="inbox root; the day's folder is inbox/<date>/")],
    date: DateOption,
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="redo every conversation, even those already stored "
                                        "from the same files by the same pipeline")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="run the night on a local Dask cluster of N worker processes (each loads the "
        "models once); default: in-process (ZHIJIAN_DASK__WORKERS)")] = None,
    dask: Annotated[str | None, typer.Option(
        "--dask", envvar="ZHIJIAN_DASK_ADDRESS", metavar="tcp://HOST:8786",
        help="run the night on the workers of an existing `dask scheduler` (README: workers on several "
        "machines)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the nightly flow over INBOX/<date>/: each conversation is stored as soon as it is judged; running the
    day again resumes (what is stored unchanged is skipped). Ctrl-C stops; stored work is kept."""
    _setup_logging(verbose)
    if dask and workers:
        raise typer.BadParameter("--workers starts a local cluster, --dask uses an existing one: give one of them",
                                 param_hint="--workers / --dask")
    # everything is checked before any work: the date, the database URL, the day's folder
    _check_date(date)
    try:
        url = _check_url(_url(db))
    except ConfigError as e:
        raise _fail(e) from None
    day = inbox / date
    if not day.is_dir():
        raise _fail(InputError("E040", day))
    resume = f"zhijian run --inbox {inbox} --date {date}" + (f" --db {db}" if db else "") + (
        f" --workers {workers}" if workers else "") + (f" --dask {dask}" if dask else "")
    try:
        _open_store(url, migrate=True, must_exist=False).close()  # migrations run here, once, before the night
    except ConfigError as e:
        raise _fail(e) from None
    _prefect_environment()
    import signal
    import threading

    # the ephemeral API's services log their own shutdown as errors; they are not the night's errors
    logging.getLogger("prefect.server").setLevel(logging.CRITICAL)
    # a local Dask cluster's scheduler, nannies and workers narrate every start and stop (and kill a finished
    # worker that is slow to exit): not the night's business unless asked for. Dask sets its loggers' levels
    # from its config when first imported, in this process and in each worker it spawns: hence the variable
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose else "error")
    api: Any = None

    def stop(rc: int, line: str) -> NoReturn:
        console.print(line, highlight=False, soft_wrap=True)
        if api is not None and api.server_process is not None:
            api.server_process.terminate()  # not waited for: it also dies with us (PR_SET_PDEATHSIG)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)  # worker threads may be in the middle of recognising a call: nothing of it is stored yet

    stopping = threading.Event()
    halted = f"interrupted. What is stored is kept; to resume: {escape(resume)}"

    def on_sigint(_signum: int, _frame: Any) -> None:
        if stopping.is_set():
            stop(130, halted)
        stopping.set()
        # a clean stop closes the run's record; if that hangs, stop anyway
        threading.Timer(8.0, lambda: stop(130, halted)).start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint), signal.signal(signal.SIGTERM, on_sigint)
    from flows.nightly import ProgressEvent, StoreUnavailable, nightly

    # Ctrl-C is the operator's stop, not a crash: Prefect's "Crash detected!" line would say otherwise
    # (and a database away is reported once, as E034, not as Prefect's task and flow tracebacks)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    try:
        api = _start_ephemeral_api()
        with _progress() as progress:
            bar = progress.add_task(f"night {date}", total=None)

            def show(e: ProgressEvent) -> None:
                if e.stage == "planned":
                    progress.update(bar, total=e.total)
                elif e.stage in ("skipped", "stored", "failed"):
                    progress.advance(bar)
                    progress.update(bar, description=f"{e.stage} {e.conversation_id}")
                elif e.stage == "recognising":
                    progress.update(bar, description=f"recognising {Path(e.source).name}")

            summary = nightly(str(inbox), date, url, force=force, progress=show, workers=workers, dask_address=dask)
    except KeyboardInterrupt:
        stop(130, halted)
    except StoreUnavailable as e:
        stop(3, f"[red]{escape(str(e))}[/red]\nto resume: {escape(resume)}")
    except ZhijianError as e:
        stop(2, f"[red]{escape(str(e))}[/red]")
    signal.signal(signal.SIGINT, previous[0])
    signal.signal(signal.SIGTERM, previous[1])
    for f in summary["failures"]:
        console.print(f"[yellow]failed[/yellow] {escape(f['conversation_id'])}: {escape(f['message'])}",
                      highlight=False, soft_wrap=True)
    store = _open_store(url)
    try:
        table = _agent_table(store, date)
        n_failed = len(store.failures(date))
        n_ok = len(store.results(date))
    finally:
        store.close()
    if table is not None:
        console.print(table)
    skipped = (f", {summary['skipped']} skipped (already stored from the same files by this pipeline; "
               f"--force redoes them)") if summary["skipped"] else ""
    console.print(
        f"run {summary['run_id']}: {summary['analysed']} analysed, {summary['failed']} failed{skipped}, "
        f"{summary['recognised']} calls recognised, {summary['seconds']} s. The day now has {n_ok} results and "
        f"{n_failed} failures in {summary['db']}: `zhijian export --date {date}` writes the results as JSON Lines"
        + (f", `zhijian failures --date {date}` lists the failures" if n_failed else "") + ".",
        highlight=False, soft_wrap=True,
    )
    signals = summary.get("signals") or {}
    for spike in signals.get("spikes", []):
        console.print(f"[magenta]spike[/magenta] {spike['site']} {spike['complaint_type']}: {spike['count']} today "
                      f"(baseline {spike['baseline_mean']:.2f}/day, p = {spike['p']:.2g})")
    for rep in signals.get("repeats", []):
        console.print(f"[magenta]repeat complaint[/magenta] {rep['complaint_type']} ({rep['key']}): "
                      f"{', '.join(rep['conversations'])}")
    if signals.get("spikes") or signals.get("repeats"):
        console.print(f"signals: `zhijian signals --date {date}`")
    if summary["unstored"]:
        console.print(f"[red]{summary['unstored']} conversations could not be stored at all (see the log)[/red]")
    if summary["unstored"]:
        raise typer.Exit(1)


@app.command()
def export(date: DateOption, db: DbOption = None) -> None:
    """One JSON result record per conversation of the day on stdout (spec section 4)."""
    _check_date(date)
    store = _reader(db)
    try:
        records = store.results(date)
    finally:
        store.close()
    if not records:
        raise _fail(LookupError(f"no results stored for {date} in {_url(db)}"), 1)
    for record in records:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


@app.command()
def agents(date: DateOption, db: DbOption = None) -> None:
    """The per-agent table of a stored day."""
    _check_date(date)
    store = _reader(db)
    try:
        table = _agent_table(store, date)
    finally:
        store.close()
    if table is None:
        raise _fail(LookupError(f"no results stored for {date} in {_url(db)}"), 1)
    Console(width=max(120, Console().width)).print(table)


@app.command()
def failures(date: DateOption, db: DbOption = None,
             as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """The day's failed files: id, code, stage, agent, file and reason."""
    _check_date(date)
    store = _reader(db)
    try:
        failed = store.failures(date)
        stored = store.count(date)
    finally:
        store.close()
    if not stored:
        raise _fail(LookupError(f"nothing stored for {date} in {_url(db)}"), 1)
    if as_json:
        for f in failed:
            sys.stdout.write(json.dumps(f.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return
    if not failed:
        Console().print(f"no failures on {date} ({stored} conversations stored)")
        return
    table = Table(title=f"failed conversations, {date}")
    for col in ("id", "code", "stage", "agent", "file", "reason"):
        table.add_column(col, overflow="fold")
    for f in failed:
        reason = f.message.split(": ", 1)[-1] if f.message.startswith(f"[{f.code}] {f.source}") else f.message
        table.add_row(f.conversation_id, f.code, f.stage, f.agent_id or "", f.source, reason)
    Console(width=max(160, Console().width)).print(table)


db_app = typer.Typer(help="The results database: upgrade its schema, say where it is.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Bring the database schema to this zhijian's newest migration (creates the database if need be)."""
    from pipeline.store.repository import head_revision, schema_revision

    try:
        store = _open_store(db, migrate=True, must_exist=False)
    except ConfigError as e:
        raise _fail(e) from None
    try:
        have = schema_revision(store.engine)
    finally:
        store.close()
    Console().print(f"{_url(db)}: schema at revision {have} (head {head_revision()})")


@db_app.command("info")
def db_info(
    data_dir: Annotated[bool, typer.Option("--data-dir", help="print only the data directory")] = False,
    db: DbOption = None,
) -> None:
    """The data directory, the database URL and its schema revision."""
    settings = get_settings()
    if data_dir:
        sys.stdout.write(f"{settings.data_dir}\n")
        return
    from pipeline.store.repository import head_revision

    sys.stdout.write(f"data directory: {settings.data_dir}\ndatabase: {_url(db)}\nhead revision: {head_revision()}\n")


@app.command()
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="recordings (wav, flac, mp3, …)")],
    layout: Annotated[str | None, typer.Option(
        "--layout", help="stereo_agent_left | stereo_agent_right | mono (default: the sidecar's, else mono)")] = None,
    site: Annotated[str | None, typer.Option(
        "--site", help="site name, used as a hot word (default: the sidecar's)")] = None,
) -> None:
    """Transcribe recordings: one JSON object per file per line on stdout. A file's sidecar (same name, .json)
    gives its id, layout and site."""
    _setup_logging()
    from pipeline.asr import transcribe_call
    from pipeline.ingest import read_call
    from pipeline.schema import ConversationMeta

    if layout is not None and layout not in ("stereo_agent_left", "stereo_agent_right", "mono"):
        raise typer.BadParameter(f"unknown layout {layout!r}")
    settings = get_settings()
    failed = 0
    for path in files:
        try:
            sidecar = path.with_suffix(".json")
            if sidecar.is_file() and sidecar != path:
                meta = read_call(sidecar, {path.stem: [path], sidecar.stem: [path]}).meta
            else:
                meta = ConversationMeta(id=path.stem, channel="call", agent_id="", source=str(path),
                                        audio_path=str(path))
            update: dict[str, Any] = {"audio_path": str(path)}
            if layout is not None or meta.audio_layout is None:
                update["audio_layout"] = layout or "mono"
            if site is not None:
                update["site"] = site
            tr = transcribe_call(meta.model_copy(update=update), settings)
        except Exception as e:  # report every file; one bad recording does not stop the rest
            if not isinstance(e, InputError):
                e = InputError("E099", path, detail=f"{type(e).__name__}: {e}")
            failed += 1
            console.print(f"[red]{e}[/red]", highlight=False)
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
    """Serve the nightly flow on a schedule; each run processes yesterday's folder (resuming if run again)."""
    try:
        url = _check_url(_url(db))
        _open_store(url, migrate=True, must_exist=False).close()
    except ConfigError as e:
        raise _fail(e) from None
    if not inbox.is_dir():
        raise _fail(InputError("E040", inbox))
    _prefect_environment()
    from flows.nightly import nightly

    nightly.serve(name="zhijian-nightly", cron=cron, parameters={"inbox": str(inbox), "db_url": url})


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
    members: Annotated[int, typer.Option(
        "--members", min=1, help="networks trained from seeds seed, seed+1, ...; the judge averages them")] = 3,
    corrections: Annotated[bool, typer.Option(
        "--corrections/--no-corrections", help="include reviewers' corrections from the store")] = True,
    db: DbOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the learned judge on the corpus (and reviewers' corrections); writes the model folder and its card."""
    from pipeline.learning import numerics

    numerics.pin()  # before torch is imported: the same bytes on any x86-64 machine
    _setup_logging(verbose)
    from pipeline.learning.card import write_card
    from pipeline.learning.corpus import load_corpus
    from pipeline.learning.training import TrainOptions, corrections_from_store
    from pipeline.learning.training import train as train_model

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
    options = TrainOptions(out=target, base=base, epochs=epochs, seed=seed, members=members)
    with _progress() as progress:
        bar = progress.add_task("epochs", total=epochs * members)

        def tick(epoch: int, total: int, loss: float) -> None:
            progress.update(bar, completed=epoch, description=f"epoch {epoch}/{total} loss {loss:.3f}")

        try:
            _, summary = train_model([*conversations, *from_store], options, settings, progress=tick)
        except ZhijianError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    card = write_card(target, summary)
    split = summary["conversations"]
    table = Table(title=f"report split: {split['report']} conversations, neither trained nor tuned on")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary["report"].items():
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
    from pipeline.learning.corpus import parse_correction
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
    from pipeline.evaluation.day import judge_day
    from pipeline.evaluation.metrics import evaluate, load_labels, load_refs

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


__import__("pipeline.reports.cli", fromlist=["register"]).register(app)  # report …, signals (issue 9)
__import__("pipeline.web.cli", fromlist=["register"]).register(app)  # users, web, agreement (issue 8)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
