"""The nightly Prefect flow: discover → transcribe (mapped, model-limited) → judge (in batches) → score → store →
summary.

The flow only orchestrates; every task is a thin call into ``pipeline``. Retries are on I/O only
(reading the inbox, writing the store): recognising and judging are deterministic, so retrying them
would only repeat a failure. A bad recording becomes a ``Failure`` record and the night goes on.

Runs without a Prefect server (ephemeral API). To run every night at 02:00 for yesterday:
``zhijian serve --inbox /srv/inbox --cron "0 2 * * *"`` (see README).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date as date_cls
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.analysis import BATCH, Analyser
from pipeline.asr import transcribe_job
from pipeline.config import Settings, get_settings
from pipeline.ingest import CallJob, Item, discover
from pipeline.schema import Analysis, Failure, Transcript
from pipeline.store import Store

log = logging.getLogger("zhijian")

# Set by the CLI to drive its progress bar: called as (stage, conversation id, ok).
ProgressHook = Callable[[str, str, bool], None]
_progress: list[ProgressHook] = []


def on_progress(hook: ProgressHook | None) -> None:
    _progress.clear()
    if hook:
        _progress.append(hook)


def _tick(stage: str, conv_id: str, ok: bool) -> None:
    for hook in _progress:
        hook(stage, conv_id, ok)


@task(retries=2, retry_delay_seconds=5, name="discover")
def discover_day(inbox: Path, day: str) -> list[Item]:
    return list(discover(inbox, day))


@task(name="transcribe", tags=["asr-model"])
def transcribe(job: CallJob, settings: Settings) -> Transcript | Failure:
    result = transcribe_job(job, settings)
    _tick("transcribe", job.meta.id, isinstance(result, Transcript))
    return result


@task(name="judge")
def judge(analyser: Analyser, transcripts: list[Transcript], day: str) -> list[Analysis | Failure]:
    out = list(analyser.pipe(transcripts, day))
    for t, judged in zip(transcripts, out, strict=True):
        _tick("judge", t.meta.id, isinstance(judged, Analysis))
    return out


@task(retries=3, retry_delay_seconds=10, name="store")
def store_day(db_url: str, day: str, analyses: list[Analysis], failures: list[Failure]) -> None:
    store = Store(db_url)
    try:
        store.replace_day(day, analyses, failures)
    finally:
        store.close()


@flow(name="zhijian-nightly", log_prints=True)
def nightly(inbox: str, date: str | None = None, db_url: str | None = None) -> dict[str, Any]:
    """Process ``inbox/<date>/`` (default: yesterday) and store the day's results."""
    settings = get_settings()
    day = date or (date_cls.today() - timedelta(days=1)).isoformat()
    url = db_url or settings.database_url
    started = time.monotonic()
    items = discover_day(Path(inbox), day)
    failures = [i for i in items if isinstance(i, Failure)]
    calls = [i for i in items if isinstance(i, CallJob)]
    chats = [i for i in items if isinstance(i, Transcript)]
    for f in failures:
        log.warning("%s", f.message)
        _tick("ingest", f.conversation_id, False)

    # Recognition runs in a bounded pool: the model is loaded once and shared, so the limit is memory/CPU.
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=settings.transcribe_concurrency)
    transcripts: list[Transcript] = list(chats)
    with runner:
        futures = [runner.submit(transcribe, parameters={"job": job, "settings": settings}) for job in calls]
        for fut in futures:
            out = fut.result()
            (failures.append(out) if isinstance(out, Failure) else transcripts.append(out))

    analyser = Analyser(settings)
    analyses: list[Analysis] = []
    # judged a batch at a time: the model's forward pass is shared, and a failing batch is retried one by one
    for at in range(0, len(transcripts), BATCH):
        for judged in judge(analyser, transcripts[at:at + BATCH], day):
            (failures.append(judged) if isinstance(judged, Failure) else analyses.append(judged))
    store_day(url, day, analyses, failures)
    summary = {
        "date": day, "db": url, "conversations": len(items), "analysed": len(analyses),
        "failed": len(failures), "calls": len(calls), "chats": len(chats),
        "seconds": round(time.monotonic() - started, 1),
        "failures": [f.model_dump() for f in failures],
    }
    log.info("night %s: %d analysed, %d failed", day, len(analyses), len(failures))
    return summary
