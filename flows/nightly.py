"""The nightly Prefect flow: discover → for each call transcribe → judge (in batches) → save each → summary;
chats are judged in batches and saved as they are judged.

The flow only orchestrates; every task is a thin call into ``pipeline``. Each conversation is committed in a
transaction of its own as soon as it is judged, so a crash, a kill or Ctrl-C loses at most the conversations
being worked on. A ``runs`` row records the night (started, finished, status, counts, failures).

Resuming: a conversation stored for the same day from the same content hash by the same pipeline version
(``pipeline.version``) is skipped — counted in the summary — unless ``force``. A failure that may be
transient (time budget, store error, unexpected error) is always redone.

Retries are on I/O only: reading the inbox (Prefect retries with backoff on ``OSError``) and writing the store
(each conversation's transaction, ``settings.night.store_retry_delays``, then E034). Recognising and judging are
deterministic, so retrying them would only repeat a failure. A bad recording becomes a ``Failure`` and the
night goes on; one conversation the store refuses becomes that conversation's failure row (E033).

Work units are ready for a distributed task runner: the flow process holds ids, content hashes and
summaries; transcripts travel from a ``transcribe`` task to a ``judge_and_store`` task at most ``BATCH``
at a time, and workers open the store themselves.

Runs without a Prefect server (ephemeral API). To run every night at 02:00 for yesterday:
``zhijian serve --inbox /srv/inbox --cron "0 2 * * *"`` (see README).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date as date_cls
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pipeline.analysis import BATCH, Analyser
from pipeline.asr import transcribe_job
from pipeline.config import Settings, get_settings
from pipeline.errors import InputError, ZhijianError
from pipeline.ingest import CallJob, check_date, discover, failure, read_chat
from pipeline.schema import Analysis, ConversationMeta, Failure, Transcript
from pipeline.store import OtherDay, Store
from pipeline.version import content_hash, pipeline_version

log = logging.getLogger("zhijian")

# failures that a re-run redoes even when the input and the pipeline are unchanged: they may not happen again
TRANSIENT = frozenset({"E009", "E033", "E099"})
T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """What the night just did, for a progress display. ``stage``: planned (``total`` known), skipped,
    recognising (a call's recognition starts: ``source`` is its file), recognised, stored, failed."""

    stage: str
    conversation_id: str = ""
    source: str = ""
    total: int | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def _tell(progress: ProgressCallback | None, stage: str, conv_id: str = "", source: str = "",
          total: int | None = None) -> None:
    if progress is not None:
        progress(ProgressEvent(stage, conv_id, source, total))


class StoreUnavailable(ZhijianError):
    """The database did not answer through every retry (E034). Everything committed before stays."""


def _transient_db_error(e: BaseException) -> bool:
    if isinstance(e, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(e, DBAPIError) and bool(e.connection_invalidated)


def with_retries(what: str, fn: Callable[[], T], delays: Sequence[float]) -> T:
    """``fn()``, retried after each of ``delays`` (seconds) while the database is unreachable; then E034."""
    for attempt in range(len(delays) + 1):
        try:
            return fn()
        except Exception as e:
            if not _transient_db_error(e):
                raise
            detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0][:200]
            if attempt == len(delays):
                raise StoreUnavailable("E034", attempts=attempt + 1, detail=f"{what}: {detail}") from e
            log.warning("database unavailable while %s (%s): retry %d of %d in %g s", what, detail, attempt + 1,
                        len(delays), delays[attempt])
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")


# -- the work units (each runs where the task runner puts it) -----------------------------------------


@dataclass(frozen=True)
class NightContext:
    """What a worker needs to judge and store tonight's conversations."""

    day: str
    db_url: str
    run_id: int
    version: str
    settings: Settings
    progress: ProgressCallback | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChatRef:
    """A chat file found by discover; the worker reads it (the flow keeps no transcripts)."""

    conversation_id: str
    path: str
    content_hash: str | None
    meta: ConversationMeta  # who and what (not the messages): a cross-day failure stays on its agent's record


@dataclass(frozen=True)
class Outcome:
    """One conversation's fate tonight, as the summary counts it."""

    conversation_id: str
    ok: bool
    stored: bool
    failure: dict[str, Any] | None = None


_stores: dict[str, Store] = {}
_analysers: dict[str, Analyser] = {}


def _store(ctx: NightContext) -> Store:
    """One store per worker process and database (the flow migrated it before any work)."""
    if ctx.db_url not in _stores:
        _stores[ctx.db_url] = Store(ctx.db_url, ctx.settings, migrate=False)
    return _stores[ctx.db_url]


def _analyser(ctx: NightContext) -> Analyser:
    if ctx.version not in _analysers:
        _analysers[ctx.version] = Analyser(ctx.settings)
    return _analysers[ctx.version]


def close_stores() -> None:
    for store in _stores.values():
        store.close()
    _stores.clear()


def cross_day(f_id: str, source: str, stored: str, ctx: NightContext, meta: Any = None) -> Failure:
    """E031: ``f_id`` is stored under another day. Tonight's file is kept as a failure under ``<id>~<tonight>``."""
    kept = f"{f_id}~{ctx.day}"
    err = InputError("E031", source, conv_id=f_id, stored=stored, tonight=ctx.day, kept=kept)
    return failure(kept, Path(source), err, meta=meta)


def save_failure(f: Failure, ctx: NightContext, digest: str | None) -> Outcome:
    """Store one failure (its own transaction, retried while the database is away)."""
    delays = ctx.settings.night.store_retry_delays
    store = _store(ctx)
    try:
        with_retries(f"storing {f.conversation_id}", lambda: store.save_failure(
            ctx.day, f, content_hash=digest, pipeline_version=ctx.version, run_id=ctx.run_id), delays)
    except OtherDay as e:
        return save_failure(cross_day(f.conversation_id, f.source, e.stored.isoformat(), ctx), ctx, None)
    except StoreUnavailable:
        raise
    except Exception:
        log.exception("%s: the failure record could not be stored", f.conversation_id)
        _tell(ctx.progress, "failed", f.conversation_id, f.source)
        return Outcome(f.conversation_id, ok=False, stored=False, failure=f.model_dump(mode="json"))
    log.warning("%s", f.message)
    _tell(ctx.progress, "failed", f.conversation_id, f.source)
    return Outcome(f.conversation_id, ok=False, stored=True, failure=f.model_dump(mode="json"))


def save_analysis(a: Analysis, ctx: NightContext, digest: str | None) -> Outcome:
    """Store one analysed conversation; if the store refuses it (not for being away), it becomes a failure."""
    conv_id, meta = a.result.id, a.transcript.meta
    try:
        with_retries(f"storing {conv_id}", lambda: _store(ctx).save_analysis(
            a, content_hash=digest, pipeline_version=ctx.version, run_id=ctx.run_id),
            ctx.settings.night.store_retry_delays)
    except OtherDay as e:
        return save_failure(cross_day(conv_id, meta.source, e.stored.isoformat(), ctx, meta), ctx, None)
    except StoreUnavailable:
        raise
    except Exception as e:
        log.warning("%s could not be stored", conv_id, exc_info=True)
        err = InputError("E033", meta.source, detail=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        return save_failure(failure(conv_id, Path(meta.source), err, stage="store", meta=meta), ctx, digest)
    _tell(ctx.progress, "stored", conv_id, meta.source)
    return Outcome(conv_id, ok=True, stored=True)


@task(name="discover", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=lambda _task, _run, state: isinstance(state.result(raise_on_failure=False), OSError),
      cache_policy=NO_CACHE)
def discover_day(inbox: Path, day: str) -> list[CallJob | ChatRef | Failure]:
    """The day's plan: calls to recognise, chats to read, failures found at ingest — with content hashes
    (``CallJob`` and ``Failure`` carry theirs in ``hashes``)."""
    plan: list[CallJob | ChatRef | Failure] = []
    for item in discover(inbox, day):
        if isinstance(item, Transcript):
            plan.append(ChatRef(item.meta.id, item.meta.source, content_hash(item.meta.source), item.meta))
        else:
            plan.append(item)
    return plan


def digest_of(item: CallJob | ChatRef | Failure) -> str | None:
    if isinstance(item, ChatRef):
        return item.content_hash
    if isinstance(item, CallJob):
        return content_hash(item.meta.source, item.meta.audio_path)
    if item.code == "E032":
        return None  # never read what lies outside the day's folder, not even to hash it
    return content_hash(item.source)


@task(name="stored-versions", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      cache_policy=NO_CACHE)
def stored_versions(db_url: str, settings: Settings, ids: list[str]) -> dict[str, tuple[str, str | None,
                                                                                        str | None, str, str | None]]:
    with Store(db_url, settings, migrate=False) as store:
        return {k: tuple(v) for k, v in store.stored_versions(ids).items()}  # type: ignore[misc]


@task(name="transcribe", tags=["asr-model"], cache_policy=NO_CACHE)
def transcribe(job: CallJob, settings: Settings, progress: ProgressCallback | None = None) -> Transcript | Failure:
    _tell(progress, "recognising", job.meta.id, str(job.audio_path))
    result = transcribe_job(job, settings)
    _tell(progress, "recognised", job.meta.id, str(job.audio_path))
    return result


@task(name="judge-and-store", cache_policy=NO_CACHE)
def judge_and_store(items: list[Transcript | Failure | ChatRef], digests: dict[str, str | None],
                    ctx: NightContext) -> list[Outcome]:
    """Judge the transcripts in one batch (``Analyser.pipe``), then store each conversation — analysis or
    failure — in its own transaction, in order. Chats are read here from their files."""
    out: list[Outcome] = []
    transcripts: list[Transcript] = []
    for item in items:
        if isinstance(item, ChatRef):
            try:
                transcripts.append(read_chat(Path(item.path)))
            except InputError as e:  # the file changed since discover
                out.append(save_failure(failure(item.conversation_id, Path(item.path), e), ctx,
                                        digests.get(item.conversation_id)))
        elif isinstance(item, Failure):
            out.append(save_failure(item, ctx, digests.get(item.conversation_id)))
        else:
            transcripts.append(item)
    if transcripts:
        for judged in _analyser(ctx).pipe(transcripts, ctx.day):
            if isinstance(judged, Failure):
                out.append(save_failure(judged, ctx, digests.get(judged.conversation_id)))
            else:
                out.append(save_analysis(judged, ctx, digests.get(judged.result.id)))
    return out


@task(name="store-failures", cache_policy=NO_CACHE)
def store_failures(failures: list[Failure], digests: dict[str, str | None], ctx: NightContext) -> list[Outcome]:
    return [save_failure(f, ctx, digests.get(f.conversation_id)) for f in failures]


# -- the flow ------------------------------------------------------------------------------------------


def skippable(stored: tuple[str, str | None, str | None, str, str | None] | None, day: str, digest: str | None,
              version: str) -> bool:
    """Already stored for ``day`` from the same content by the same pipeline, and not a transient failure."""
    if stored is None or digest is None:
        return False
    s_day, s_hash, s_version, status, code = stored
    return (s_day, s_hash, s_version) == (day, digest, version) and (status == "ok" or code not in TRANSIENT)


def _calls_in_order(runner: ThreadPoolTaskRunner[Any], jobs: Sequence[CallJob], settings: Settings,
                    progress: ProgressCallback | None) -> Iterator[Transcript | Failure]:
    """Each call's transcript or failure, in order; at most ``concurrency`` recognised at once and one more
    queued each, so nothing piles up in the flow process."""
    window: deque[PrefectFuture[Any]] = deque()
    ahead = 2 * settings.transcribe_concurrency
    pending = iter(jobs)
    for job in pending:
        window.append(runner.submit(transcribe, parameters={"job": job, "settings": settings, "progress": progress}))
        if len(window) >= ahead:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


@flow(name="zhijian-nightly", validate_parameters=False)
def nightly(inbox: str, date: str | None = None, db_url: str | None = None, force: bool = False,
            progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Process ``inbox/<date>/`` (default: yesterday): each conversation stored as soon as it is judged;
    what is already stored unchanged is skipped unless ``force``. Returns the night's summary."""
    settings = get_settings()
    day = check_date(date or (date_cls.today() - timedelta(days=1)).isoformat())
    url = db_url or settings.database_url
    started = time.monotonic()
    version = pipeline_version(settings)
    delays = settings.night.store_retry_delays

    def open_store() -> Store:
        return Store(url, settings, migrate=True)  # the night's writer migrates; readers never do

    store = with_retries("opening the database", open_store, delays)
    try:
        run_id = with_retries("starting the run", lambda: store.start_run(day, version, socket.gethostname()),
                              delays)
    finally:
        store.close()
    ctx = NightContext(day=day, db_url=url, run_id=run_id, version=version, settings=settings, progress=progress)
    counts: dict[str, Any] = {"conversations": 0, "calls": 0, "chats": 0, "analysed": 0, "failed": 0, "skipped": 0,
                              "recognised": 0, "unstored": 0}
    failures: list[dict[str, Any]] = []
    status = "failed"

    def count(outcomes: list[Outcome]) -> None:
        for o in outcomes:
            counts["analysed" if o.ok else "failed"] += 1
            counts["unstored"] += 0 if o.stored else 1
            if o.failure is not None:
                failures.append(o.failure)

    # two pools: recognition (bounded: the model is shared, the limit is memory/CPU) and judging + storing
    asr: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=settings.transcribe_concurrency)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=1)
    asr.__enter__()
    runner.__enter__()
    try:
        plan = discover_day(Path(inbox), day)
        ids = [p.conversation_id if isinstance(p, Failure | ChatRef) else p.meta.id for p in plan]
        counts["conversations"] = len(plan)
        counts["calls"] = sum(isinstance(p, CallJob) for p in plan)
        counts["chats"] = sum(isinstance(p, ChatRef) for p in plan)
        _tell(progress, "planned", total=len(plan))
        digests = {i: digest_of(p) for i, p in zip(ids, plan, strict=True)}
        stored = stored_versions(url, settings, ids)
        todo: list[CallJob | ChatRef | Failure] = []
        ingest_failures: list[Failure] = []
        for conv_id, item in zip(ids, plan, strict=True):
            had = stored.get(conv_id)
            if had is not None and had[0] != day and isinstance(item, Failure):
                ingest_failures.append(item.model_copy(update={"conversation_id": f"{conv_id}~{day}"}))
            elif had is not None and had[0] != day:  # the id is another day's: leave that day alone
                source = item.meta.source if isinstance(item, CallJob) else (
                    item.path if isinstance(item, ChatRef) else item.source)
                meta = item.meta if isinstance(item, CallJob | ChatRef) else None
                ingest_failures.append(cross_day(conv_id, source, had[0], ctx, meta))
            elif not force and skippable(had, day, digests[conv_id], version):
                counts["skipped"] += 1
                _tell(progress, "skipped", conv_id)
            elif isinstance(item, Failure):
                ingest_failures.append(item)
            else:
                todo.append(item)
        if counts["skipped"]:
            log.info("%d conversations already stored from the same files by pipeline %s: skipped (--force redoes "
                     "them)", counts["skipped"], version)
        if ingest_failures:
            count(runner.submit(store_failures, parameters={
                "failures": ingest_failures, "digests": digests, "ctx": ctx}).result())

        def judge(batch: list[Any]) -> None:
            count(runner.submit(judge_and_store, parameters={"items": batch, "digests": digests, "ctx": ctx}).result())

        chats = [i for i in todo if isinstance(i, ChatRef)]
        for at in range(0, len(chats), BATCH):
            judge(list(chats[at:at + BATCH]))
        # calls: recognised one after the other (bounded pool), judged BATCH at a time, or sooner once the
        # batch has been call_batch_seconds in the making, so a long night's results are stored as it goes
        batch: list[Transcript | Failure] = []
        since = time.monotonic()
        for heard in _calls_in_order(asr, [i for i in todo if isinstance(i, CallJob)], settings, progress):
            counts["recognised"] += 1
            batch.append(heard)
            if len(batch) >= BATCH or time.monotonic() - since >= settings.night.call_batch_seconds:
                judge(batch)
                batch, since = [], time.monotonic()
        if batch:
            judge(batch)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for pool in (asr, runner):
            if status == "interrupted" and pool._executor is not None:
                # stop now: queued calls are dropped, a call being recognised is abandoned (nothing of it
                # is stored yet); the caller exits the process
                pool._executor.shutdown(wait=False, cancel_futures=True)
                pool._executor = None
                pool.cancel_all()
            pool.__exit__(None, None, None)
        counts["seconds"] = round(time.monotonic() - started, 1)
        final = {**counts, "failures": failures}
        try:
            with Store(url, settings, migrate=False) as store:
                with_retries("closing the run", lambda: store.finish_run(run_id, status, final), delays[:2])
        except Exception as e:  # the database is away: the run stays 'running' and the next start closes it
            log.warning("run %d could not be closed in the database: %s", run_id, e)
        close_stores()
    log.info("night %s: %d analysed, %d failed, %d skipped", day, counts["analysed"], counts["failed"],
             counts["skipped"])
    return {"date": day, "db": url, "run_id": run_id, "pipeline_version": version, **counts, "failures": failures,
            "signals": day_signals(url, day, settings)}


@task(name="signals", cache_policy=NO_CACHE)
def day_signals(db_url: str, day: str, settings: Settings) -> dict[str, Any]:
    """The day's spikes and repeat complaints (REPORTS.md, "Signals") for the summary. A night whose results
    are stored is not failed by its report: an error here is logged and the summary says so."""
    from pipeline.reports.signals import signals_for

    try:
        with Store(db_url, settings, migrate=False) as store:
            return signals_for(store, day)
    except Exception as e:
        log.warning("signals for %s could not be computed: %s", day, e)
        return {"date": day, "spikes": [], "repeats": [], "error": str(e)}
