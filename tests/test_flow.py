"""The nightly Prefect flow (``flows.nightly``) end to end on a tiny inbox (see ``conftest.night``):
two real calls and a chat analysed; a silent call, a non-audio "call" and a broken chat recorded as
failures; each conversation stored as it is judged, a ``runs`` row per night, a re-run skipping what is
stored unchanged (``force`` redoing it), ids of another day left alone, one conversation the store refuses
becoming that conversation's failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from zhijian_testing import (
    BAD_CHAT_ID,
    DAY,
    GOOD_CHAT_ID,
    GOOD_MESSAGES,
    NOT_AUDIO_ID,
    SILENT_ID,
    Night,
    sidecar,
    write_chat,
)

from pipeline.config import Settings
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS
from pipeline.store import Store
from pipeline.store.models import ConversationRow, FindingRow, TurnRow

SPEC_KEYS = (
    "id", "channel", "agent_id", "date", "complaint_type", "complaint_confidence", "script",
    "courtesy_violation_turns", "customer_emotion", "escalation_risk", "dead_air", "score", "critical",
    "flags", "turns", "evidence",
)


def row_counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return {t.__tablename__: c.scalar(select(func.count()).select_from(t)) or 0
                    for t in (ConversationRow, TurnRow, FindingRow)}
    finally:
        engine.dispose()


def test_summary_counts(night: Night) -> None:
    s = night.summary
    assert s["date"] == night.date and s["db"] == night.db_url
    assert (s["conversations"], s["calls"], s["chats"]) == (6, 4, 1)
    assert (s["analysed"], s["failed"], s["skipped"], s["recognised"], s["unstored"]) == (3, 3, 0, 4, 0)
    got = {f["conversation_id"]: (f["stage"], f["code"]) for f in s["failures"]}
    assert got == {SILENT_ID: ("transcribe", "E006"), NOT_AUDIO_ID: ("transcribe", "E002"),
                   BAD_CHAT_ID: ("ingest", "E020")}
    for f in s["failures"]:
        assert f["source"] in f["message"]
        assert f["source"].startswith(str(night.inbox / night.date))


def test_store_has_results_and_failures(night: Night) -> None:
    with Store(night.db_url) as store:
        results = store.results(night.date)
        failures = store.failures(night.date)
        table = store.agent_table(night.date)
    assert [r["id"] for r in results] == sorted([*night.call_ids, GOOD_CHAT_ID])
    assert {f.conversation_id: f.code for f in failures} == {SILENT_ID: "E006", NOT_AUDIO_ID: "E002",
                                                             BAD_CHAT_ID: "E020"}
    silent = next(f for f in failures if f.conversation_id == SILENT_ID)
    assert silent.stage == "transcribe" and silent.source.endswith(f"{SILENT_ID}.wav")
    # per-agent numbers: only analysed conversations count
    agents = {a.agent_id: a.conversations for a in table}
    assert agents == {"A101": 2, "A102": 1}  # stereo_short + the chat; mono_short

    engine = create_engine(night.db_url)
    try:
        with engine.connect() as c:
            rows = {r.id: r for r in c.execute(select(ConversationRow))}
            n_turns = c.scalar(select(func.count()).select_from(TurnRow))
    finally:
        engine.dispose()
    assert {i for i, r in rows.items() if r.status == "ok"} == {*night.call_ids, GOOD_CHAT_ID}
    # a failed call is kept under its agent (from the sidecar); a broken chat has no agent to name
    assert rows[SILENT_ID].agent_id == "A103" and rows[SILENT_ID].channel == "call"
    assert rows[BAD_CHAT_ID].agent_id == "unknown"
    assert rows[NOT_AUDIO_ID].error_code == "E002" and rows[NOT_AUDIO_ID].failed_stage == "transcribe"
    assert n_turns == sum(len(r["turns"]) for r in results)


def test_export_records(night: Night) -> None:
    with Store(night.db_url) as store:
        results = {r["id"]: r for r in store.results(night.date)}
    for r in results.values():
        assert set(SPEC_KEYS) <= set(r), r["id"]
        assert r["date"] == night.date
        assert set(r["script"]) == set(SCRIPT_ITEMS)
        assert r["complaint_type"] in COMPLAINT_TYPES and r["customer_emotion"] in EMOTIONS
        assert 0 <= r["complaint_confidence"] <= 1
        assert 0 <= r["score"] <= 100
        assert isinstance(r["critical"], bool) and isinstance(r["flags"], list)
        assert [t["turn"] for t in r["turns"]] == list(range(len(r["turns"])))
        for e in r["evidence"]:
            assert 0 <= e["turn"] < len(r["turns"])
        json.dumps(r, ensure_ascii=False)

    stereo = results[sidecar("stereo_short")["id"]]
    assert stereo["channel"] == "call" and stereo["agent_id"] == "A101"
    assert {t["role"] for t in stereo["turns"]} == {"agent", "customer"}
    assert all(t["start"] < t["end"] for t in stereo["turns"])
    assert stereo["dead_air"] is False

    mono = results[sidecar("mono_short")["id"]]
    assert mono["channel"] == "call" and mono["agent_id"] == "A102" and mono["turns"]

    chat = results[GOOD_CHAT_ID]
    assert chat["channel"] == "chat" and chat["dead_air"] is False
    assert [(t["role"], t["text"]) for t in chat["turns"]] == [(m["role"], m["text"]) for m in GOOD_MESSAGES]
    assert all(t["start"] is None for t in chat["turns"])


def test_runs_row(night: Night) -> None:
    with Store(night.db_url) as store:
        [run] = [r for r in store.runs(night.date) if r["id"] == night.summary["run_id"]]
    assert run["status"] == "finished" and run["finished_at"] is not None
    assert run["pipeline_version"] == night.summary["pipeline_version"]
    assert (run["counts"]["analysed"], run["counts"]["failed"]) == (3, 3)
    assert {f["conversation_id"] for f in run["counts"]["failures"]} == {SILENT_ID, NOT_AUDIO_ID, BAD_CHAT_ID}


def test_rerun_skips_what_is_stored(night: Night) -> None:
    """Same files, same pipeline: nothing is recognised or judged again, and nothing changes."""
    from flows.nightly import nightly

    before = row_counts(night.db_url)
    assert before["conversations"] == 6
    with Store(night.db_url) as store:
        results_before = store.results(night.date)

    summary = nightly(str(night.inbox), night.date, night.db_url)

    assert (summary["analysed"], summary["failed"], summary["skipped"], summary["recognised"]) == (0, 0, 6, 0)
    assert row_counts(night.db_url) == before
    with Store(night.db_url) as store:
        assert store.results(night.date) == results_before


def _chat_day(tmp_path: Path, day: str, ids: list[str]) -> Path:
    for i, conv_id in enumerate(ids):
        write_chat(tmp_path / "inbox" / day / "chats" / f"{conv_id}.json", conv_id, agent_id=f"A10{i % 2 + 1}")
    return tmp_path / "inbox"


def test_force_redoes_and_keeps_human_decisions(tmp_path: Path, settings: Settings) -> None:
    from flows.nightly import nightly

    inbox = _chat_day(tmp_path, DAY, ["W-f1", "W-f2"])
    db_url = f"sqlite:///{tmp_path / 'force.db'}"
    nightly(str(inbox), DAY, db_url)
    with Store(db_url) as store:
        store.decide("W-f1", [("complaint_type", "noise", "楼上装修")], by="qa01", kind="review")
        decided = store.results(DAY)

    again = nightly(str(inbox), DAY, db_url, force=True)

    assert (again["analysed"], again["skipped"]) == (2, 0)
    with Store(db_url) as store:
        assert store.results(DAY) == decided  # the same machine results, the reviewer's decision still in force
        assert store.results(DAY)[0]["complaint_type"] == "noise"
        assert store.count(DAY) == 2


def test_changed_file_is_redone(tmp_path: Path, settings: Settings) -> None:
    from flows.nightly import nightly

    inbox = _chat_day(tmp_path, DAY, ["W-c1", "W-c2"])
    db_url = f"sqlite:///{tmp_path / 'changed.db'}"
    nightly(str(inbox), DAY, db_url)
    write_chat(inbox / DAY / "chats" / "W-c2.json", "W-c2", agent_id="A109")

    again = nightly(str(inbox), DAY, db_url)

    assert (again["analysed"], again["skipped"]) == (1, 1)
    with Store(db_url) as store:
        assert [r["agent_id"] for r in store.results(DAY)] == ["A101", "A109"]


def test_id_of_another_day_is_a_coded_failure(tmp_path: Path, settings: Settings) -> None:
    """A chat re-delivered into a later day: that day gets an E031 failure naming both days, stored under
    ``<id>~<tonight>``; the earlier day's result, export and agent table are untouched."""
    from flows.nightly import nightly

    first, later = "2026-01-01", "2026-01-02"
    inbox = _chat_day(tmp_path, first, ["W-x1", "W-x2"])
    write_chat(inbox / later / "chats" / "W-x2.json", "W-x2", agent_id="A107")
    write_chat(inbox / later / "chats" / "W-y1.json", "W-y1")
    db_url = f"sqlite:///{tmp_path / 'days.db'}"
    nightly(str(inbox), first, db_url)
    with Store(db_url) as store:
        before, table_before = store.results(first), store.agent_table(first)

    summary = nightly(str(inbox), later, db_url)

    assert (summary["analysed"], summary["failed"]) == (1, 1)
    [f] = summary["failures"]
    assert (f["conversation_id"], f["code"]) == (f"W-x2~{later}", "E031")
    assert first in f["message"] and later in f["message"] and f["agent_id"] == "A107"
    with Store(db_url) as store:
        assert store.results(first) == before and store.agent_table(first) == table_before
        assert [r["id"] for r in store.results(later)] == ["W-y1"]
        assert [(x.conversation_id, x.code) for x in store.failures(later)] == [(f"W-x2~{later}", "E031")]
    # and again: still one failure row, nothing moved
    nightly(str(inbox), later, db_url)
    with Store(db_url) as store:
        assert store.results(first) == before and store.count(later) == 2


