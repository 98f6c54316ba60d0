"""The store: one database (SQLite or PostgreSQL) holding each night's results, failures and per-agent
daily numbers. A day is always written whole, in one transaction, so re-running a night is safe."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any, Self

from alembic import command
from alembic.config import Config
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, create_engine, delete, event, insert, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.schema import SCRIPT_ITEMS, Analysis, Failure, Result
from pipeline.store.models import AgentDailyRow, ConversationRow, CorrectionRow, FindingRow, TurnRow

HERE = Path(__file__).resolve().parent
UNKNOWN = "unknown"
# Result keys a reviewer may correct (identity and the transcript itself are not judgements).
_NOT_ITEMS = {"id", "channel", "agent_id", "date", "turns", "evidence", "script"}
_CHUNK = 500  # ids per IN (...) list: SQLite caps the number of bound parameters
Row = dict[str, Any]


class AgentDay(BaseModel):
    """One agent's day, as a supervisor reads it."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    agent_name: str
    team: str
    conversations: int
    score: float | None  # mean score
    critical: int  # conversations capped by a red-line item
    courtesy_violations: int  # violating turns, all conversations together
    escalations: int  # conversations with escalation risk
    script: dict[str, float]  # item -> share of conversations where it was done


class Correction(BaseModel):
    """A reviewer's verdict on one item, beside what the machine said."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: str
    item: str
    machine_value: Any
    human_value: Any
    reviewer: str
    reason: str
    created_at: dt.datetime


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``) over one of the engine's
    connections, so settings made on connect (PostgreSQL search_path) apply to the migration too."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_connection: Any, _record: Any) -> None:
        # SQLite ignores ON DELETE CASCADE unless asked, per connection.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _day(date: str) -> dt.date:
    try:
        return dt.date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _started_at(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _analysis_rows(day: dt.date, a: Analysis) -> tuple[Row, list[Row], list[Row]]:
    meta, r = a.transcript.meta, a.result
    conversation = {
        "id": r.id, "date": day, "channel": r.channel, "agent_id": r.agent_id,
        "agent_name": meta.agent_name, "team": meta.team, "site": meta.site, "started_at": meta.started_at,
        "source": meta.source, "status": "ok", "asr_model": a.transcript.asr_model,
        "score": r.score, "critical": r.critical, "flags": list(r.flags),
        "complaint_type": r.complaint_type, "complaint_confidence": r.complaint_confidence,
        "customer_emotion": r.customer_emotion, "escalation_risk": r.escalation_risk, "dead_air": r.dead_air,
        "result": r.model_dump(mode="json"),
    }
    turns = [
        {"conversation_id": r.id, "turn": t.index, "role": t.role, "start": t.start, "end": t.end,
         "text": t.text, "confidence": t.confidence}
        for t in a.transcript.turns
    ]
    findings = [
        {"conversation_id": r.id, "item": f.item, "value": f.value, "confidence": f.confidence,
         "source": f.source, "evidence": [e.model_dump(mode="json") for e in f.evidence]}
        for f in a.findings
    ]
    return conversation, turns, findings


def _failure_row(day: dt.date, f: Failure, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": f.conversation_id, "date": day, "channel": meta.get("channel") or UNKNOWN,
        "agent_id": meta.get("agent_id") or UNKNOWN, "agent_name": meta.get("agent_name") or "",
        "team": meta.get("team") or "", "site": meta.get("site") or "",
        "started_at": _started_at(meta.get("started_at")), "source": f.source, "status": "failed",
        "error_code": f.code, "error_message": f.message, "failed_stage": f.stage,
    }


def _agent_daily(day: dt.date, rows: Sequence[ConversationRow]) -> list[dict[str, Any]]:
    """Per-agent numbers for one day from its analysed conversations (long format: one row a skill)."""
    by_agent: dict[str, list[ConversationRow]] = defaultdict(list)
    for row in rows:
        by_agent[row.agent_id].append(row)
    out: list[dict[str, Any]] = []
    for agent_id, convs in sorted(by_agent.items()):
        results = [c.result or {} for c in convs]
        base = {
            "date": day, "agent_id": agent_id,
            "agent_name": next((c.agent_name for c in convs if c.agent_name), ""),
            "team": next((c.team for c in convs if c.team), ""),
        }

        def add(skill: str, values: Sequence[float], base: dict[str, Any] = base) -> None:
            if values:  # a skill with nothing to measure (e.g. dead air for a chat-only agent) is absent
                out.append({**base, "skill": skill, "value": fmean(values), "n": len(values)})

        add("score", [c.score or 0.0 for c in convs])
        out.append({**base, "skill": "conversations", "value": float(len(convs)), "n": len(convs)})
        add("critical_rate", [float(bool(c.critical)) for c in convs])
        seen = {k for r in results for k in r.get("script", {})}
        for item in [*SCRIPT_ITEMS, *sorted(seen - set(SCRIPT_ITEMS))]:
            add(f"script.{item}", [float(r["script"][item]) for r in results if item in r.get("script", {})])
        add("courtesy_violations", [float(len(r.get("courtesy_violation_turns", []))) for r in results])
        add("escalation_rate", [float(bool(c.escalation_risk)) for c in convs])
        # Chats cannot have dead air: counting them would only dilute the calls' rate.
        add("dead_air_rate", [float(bool(c.dead_air)) for c in convs if c.channel == "call"])
        add("low_confidence_rate", [float("low_confidence" in (c.flags or [])) for c in convs])
    return out


class Store:
    """Results database. Opening it migrates the schema to the newest version."""

    def __init__(self, url: str) -> None:
        self.engine = _engine(url)
        migrate(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def replace_day(
        self,
        date: str,
        analyses: Sequence[Analysis],
        failures: Sequence[Failure],
        *,
        failure_meta: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Write one inbox day whole, replacing whatever was stored for it before.

        ``failure_meta[id]`` may give a failed conversation's agent and channel (``ConversationMeta``
        fields); without it they are recorded as 'unknown'."""
        day = _day(date)
        ids = [a.result.id for a in analyses] + [f.conversation_id for f in failures]
        if dupes := sorted(i for i, n in Counter(ids).items() if n > 1):
            raise ValueError(f"conversation ids appear more than once in the day {date}: {dupes}")
        if wrong := [a.result.id for a in analyses if a.date != date]:
            raise ValueError(f"analyses not of the day {date}: {wrong}")

        rows = [_analysis_rows(day, a) for a in analyses]
        conversations = [c for c, _, _ in rows]
        metas = failure_meta or {}
        conversations += [_failure_row(day, f, metas.get(f.conversation_id, {})) for f in failures]
        turns = [t for _, ts, _ in rows for t in ts]
        findings = [f for _, _, fs in rows for f in fs]

        with self._session.begin() as s:
            # Ids are global: one stored under another day moves here, and that day's numbers change too.
            other_days: set[dt.date] = set()
            for chunk in _chunks(ids):
                found = s.scalars(select(ConversationRow.date).where(ConversationRow.id.in_(chunk)))
                other_days.update(d for d in found if d != day)
                s.execute(delete(ConversationRow).where(ConversationRow.id.in_(chunk)))
            # Turns and findings go with their conversation (ON DELETE CASCADE).
            s.execute(delete(ConversationRow).where(ConversationRow.date == day))
            for table, values in ((ConversationRow, conversations), (TurnRow, turns), (FindingRow, findings)):
                if values:  # an empty executemany would insert one row of defaults
                    s.execute(insert(table), values)
            for d in sorted({day, *other_days}):
                self._recompute(s, d)

    def _recompute(self, s: Session, day: dt.date) -> None:
        s.execute(delete(AgentDailyRow).where(AgentDailyRow.date == day))
        ok = s.scalars(
            select(ConversationRow).where(ConversationRow.date == day, ConversationRow.status == "ok")
        ).all()
        if values := _agent_daily(day, ok):
            s.execute(insert(AgentDailyRow), values)

    def results(self, date: str) -> list[dict[str, Any]]:
        """The export records (spec section 4) of the day's analysed conversations, by id."""
        with self._session() as s:
            q = (
                select(ConversationRow.result)
                .where(ConversationRow.date == _day(date), ConversationRow.status == "ok")
                .order_by(ConversationRow.id)
            )
            return [r for r in s.scalars(q) if r is not None]

    def result(self, conversation_id: str) -> dict[str, Any] | None:
        """The stored export record of one conversation, whatever its day (None if not stored)."""
        with self._session() as s:
            row = s.get(ConversationRow, conversation_id)
            return row.result if row is not None and row.status == "ok" else None

    def failures(self, date: str) -> list[Failure]:
        with self._session() as s:
            q = (
                select(ConversationRow)
                .where(ConversationRow.date == _day(date), ConversationRow.status == "failed")
                .order_by(ConversationRow.id)
            )
            return [
                Failure(conversation_id=r.id, source=r.source, stage=r.failed_stage or "",
                        code=r.error_code or "", message=r.error_message or "")
                for r in s.scalars(q)
            ]

    def agent_table(self, date: str) -> list[AgentDay]:
        """One row per agent for the day, read back from ``agent_daily``."""
        with self._session() as s:
            q = select(AgentDailyRow).where(AgentDailyRow.date == _day(date)).order_by(AgentDailyRow.agent_id)
            by_agent: dict[str, list[AgentDailyRow]] = defaultdict(list)
            for row in s.scalars(q):
                by_agent[row.agent_id].append(row)
        table = []
        for agent_id, rows in by_agent.items():
            skills = {r.skill: r for r in rows}

            def count(skill: str, skills: dict[str, AgentDailyRow] = skills) -> int:
                # rates are stored as mean per conversation; rate × n gives the count back
                return round(skills[skill].value * skills[skill].n) if skill in skills else 0

            table.append(AgentDay(
                agent_id=agent_id, agent_name=rows[0].agent_name, team=rows[0].team,
                conversations=skills["conversations"].n if "conversations" in skills else 0,
                score=skills["score"].value if "score" in skills else None,
                critical=count("critical_rate"), courtesy_violations=count("courtesy_violations"),
                escalations=count("escalation_rate"),
                script={k.removeprefix("script."): r.value for k, r in skills.items()
                        if k.startswith("script.")},
            ))
        return table

    def add_correction(
        self, conversation_id: str, item: str, human_value: object, reviewer: str, reason: str
    ) -> Correction:
        """Record a reviewer's value for one item; the machine's value is taken from what is stored."""
        with self._session.begin() as s:
            conv = s.get(ConversationRow, conversation_id)
            if conv is None:
                raise ValueError(f"cannot correct: no conversation with id {conversation_id!r} is stored")
            q = select(FindingRow).where(FindingRow.conversation_id == conversation_id)
            findings = s.scalars(q.order_by(FindingRow.id)).all()
            machine = _machine_value(conv.result or {}, findings, item)
            row = CorrectionRow(conversation_id=conversation_id, item=item, machine_value=machine,
                                human_value=human_value, reviewer=reviewer, reason=reason)
            s.add(row)
            s.flush()
            return _correction(row)

    def corrections(self) -> list[Correction]:
        with self._session() as s:
            return [_correction(r) for r in s.scalars(select(CorrectionRow).order_by(CorrectionRow.id))]


def _machine_value(result: Mapping[str, Any], findings: Sequence[FindingRow], item: str) -> Any:
    """What the machine said about ``item``: the export record's verdict where it has one (that is
    what was reported), else the judges' findings (one value, or a list when several judges spoke)."""
    if item.startswith("script.") and item.removeprefix("script.") in result.get("script", {}):
        return result["script"][item.removeprefix("script.")]
    if item in result and item not in _NOT_ITEMS:
        return result[item]
    values = [f.value for f in findings if f.item == item]
    if values:
        return values[0] if len(values) == 1 else values
    known = (set(Result.model_fields) - _NOT_ITEMS) | {f"script.{i}" for i in SCRIPT_ITEMS}
    known |= {"courtesy_violation"} | {f.item for f in findings}
    if item not in known:
        raise ValueError(f"unknown item {item!r}; expected one of {sorted(known)}")
    return None  # a known item the machine did not judge (e.g. the conversation failed)


def _correction(row: CorrectionRow) -> Correction:
    return Correction(id=row.id, conversation_id=row.conversation_id, item=row.item,
                      machine_value=row.machine_value, human_value=row.human_value, reviewer=row.reviewer,
                      reason=row.reason, created_at=row.created_at)
