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

Calls are recognised in groups (``pipeline.asr.transcribe_jobs``, which batches recognition across the
calls of a group). In-process (the default) a ``ThreadPoolTaskRunner`` recognises and a second one judges
and stores, ``BATCH`` conversations at a time. On Dask (``workers`` > 0: a local cluster of that many
processes; ``dask_address``: an existing scheduler and its workers) each group is one task that
recognises, judges and stores on its worker: every worker loads the models once (per-process caches) and
writes to the store itself, so the flow process holds only ids, content hashes and ``Outcome``s, never a
transcript. Recognition on a worker is bounded by a Prefect global concurrency limit of its own
(``transcribe_concurrency`` slots, named per night and worker, so a killed night's lease never holds up
the next one); the progress callback stays in the flow process and is fed from the returned Outcomes.

Runs without a Prefect server (ephemeral API). To run every night at 02:00 for yesterday:
``zhijian serve --inbox /srv/inbox --cron "0 2 * * *"`` (see README).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
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
from pipeline.asr import transcribe_jobs
from pipeline.config import Settings, get_settings
from pipeline.errors import InputError, ZhijianError
from pipeline.ingest import CallJob, check_date, discover, failure, read_chat
from pipeline.schema import Analysis, ConversationMeta, Failure, Transcript
from pipeline.store import OtherDay, Store
from pipeline.version import content_hash, pipeline_version

log = logging.getLogger("zhijian")

# failures that a re-run redoes even when the input and the pipeline are unchanged: they may not happen again
TRANSIENT = frozenset({"E009", "E033", "E099"})
ASR_LIMIT_PREFIX = "zhijian-asr"
LEASE_SECONDS = 120.0  # a recognition slot's lease (renewed by Prefect while the group is recognised)
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

    def __init__(self, code: str, path: str | None = None, **kwargs: object) -> None:
        super().__init__(code, path, **kwargs)
        self._kwargs = kwargs

    def __reduce__(self) -> tuple[Any, ...]:
        # raised on a Dask worker, it travels back to the flow by pickle: rebuilt from its code and values
        return _rebuild_unavailable, (self.code, self.path, self._kwargs)


def _rebuild_unavailable(code: str, path: str | None, kwargs: dict[str, object]) -> StoreUnavailable:
    return StoreUnavailable(code, path, **kwargs)


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
    asr_limit: str = ""  # on Dask: the prefix of the workers' recognition concurrency limits


@dataclass(frozen=True)
class ChatRef:
    """A chat file found by discover; the worker reads it (the flow keeps no transcripts)."""

    conversation_id: str
    path: str
    content_hash: str | None
    meta: ConversationMeta  # who and what (not the messages): a cross-day failure stays on its agent's record


def identity(item: CallJob | ChatRef | Failure) -> tuple[str, str, ConversationMeta | None]:
    """A planned conversation's id, the file it came from and who and what it is (an ingest failure may
    know nothing of that)."""
    if isinstance(item, ChatRef):
        return item.conversation_id, item.path, item.meta
    if isinstance(item, CallJob):
        return item.meta.id, item.meta.source, item.meta
    return item.conversation_id, item.source, None


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
def transcribe(jobs: list[CallJob], settings: Settings,
               progress: ProgressCallback | None = None) -> list[Transcript | Failure]:
    """One group of calls, recognised together; each call's transcript or failure, in order."""
    for job in jobs:
        _tell(progress, "recognising", job.meta.id, str(job.audio_path))
    results = transcribe_jobs(jobs, settings)
    for job in jobs:
        _tell(progress, "recognised", job.meta.id, str(job.audio_path))
    return results


def _judge_and_store(items: Sequence[Transcript | Failure | ChatRef], digests: dict[str, str | None],
                     ctx: NightContext) -> list[Outcome]:
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


