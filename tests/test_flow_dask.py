"""The night on Dask workers: the ``night`` fixture's inbox (two real calls, a silent call, a non-audio
"call", a good and a broken chat) run on a 2-worker ``LocalCluster`` (processes) gives the same exported
result records, failures and counts as the single-process run; progress comes from the returned Outcomes;
each worker's recognition runs under a Prefect concurrency limit of its own, through the ephemeral API; a
killed night's leftover limit, its slot still leased, holds nothing up, and tonight's limits are gone when
the night ends."""

from __future__ import annotations

from pathlib import Path

from zhijian_testing import Night

from pipeline.config import Settings
from pipeline.store import Store


def test_two_workers_match_one_process(night: Night, tmp_path: Path, settings: Settings) -> None:
    from prefect import get_client

    from flows.nightly import ASR_LIMIT_PREFIX, ProgressEvent, nightly

    db_url = f"sqlite:///{tmp_path / 'dask.db'}"
    events: list[ProgressEvent] = []
    # what a night killed mid-recognition leaves: its worker's limit with the one slot leased for minutes
    leftover = f"{ASR_LIMIT_PREFIX}-1-0123abcd-tcp-127.0.0.1-40001"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(leftover, 1)
        client.increment_concurrency_slots_with_lease([leftover], 1, "concurrency", lease_duration=600)

    summary = nightly(str(night.inbox), night.date, db_url, progress=events.append, workers=2)

    same = ("conversations", "calls", "chats", "analysed", "failed", "skipped", "recognised", "unstored")
    assert {k: summary[k] for k in same} == {k: night.summary[k] for k in same}
    assert summary["pipeline_version"] == night.summary["pipeline_version"]
    assert sorted(summary["failures"], key=lambda f: f["conversation_id"]) == \
        sorted(night.summary["failures"], key=lambda f: f["conversation_id"])
    with Store(night.db_url) as one, Store(db_url) as two:
        assert two.results(night.date) == one.results(night.date)  # what `zhijian export` writes
        assert two.failures(night.date) == one.failures(night.date)
        assert [r["status"] for r in two.runs(night.date)] == ["finished"]
    # the flow process reports progress from the Outcomes: each conversation stored or failed once
    done = sorted((e.stage, e.conversation_id) for e in events if e.stage in ("stored", "failed"))
    expected = [("stored", i) for i in night.call_ids] + [("stored", "W20260101-0001")] + \
        [("failed", f["conversation_id"]) for f in night.summary["failures"]]
    assert done == sorted(expected)
    with get_client(sync_client=True) as client:
        left = {lim.name: lim.active_slots for lim in client.read_global_concurrency_limits(limit=200)}
        client.delete_global_concurrency_limit_by_name(leftover)
    assert [n for n in left if n.startswith(ASR_LIMIT_PREFIX)] == [leftover]  # tonight's are gone
    assert left[leftover] == 1  # not tonight's: its lease was never waited for
