"""The store on SQLite and PostgreSQL: same tests, same answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from zhijian_testing import postgres_url

from pipeline.schema import (
    SCRIPT_ITEMS,
    Analysis,
    ConversationMeta,
    Evidence,
    Failure,
    Finding,
    Result,
    ResultEvidence,
    ResultTurn,
    Score,
    Transcript,
    Turn,
)
from pipeline.store import OtherDay, StaleVersion, Store
from pipeline.store.models import (
    AuditRow,
    Base,
    ConversationRow,
    CorrectionRow,
    FindingRow,
    TurnRow,
    include_name,
)

DAY = "2026-11-21"
TZ = dt.timezone(dt.timedelta(hours=8))


# -- building records by hand ----------------------------------------------------------------------

def make_analysis(
    conv_id: str,
    agent_id: str = "A017",
    *,
    date: str = DAY,
    channel: str = "call",
    score: float = 90.0,
    critical: bool = False,
    missed: tuple[str, ...] = (),
    courtesy_turns: tuple[int, ...] = (),
    escalation: bool = False,
    dead_air: bool = False,
    flags: tuple[str, ...] = (),
    complaint: str = "repair",
) -> Analysis:
    texts = ["您好，阳光花园物业客服中心", "我家厨房水管漏水了", "好的，30分钟内安排师傅上门"]
    roles = ["agent", "customer", "agent"]
    is_call = channel == "call"
    turns = [
        Turn(index=i, role=r, text=t, start=i * 5.0 if is_call else None,
             end=i * 5.0 + 4.2 if is_call else None, confidence=0.875 if is_call else 1.0)
        for i, (r, t) in enumerate(zip(roles, texts, strict=True))
    ]
    meta = ConversationMeta(
        id=conv_id, channel=channel, agent_id=agent_id, agent_name=f"name-{agent_id}", team="阳光花园客服组",
        site="阳光花园", started_at=dt.datetime.fromisoformat(f"{date}T09:12:03+08:00"),
        source=f"/inbox/{date}/{conv_id}.json",
    )
    script = {item: item not in missed for item in SCRIPT_ITEMS}
    findings = [
        Finding(item="complaint_type", value=complaint, confidence=0.91, source="rules:1",
                evidence=[Evidence(turn=1, text="水管漏水", start=5.0, end=9.2)]),
        *(Finding(item=f"script.{k}", value=v, source="rules:1") for k, v in script.items()),
        Finding(item="courtesy_violation", value=bool(courtesy_turns), source="rules:1",
                evidence=[Evidence(turn=t, text=texts[t]) for t in courtesy_turns]),
        Finding(item="dead_air", value=dead_air, source="dead_air:1"),
    ]
    result = Result(
        id=conv_id, channel=channel, agent_id=agent_id, date=date, complaint_type=complaint,
        complaint_confidence=0.91, script=script, courtesy_violation_turns=list(courtesy_turns),
        customer_emotion="calm", escalation_risk=escalation, dead_air=dead_air, score=score,
        critical=critical,
        flags=list(flags), turns=[ResultTurn(turn=t.index, role=t.role, start=t.start, end=t.end, text=t.text)
                                 for t in turns],
        evidence=[ResultEvidence(item="greeting", turn=0, text="您好，阳光花园物业客服中心")],
    )
    return Analysis(
        date=date,
        transcript=Transcript(meta=meta, turns=turns, asr_model="whisper-base" if is_call else None),
        findings=findings, score=Score(score=score, critical=critical, flags=list(flags)), result=result,
    )


def make_failure(conv_id: str, code: str = "E006", message: str = "no speech found") -> Failure:
    return Failure(conversation_id=conv_id, source=f"/inbox/{DAY}/calls/{conv_id}.wav", stage="asr",
                   code=code, message=message)


# -- one database per test, of each kind -----------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'dir' / 'zhijian.db'}"  # parent dirs made on open
    else:
        yield from postgres_url()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def count(store: Store, model: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from pipeline.store.repository import HERE

    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


# -- tests -----------------------------------------------------------------------------------------

def test_migrates_on_open(db_url: str) -> None:
    store = Store(db_url)
    store.close()
    store = Store(db_url)  # a second open finds the schema at head and changes nothing
    try:
        with store.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())  # default schema: the test's own on PostgreSQL
            expected = {"conversations", "turns", "findings", "corrections", "audit_log", "runs", "alembic_version"}
            assert expected <= tables
            assert "agent_daily" not in tables  # 0002: per-agent numbers are aggregated from the in-force columns
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == _head()
            # the migrations and the models describe the same schema
            # (the search index's own tables — FTS5 on SQLite, search_docs on PostgreSQL — are the migrations' alone)
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        store.close()


def test_replace_day_writes_conversations_turns_findings(store: Store) -> None:
    a = make_analysis("C1")
    store.replace_day(DAY, [a, make_analysis("W1", "A021", channel="chat")], [])
    assert count(store, ConversationRow) == 2
    assert count(store, TurnRow) == 6
    assert count(store, FindingRow) == 2 * len(a.findings)
    with store.engine.connect() as conn:
        row = conn.execute(select(ConversationRow).where(ConversationRow.id == "C1")).one()
        assert (row.status, row.agent_id, row.channel, row.score, row.asr_model) == (
            "ok", "A017", "call", 90.0, "whisper-base")
        assert row.started_at == dt.datetime(2026, 11, 21, 1, 12, 3, tzinfo=dt.UTC)
        turn = conn.execute(select(TurnRow).where(TurnRow.conversation_id == "C1", TurnRow.turn == 1)).one()
        assert (turn.role, turn.start, turn.end, turn.text, turn.confidence) == (
            "customer", 5.0, 9.2, "我家厨房水管漏水了", 0.875)
        finding = conn.execute(select(FindingRow).where(FindingRow.conversation_id == "C1",
                                                        FindingRow.item == "complaint_type")).one()
        assert (finding.value, finding.confidence, finding.source) == ("repair", 0.91, "rules:1")
        assert finding.evidence == [{"turn": 1, "text": "水管漏水", "start": 5.0, "end": 9.2}]


def test_rerun_replaces_the_day(store: Store) -> None:
    first = [make_analysis("C1"), make_analysis("C2"), make_analysis("C3")]
    store.replace_day(DAY, first, [make_failure("C9")])
    store.replace_day(DAY, [make_analysis("C2", score=55.0), make_analysis("C4")], [])
    assert [r["id"] for r in store.results(DAY)] == ["C2", "C4"]
    assert [r["score"] for r in store.results(DAY)] == [55.0, 90.0]
    assert store.failures(DAY) == []
    assert count(store, ConversationRow) == 2
    assert count(store, TurnRow) == 6  # the removed conversations' turns went with them
    assert count(store, FindingRow, FindingRow.conversation_id.in_(["C1", "C3"])) == 0
    [agent] = store.agent_table(DAY)
    assert (agent.conversations, agent.score) == (2, 72.5)


def test_id_stored_under_another_day_is_never_moved(store: Store) -> None:
    other = "2026-11-20"
    store.replace_day(other, [make_analysis("C1", date=other), make_analysis("C2", "A099", date=other)], [])
    with pytest.raises(OtherDay, match="C2 is stored under 2026-11-20, not 2026-11-21"):
        store.save_analysis(make_analysis("C2", "A099"))
    with pytest.raises(OtherDay):
        store.save_failure(DAY, make_failure("C1"))
    assert [r["id"] for r in store.results(other)] == ["C1", "C2"]
    assert store.results(DAY) == []
    assert sorted(a.agent_id for a in store.agent_table(other)) == ["A017", "A099"]


def test_failures_are_recorded(store: Store) -> None:
    c8 = make_failure("C8", "E003", "audio stream is truncated or corrupt: eof").model_copy(update={
        "agent_id": "A017", "agent_name": "王丽", "channel": "call",
        "started_at": dt.datetime.fromisoformat("2026-11-21T09:00:00+08:00")})
    failures = [c8, make_failure("C7")]
    store.replace_day(DAY, [make_analysis("C1")], failures)
    got = {f.conversation_id: f for f in store.failures(DAY)}
    assert got["C8"] == c8.model_copy(update={"team": "", "site": ""})
    assert (got["C7"].code, got["C7"].agent_id, got["C7"].channel) == ("E006", "unknown", "unknown")
    assert [r["id"] for r in store.results(DAY)] == ["C1"]
    with store.engine.connect() as conn:
        failed = conn.execute(select(ConversationRow).where(ConversationRow.status == "failed"))
        rows = {r.id: r for r in failed}
    assert (rows["C8"].agent_id, rows["C8"].agent_name, rows["C8"].channel) == ("A017", "王丽", "call")
    assert (rows["C8"].error_code, rows["C8"].failed_stage) == ("E003", "asr")
    assert (rows["C7"].agent_id, rows["C7"].channel, rows["C7"].result) == ("unknown", "unknown", None)
    [agent] = store.agent_table(DAY)
    assert agent.conversations == 1  # failures are not scored


def test_agent_table_numbers(store: Store) -> None:
    store.replace_day(DAY, [
        make_analysis("C1", score=90.0, missed=("restate",), flags=("low_confidence",)),
        make_analysis("C2", score=40.0, critical=True, courtesy_turns=(0, 2), escalation=True, dead_air=True,
                      missed=("restate", "closing")),
        make_analysis("W1", channel="chat", score=80.0),
        make_analysis("W2", "A021", channel="chat", score=100.0),
    ], [make_failure("C9")])
    a017, a021 = store.agent_table(DAY)
    assert (a017.agent_id, a017.agent_name, a017.team) == ("A017", "name-A017", "阳光花园客服组")
    assert (a017.conversations, a017.score, a017.critical, a017.courtesy_violations, a017.escalations) == (
        3, 70.0, 1, 2, 1)
    assert a017.script["restate"] == pytest.approx(1 / 3)
    assert a017.script["closing"] == pytest.approx(2 / 3)
    assert a017.script["greeting"] == 1.0
    assert set(a017.script) == set(SCRIPT_ITEMS)
    assert (a021.conversations, a021.score, a021.critical, a021.escalations) == (1, 100.0, 0, 0)



def test_results_round_trip_exactly(store: Store) -> None:
    a = make_analysis("C1", courtesy_turns=(2,), flags=("escalation_risk", "low_score"))
    extra = Result(**a.result.model_dump(), room="3-2-1502", complaint_confidence_raw=0.123456789012345)
    a = a.model_copy(update={"result": extra})
    store.replace_day(DAY, [a], [])
    [record] = store.results(DAY)
    expected = a.result.model_dump(mode="json")
    assert record == expected
    assert list(record) == list(expected)  # key order too: the export is written from this
    assert Result.model_validate(record) == a.result


def test_add_correction_stores_machine_and_human_values(store: Store) -> None:
    store.replace_day(DAY, [make_analysis("C1", missed=("restate",), courtesy_turns=(2,))], [])
    c1 = store.add_correction("C1", "complaint_type", "fees", "reviewer-1", "about the water bill")
    c2 = store.add_correction("C1", "script.restate", True, "reviewer-1", "restated in turn 2")
    c3 = store.add_correction("C1", "courtesy_violation", False, "reviewer-2", "polite enough")
    assert (c1.machine_value, c1.human_value) == ("repair", "fees")
    assert (c2.machine_value, c2.human_value) == (False, True)
    assert (c3.machine_value, c3.human_value) == (True, False)
    assert c1.created_at.tzinfo is not None
    # human feedback survives re-running the day
    store.replace_day(DAY, [make_analysis("C1")], [])
    assert store.corrections() == [c1, c2, c3]
    assert (c1.conversation_id, c1.item, c1.reviewer, c1.reason) == (
        "C1", "complaint_type", "reviewer-1", "about the water bill")


def test_correction_for_unknown_conversation_raises(store: Store) -> None:
    store.replace_day(DAY, [make_analysis("C1")], [])
    with pytest.raises(ValueError, match="'NOPE'"):
        store.add_correction("NOPE", "complaint_type", "fees", "r", "x")
    with pytest.raises(ValueError, match="unknown item 'complaint_typo'"):
        store.add_correction("C1", "complaint_typo", "fees", "r", "x")
    assert store.corrections() == []


def test_replace_day_rejects_bad_batches(store: Store) -> None:
    with pytest.raises(ValueError, match="C1"):
        store.replace_day(DAY, [make_analysis("C1")], [make_failure("C1")])
    with pytest.raises(ValueError, match="not of the day"):
        store.replace_day(DAY, [make_analysis("C2", date="2026-11-20")], [])
    assert count(store, ConversationRow) == 0


# -- human decisions: values in force -----------------------------------------------------------------

def test_decide_rescored_with_the_scorecard_and_kept_over_a_rerun(store: Store) -> None:
    store.save_analysis(make_analysis("C1", missed=("restate",), courtesy_turns=(2,)))
    before = store.result("C1")
    assert before is not None and before["script"]["restate"] is False
    version = store.decide("C1", [("script.restate", True, "复述了地址"), ("courtesy_violation_turns", [], "不算失礼")],
                           by="qa01", expected_version=1)
    assert version == 2
    after = store.result("C1")
    assert after is not None
    # the scorecard over the values in force: nothing missed, no rude turn → full marks, not critical
    assert (after["script"]["restate"], after["courtesy_violation_turns"], after["score"], after["critical"]) == (
        True, [], 100.0, False)
    with store.engine.connect() as conn:
        row = conn.execute(select(ConversationRow).where(ConversationRow.id == "C1")).one()
        assert (row.script_restate, row.courtesy_violations, row.review_status, row.reviewed_by) == (
            True, 0, "reviewed", "qa01")
        assert row.machine_result["script"]["restate"] is False  # the machine's record is kept beside
    # re-running the day keeps every human value in force and scores with it
    store.replace_day(DAY, [make_analysis("C1", missed=("restate", "closing"), courtesy_turns=(2,))], [])
    rerun = store.result("C1")
    assert rerun is not None
    assert (rerun["script"]["restate"], rerun["script"]["closing"], rerun["courtesy_violation_turns"]) == (
        True, False, [])
    assert rerun["score"] == 95.0  # only the newly missed closing (5) is deducted
    items = store.in_force("C1")
    assert items["script.restate"] | {"evidence": None} == {
        "item": "script.restate", "machine_value": False, "value": True, "confidence": 1.0, "evidence": None,
        "source": "review", "judge": "rules:1", "decided_by": "qa01",
        "decided_at": items["script.restate"]["decided_at"]}
    assert items["script.closing"]["source"] == "machine"
    with store.engine.connect() as conn:
        actions = [(a.action, a.item) for a in conn.execute(select(AuditRow).order_by(AuditRow.id))]
        assert actions == [("review", "script.restate"), ("review", "courtesy_violation_turns"), ("rerun", None)]
        assert conn.execute(select(ConversationRow.version).where(ConversationRow.id == "C1")).scalar_one() == 3


def test_decide_stale_or_bad_writes_nothing(store: Store) -> None:
    store.save_analysis(make_analysis("C1"))
    store.decide("C1", [("complaint_type", "fees", "水费")], by="qa01", expected_version=1)
    with pytest.raises(StaleVersion) as stale:
        store.decide("C1", [("complaint_type", "noise", "x")], by="qa02", expected_version=1)
    assert stale.value.current == 2
    with pytest.raises(ValueError, match="customer_emotion"):
        store.decide("C1", [("complaint_type", "noise", "x"), ("customer_emotion", "furious", "x")], by="qa02")
    with pytest.raises(ValueError, match="courtesy_violation_turns"):
        store.decide("C1", [("courtesy_violation_turns", [7], "x")], by="qa02")  # only 3 turns
    with pytest.raises(LookupError):
        store.decide("NOPE", [("complaint_type", "noise", "x")], by="qa02")
    assert count(store, CorrectionRow) == 1
    assert (store.result("C1") or {})["complaint_type"] == "fees"


def test_queue_columns_follow_the_flags(store: Store) -> None:
    store.save_analysis(make_analysis("C1", flags=("low_score", "escalation_risk")))
    store.save_analysis(make_analysis("C2"))
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(ConversationRow))}
    assert (rows["C1"].queue_reason, rows["C1"].queue_tier, rows["C1"].flag_text) == (
        "flagged", 1, " low_score escalation_risk ")
    assert rows["C2"].flag_text == ""
    assert rows["C2"].queue_reason in (None, "sample")