def test_one_conversation_the_store_refuses_fails_alone(tmp_path: Path, settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The store raising for one conversation (not for being away) makes that conversation an E033 failure
    row; the others are stored."""
    from flows.nightly import nightly

    inbox = _chat_day(tmp_path, DAY, ["W-s1", "W-s2", "W-s3"])
    db_url = f"sqlite:///{tmp_path / 'refuse.db'}"
    real = Store.save_analysis

    def refuse(self: Store, analysis: Any, **kw: Any) -> None:
        if analysis.result.id == "W-s2":
            raise ValueError("value out of range for the column")
        real(self, analysis, **kw)

    monkeypatch.setattr(Store, "save_analysis", refuse)
    summary = nightly(str(inbox), DAY, db_url)

    assert (summary["analysed"], summary["failed"], summary["unstored"]) == (2, 1, 0)
    with Store(db_url) as store:
        assert [r["id"] for r in store.results(DAY)] == ["W-s1", "W-s3"]
        [f] = store.failures(DAY)
    assert (f.conversation_id, f.code, f.stage, f.agent_id) == ("W-s2", "E033", "store", "A102")
    assert "value out of range" in f.message
    monkeypatch.undo()
    again = nightly(str(inbox), DAY, db_url)  # a store failure is transient: redone, not skipped
    assert (again["analysed"], again["skipped"]) == (1, 2)


def test_bad_date_fails_before_any_work(tmp_path: Path, settings: Settings) -> None:
    from flows.nightly import nightly
    from pipeline.errors import ConfigError

    (tmp_path / "inbox" / "2026-12-1").mkdir(parents=True)
    with pytest.raises(ConfigError) as e:
        nightly(str(tmp_path / "inbox"), "2026-12-1", f"sqlite:///{tmp_path / 'x.db'}")
    assert e.value.code == "E042"
    assert not (tmp_path / "x.db").exists()


def test_duplicate_id_does_not_stop_the_night(tmp_path: Path, settings: Settings) -> None:
    """Two chats claim one id: the first is analysed, the second is an E030 failure kept in the store
    under a name of its own (id~file), and the night goes on."""
    from flows.nightly import nightly

    day = tmp_path / "inbox" / DAY
    write_chat(day / "chats" / "W-a.json", "W-dup")
    write_chat(day / "chats" / "W-b.json", "W-dup")
    write_chat(day / "chats" / "W-c.json", "W-other", agent_id="A102")
    db_url = f"sqlite:///{tmp_path / 'dup.db'}"

    summary = nightly(str(tmp_path / "inbox"), DAY, db_url)

    assert (summary["conversations"], summary["analysed"], summary["failed"]) == (3, 2, 1)
    [dup] = summary["failures"]
    assert (dup["conversation_id"], dup["code"]) == ("W-dup~W-b.json", "E030")
    assert str(day / "chats" / "W-b.json") in dup["message"]
    with Store(db_url) as store:
        assert [r["id"] for r in store.results(DAY)] == ["W-dup", "W-other"]
        assert store.results(DAY)[0]["agent_id"] == "A101"
        assert [(f.conversation_id, f.code) for f in store.failures(DAY)] == [("W-dup~W-b.json", "E030")]
