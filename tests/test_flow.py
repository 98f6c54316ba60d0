"""The nightly Prefect flow (``flows.nightly``) end to end on a tiny inbox (see ``conftest.night``):
two real calls and a chat analysed; a silent call, a non-audio "call" and a broken chat recorded as
failures; the store written whole and a re-run leaving it the same."""

from __future__ import annotations

import json
from pathlib import Path

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
from pipeline.store.models import AgentDailyRow, ConversationRow, FindingRow, TurnRow

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
                    for t in (ConversationRow, TurnRow, FindingRow, AgentDailyRow)}
    finally:
        engine.dispose()


def test_summary_counts(night: Night) -> None:
    s = night.summary
    assert s["date"] == night.date and s["db"] == night.db_url
    assert (s["conversations"], s["calls"], s["chats"]) == (6, 4, 1)
    assert (s["analysed"], s["failed"]) == (3, 3)
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


def test_rerun_leaves_the_same_rows(night: Night) -> None:
    from flows.nightly import nightly

    before = row_counts(night.db_url)
    assert before["conversations"] == 6
    with Store(night.db_url) as store:
        results_before = store.results(night.date)

    summary = nightly(str(night.inbox), night.date, night.db_url)

    assert (summary["analysed"], summary["failed"]) == (3, 3)
    assert row_counts(night.db_url) == before
    with Store(night.db_url) as store:
        results_after = store.results(night.date)
    assert [r["id"] for r in results_after] == [r["id"] for r in results_before]
    # recognition and judging are deterministic: the same night gives the same records
    assert results_after == results_before


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