@task(name="judge-and-store", cache_policy=NO_CACHE)
def judge_and_store(items: list[Transcript | Failure | ChatRef], digests: dict[str, str | None],
                    ctx: NightContext) -> list[Outcome]:
    """Judge the transcripts in one batch (``Analyser.pipe``), then store each conversation — analysis or
    failure — in its own transaction, in order. Chats are read here from their files."""
    return _judge_and_store(items, digests, ctx)


_limits: set[str] = set()
_limits_lock = threading.Lock()


def _worker_limit(ctx: NightContext) -> str:
    """This worker's recognition limit for tonight (created on first use, ``transcribe_concurrency`` slots):
    one per worker process, so the slots are the worker's, wherever it runs."""
    from distributed import get_worker
    from prefect import get_client

    name = f"{ctx.asr_limit}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', get_worker().address)}"
    with _limits_lock:
        if name not in _limits:
            with get_client(sync_client=True) as client:
                client.upsert_global_concurrency_limit_by_name(name, ctx.settings.transcribe_concurrency)
            _limits.add(name)
    return name


@task(name="recognise-judge-store", cache_policy=NO_CACHE)
def recognise_judge_store(jobs: list[CallJob], digests: dict[str, str | None], ctx: NightContext) -> list[Outcome]:
    """On a Dask worker: one group of calls recognised (under the worker's concurrency limit), judged and
    stored there; only the Outcomes go back to the flow."""
    from prefect.concurrency.sync import concurrency

    with concurrency(_worker_limit(ctx), occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        heard = transcribe_jobs(jobs, ctx.settings)
    return _judge_and_store(heard, digests, ctx)


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


def _groups(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for at in range(0, len(items), size):
        yield list(items[at:at + size])


def units(todo: Sequence[CallJob | ChatRef], settings: Settings) -> tuple[list[list[ChatRef]], list[list[CallJob]]]:
    """The night's units of work, in process and on Dask alike: chats in batches of ``BATCH`` (judged
    together), calls in groups of ``settings.asr.calls_per_batch`` (one recognition task each)."""
    return (list(_groups([i for i in todo if isinstance(i, ChatRef)], BATCH)),
            list(_groups([i for i in todo if isinstance(i, CallJob)], settings.asr.calls_per_batch)))


def _calls_in_order(runner: ThreadPoolTaskRunner[Any], groups: Sequence[list[CallJob]], settings: Settings,
                    progress: ProgressCallback | None) -> Iterator[Transcript | Failure]:
    """Each call's transcript or failure, in order; at most ``concurrency`` groups recognised at once and one
    more queued each, so nothing piles up in the flow process."""
    window: deque[PrefectFuture[Any]] = deque()
    ahead = 2 * settings.transcribe_concurrency
    for group in groups:
        window.append(runner.submit(transcribe, parameters={"jobs": group, "settings": settings,
                                                           "progress": progress}))
        if len(window) >= ahead:
            yield from window.popleft().result()
    while window:
        yield from window.popleft().result()


def _api_url() -> str:
    """The Prefect API this flow reports to (an ephemeral one's too), for the workers to report to."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or str(get_client(sync_client=True).api_url)


def _drop_limits(prefix: str) -> None:
    """Delete tonight's recognition limits (their leases with them)."""
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            names: list[str] = []
            offset = 0
            while page := client.read_global_concurrency_limits(limit=200, offset=offset):
                names += [lim.name for lim in page if lim.name.startswith(prefix)]
                offset += len(page)
            for name in names:
                client.delete_global_concurrency_limit_by_name(name)
    except Exception as e:  # a leftover limit is named for this night only: it never holds up another
        log.warning("recognition limits %s* could not be removed: %s", prefix, e)


async def _quiesce_worker() -> None:
    """Run on each worker before the night lets go of it: its Prefect events sent (a local worker whose
    sender is still busy is killed only after the nanny's 4 s wait) and its store connections closed."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        drained = service.drain_all(timeout=5)
        if inspect.isawaitable(drained):
            await drained
    close_stores()


def _dask_runner(settings: Settings, workers: int, address: str | None) -> Any:
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    cfg = settings.dask
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": workers, "threads_per_worker": cfg.threads_per_worker, "processes": True,
        "memory_limit": cfg.memory_limit, "dashboard_address": None, "host": "127.0.0.1"})


def _on_dask(runner: Any, todo: Sequence[CallJob | ChatRef], digests: dict[str, str | None], ctx: NightContext,
             progress: ProgressCallback | None, count: Callable[[list[Outcome]], None],
             counts: dict[str, Any], ahead: int) -> None:
    """Every chat batch and call group as a task on the workers, at most ``ahead`` in flight; each task's
    Outcomes counted (and shown) as it ends."""
    import distributed

    chat_batches, call_groups = units(todo, ctx.settings)
    work: list[tuple[Any, list[Any]]] = [(judge_and_store, b) for b in chat_batches]
    work += [(recognise_judge_store, g) for g in call_groups]
    flying: dict[Any, tuple[Any, list[Any]]] = {}

    def lost(group: list[Any], e: BaseException) -> list[Outcome]:
        """A group whose task did not come back (its worker died, or a bug): its conversations are reported
        as not stored (what the worker committed before stays; the next run of the day does the rest)."""
        log.error("a group of %d conversations was lost on its worker: %s: %s", len(group), type(e).__name__, e)
        out = []
        for item in group:
            conv_id, source, meta = identity(item)
            err = InputError("E099", source, detail=f"lost on its Dask worker: {type(e).__name__}: {e}"[:300])
            f = failure(conv_id, Path(source), err, stage="worker", meta=meta)
            out.append(Outcome(conv_id, ok=False, stored=False, failure=f.model_dump(mode="json")))
        return out

    def land(block: bool) -> None:
        if not flying:
            return
        if block:
            with runner.client.as_current():  # the night's client is not Dask's default one
                done = distributed.wait(list(flying), return_when="FIRST_COMPLETED").done
        else:
            done = {f for f in flying if f.done()}
        for wrapped in done:
            future, group = flying.pop(wrapped)
            try:
                outcomes = future.result()
                counts["recognised"] += sum(isinstance(i, CallJob) for i in group)
            except (StoreUnavailable, KeyboardInterrupt):
                raise
            except Exception as e:
                outcomes = lost(group, e)
            count(outcomes)
            for o in outcomes:
                _tell(progress, "stored" if o.ok else "failed", o.conversation_id)

    for fn, group in work:
        mine = {k: digests.get(k) for k in (identity(g)[0] for g in group)}
        key = "items" if fn is judge_and_store else "jobs"
        future = runner.submit(fn, parameters={key: group, "digests": mine, "ctx": ctx})
        flying[future.wrapped_future] = (future, group)
        land(block=len(flying) >= ahead)
    while flying:
        land(block=True)


@flow(name="zhijian-nightly", validate_parameters=False)
def nightly(inbox: str, date: str | None = None, db_url: str | None = None, force: bool = False,
            progress: ProgressCallback | None = None, workers: int | None = None,
            dask_address: str | None = None) -> dict[str, Any]:
    """Process ``inbox/<date>/`` (default: yesterday): each conversation stored as soon as it is judged;
    what is already stored unchanged is skipped unless ``force``. Returns the night's summary.

    ``workers`` > 0 runs the night on a local Dask cluster of that many processes; ``dask_address`` (or
    ZHIJIAN_DASK_ADDRESS, ``settings.dask.address``) on an existing Dask scheduler's workers. Default
    (``settings.dask.workers``, 0 unless set): in-process."""
    settings = get_settings()
    address = dask_address or os.environ.get("ZHIJIAN_DASK_ADDRESS") or settings.dask.address
    n_workers = settings.dask.workers if workers is None else workers
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
    on_dask = bool(address) or n_workers > 0
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
    dask = ExitStack()
    try:
        plan = discover_day(Path(inbox), day)
        ids = [identity(p)[0] for p in plan]
        counts["conversations"] = len(plan)
        counts["calls"] = sum(isinstance(p, CallJob) for p in plan)
        counts["chats"] = sum(isinstance(p, ChatRef) for p in plan)
        _tell(progress, "planned", total=len(plan))
        digests = {i: digest_of(p) for i, p in zip(ids, plan, strict=True)}
        stored = stored_versions(url, settings, ids)
        todo: list[CallJob | ChatRef] = []  # ingest failures go to ingest_failures
        ingest_failures: list[Failure] = []
        for conv_id, item in zip(ids, plan, strict=True):
            had = stored.get(conv_id)
            if had is not None and had[0] != day and isinstance(item, Failure):
                ingest_failures.append(item.model_copy(update={"conversation_id": f"{conv_id}~{day}"}))
            elif had is not None and had[0] != day:  # the id is another day's: leave that day alone
                _, source, meta = identity(item)
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

        if on_dask:
            _run_on_dask(dask, todo, digests, ctx, progress, count, counts, n_workers, address)
            todo = []

        def judge(batch: list[Any]) -> None:
            count(runner.submit(judge_and_store, parameters={"items": batch, "digests": digests, "ctx": ctx}).result())

        # chats are judged (the judges loading first) while the first calls are recognised: judging is one
        # thread and recognition leaves a core idle while it decodes; a night with chats waited ~15 s for them
        chat_batches, call_groups = units(todo, settings)
        chats = [runner.submit(judge_and_store, parameters={"items": b, "digests": digests, "ctx": ctx})
                 for b in chat_batches]
        # calls: recognised one after the other (bounded pool), judged BATCH at a time, or sooner once the
        # batch has been call_batch_seconds in the making, so a long night's results are stored as it goes
        batch: list[Transcript | Failure] = []
        since = time.monotonic()
        for heard in _calls_in_order(asr, call_groups, settings, progress):
            counts["recognised"] += 1
            batch.append(heard)
            if len(batch) >= BATCH or time.monotonic() - since >= settings.night.call_batch_seconds:
                judge(batch)
                batch, since = [], time.monotonic()
        if batch:
            judge(batch)
        for future in chats:
            count(future.result())
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            dask.close()  # the local cluster's workers stop here; tonight's recognition limits are dropped
        except Exception as e:
            log.warning("the Dask cluster did not close cleanly: %s", e)
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


def _run_on_dask(stack: ExitStack, todo: Sequence[CallJob | ChatRef], digests: dict[str, str | None],
                 ctx: NightContext, progress: ProgressCallback | None, count: Callable[[list[Outcome]], None],
                 counts: dict[str, Any], n_workers: int, address: str | None) -> None:
    """The night's work on Dask. The workers report to this flow's Prefect API (an ephemeral one included:
    a remote worker needs PREFECT_API_URL set to a server it can reach), and the flow run's parameters they
    are sent leave the progress callback behind (it is this process's; it is fed from the Outcomes)."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = _api_url()
    if address and re.match(r"https?://(127\.|localhost)", api):
        log.warning("the Prefect API is %s: workers on other machines cannot reach it; start `prefect server "
                    "start --host 0.0.0.0` and set PREFECT_API_URL (README, \"Workers on several machines\")", api)
    stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
    run_ctx = FlowRunContext.get()
    if run_ctx is not None:
        stack.enter_context(run_ctx.model_copy(update={"parameters": {
            k: v for k, v in (run_ctx.parameters or {}).items() if k != "progress"}}))
    ctx = replace(ctx, progress=None, asr_limit=f"{ASR_LIMIT_PREFIX}-{ctx.run_id}-{uuid.uuid4().hex[:8]}")
    stack.callback(_drop_limits, ctx.asr_limit)
    runner = stack.enter_context(_dask_runner(ctx.settings, n_workers, address))
    stack.callback(runner.client.run, _quiesce_worker, on_error="ignore")
    nthreads = sum(runner.client.nthreads().values()) or 1
    log.info("night on Dask: %d workers, %d threads (%s)", len(runner.client.nthreads()), nthreads,
             address or "local cluster")
    _on_dask(runner, todo, digests, ctx, progress, count,
             counts, ahead=2 * nthreads)


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
