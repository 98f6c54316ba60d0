"""The store: one database (SQLite or PostgreSQL) holding each night's results and failures, the human
decisions over them, and the audit log.

Each conversation is written in a transaction of its own (``save_analysis`` / ``save_failure``), so a
night is kept as it is made and nothing is ever half-written. The conversations row carries the values
in force — the machine's, with the latest human decision per item applied and the scorecard run over
them — as plain columns, so the queue, the per-agent table and the reports are SQL aggregates."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Engine,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from pipeline import decisions
from pipeline.config import Settings, get_settings
from pipeline.decisions import COURTESY, REVIEW_ITEMS, Decided
from pipeline.errors import ConfigError
from pipeline.schema import (
    SCRIPT_ITEMS,
    Analysis,
    ConversationMeta,
    Evidence,
    Failure,
    Finding,
    Result,
    Transcript,
    Turn,
)
from pipeline.scorecard import Scorecard, Verdict, assemble, score
from pipeline.store.models import AuditRow, ConversationRow, CorrectionRow, FindingRow, RunRow, TurnRow, utcnow

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


# PostgreSQL advisory lock key held while migrating: two processes opening one database at once (a night
# starting while the workbench starts) migrate one after the other; the second then finds it at head.
_MIGRATE_LOCK = 0x7A68696A  # "zhij"


def _alembic_config() -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    return config


def head_revision() -> str:
    """The newest migration this zhijian knows."""
    return str(ScriptDirectory.from_config(_alembic_config()).get_current_head())


def schema_revision(engine: Engine) -> str | None:
    """The database's migration revision; None for a database zhijian never wrote to."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``) over one of the engine's
    connections, so settings made on connect (PostgreSQL search_path) apply to the migration too. On
    PostgreSQL the migration holds an advisory lock: concurrent openers never race on the DDL."""
    if schema_revision(engine) == head_revision():
        return  # nothing to do: no lock taken, no DDL
    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


_upgrade = migrate  # ``Store(migrate=...)`` shadows the name


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # a server that does not answer fails the connection in 10 s (then the caller's retries decide); a
        # link that dies silently mid-night (no FIN: a cable, a firewall's idle cut) is noticed by TCP
        # keepalives and tcp_user_timeout instead of a wait for a reply that never comes (stop 13's hang)
        args: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                                "keepalives_interval": 10, "keepalives_count": 3,
                                "tcp_user_timeout": 60_000} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(url, connect_args=args)
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


class StaleVersion(Exception):
    """A write based on an older version of the conversation than the stored one; nothing was written."""

    def __init__(self, conversation_id: str, current: int) -> None:
        self.conversation_id = conversation_id
        self.current = current
        super().__init__(f"{conversation_id} is at version {current}")


class OtherDay(Exception):
    """The conversation id is stored under another inbox day: tonight's run must not move or overwrite it."""

    def __init__(self, conversation_id: str, stored: dt.date, tonight: dt.date) -> None:
        self.conversation_id = conversation_id
        self.stored = stored
        self.tonight = tonight
        super().__init__(f"{conversation_id} is stored under {stored}, not {tonight}")


def _first_response(turns: Sequence[Turn]) -> float | None:
    """Chats: seconds from the customer's first message to the agent's first reply after it."""
    first = next((t.at for t in turns if t.role == "customer" and t.at is not None), None)
    if first is None:
        return None
    reply = next((t.at for t in turns if t.role == "agent" and t.at is not None and t.at >= first), None)
    return (reply - first).total_seconds() if reply is not None else None


def turn_rows(conv_id: str, turns: Sequence[Turn]) -> list[Row]:
    return [
        {"conversation_id": conv_id, "turn": t.index, "role": t.role, "start": t.start, "end": t.end,
         "text": t.text, "confidence": t.confidence, "words": " ".join(w for w in t.tokens if w.strip())}
        for t in turns
    ]


def finding_rows(conv_id: str, findings: Sequence[Finding]) -> list[Row]:
    return [
        {"conversation_id": conv_id, "item": f.item, "value": f.value, "confidence": f.confidence,
         "source": f.source, "evidence": [e.model_dump(mode="json") for e in f.evidence]}
        for f in findings
    ]


def _dissatisfaction(findings: Sequence[Finding]) -> float | None:
    f = next((f for f in findings if f.item == "customer_dissatisfaction"), None)
    return float(f.value) if f is not None and isinstance(f.value, int | float) else None


def conversation_values(analysis: Analysis, in_force: Result, sample_rate: float, *,
                        content_hash: str | None = None, pipeline_version: str | None = None,
                        run_id: int | None = None) -> Row:
    """The conversations row of an analysed conversation (all but id, version and review state), with the
    export record in force ``in_force`` (the machine's own when no person decided anything). One place for
    the night, the workbench and bulk loads (bench/fill_store.py)."""
    tr, machine = analysis.transcript, analysis.result
    dissatisfaction = in_force.customer_dissatisfaction
    if dissatisfaction is None:
        dissatisfaction = _dissatisfaction(analysis.findings)
    return {
        "date": _day(analysis.date), "channel": machine.channel, "agent_id": machine.agent_id,
        "agent_name": tr.meta.agent_name, "team": tr.meta.team, "site": tr.meta.site,
        "started_at": tr.meta.started_at, "source": tr.meta.source, "status": "ok",
        "error_code": None, "error_message": None, "failed_stage": None, "asr_model": tr.asr_model,
        "result": in_force.model_dump(mode="json"), "machine_result": machine.model_dump(mode="json"),
        "customer_ref": tr.meta.customer_ref, "room": tr.meta.room,
        "first_response_seconds": _first_response(tr.turns) if machine.channel == "chat" else None,
        "content_hash": content_hash, "pipeline_version": pipeline_version, "run_id": run_id,
        "updated_at": utcnow(),
        **decisions.in_force_columns(in_force, dissatisfaction, machine.id, sample_rate),
    }


def _decided(s: Session, conv_id: str) -> dict[str, Decided]:
    """The latest human decision per review item of one conversation (plain rows, no ORM objects: this is
    read on every conversation page and every decision)."""
    out: dict[str, Decided] = {}
    for c in s.execute(_DECISIONS, {"cid": conv_id}):
        if c.item in REVIEW_ITEMS:
            out[c.item] = Decided(value=c.human_value, kind=c.kind, by=c.reviewer,
                                  at=c.created_at.isoformat() if c.created_at else None)
    return out


def _meta(row: Any) -> ConversationMeta:
    return ConversationMeta(id=row.id, channel="chat" if row.channel == "chat" else "call", agent_id=row.agent_id,
                            agent_name=row.agent_name, team=row.team, site=row.site, started_at=row.started_at,
                            customer_ref=row.customer_ref, room=row.room, source=row.source)


# The statements of ``Store.in_force`` and ``Store.decide``, built once on the tables (not the ORM classes)
# with bound parameters: they run on every conversation page and every review, and building a statement,
# its cache key and the ORM's execution around it cost more than the database's answer (0.64 against
# 0.26 ms of CPU for the findings of one conversation, measured on the bench store).
_CT, _TT, _FT, _KT, _AT = (cast(Table, m.__table__)
                           for m in (ConversationRow, TurnRow, FindingRow, CorrectionRow, AuditRow))
# What ``Store.decide`` reads of the row it locks: what the rescoring needs (``_meta``, the machine's record).
_DECIDE_COLUMNS = tuple(_CT.c[name] for name in (
    "id", "status", "machine_result", "version", "date", "channel", "agent_id", "agent_name", "team", "site",
    "started_at", "customer_ref", "room", "source", "asr_model"))
_LOCK_ROW = select(*_DECIDE_COLUMNS).where(_CT.c.id == bindparam("cid")).with_for_update()
_MACHINE_ROW = select(_CT.c.status, _CT.c.machine_result).where(_CT.c.id == bindparam("cid"))
_TURNS = (select(_TT.c.turn, _TT.c.role, _TT.c.text, _TT.c.start, _TT.c.end, _TT.c.confidence, _TT.c.words)
          .where(_TT.c.conversation_id == bindparam("cid")).order_by(_TT.c.turn))
_FINDINGS = (select(_FT.c.item, _FT.c.value, _FT.c.confidence, _FT.c.source, _FT.c.evidence)
             .where(_FT.c.conversation_id == bindparam("cid")).order_by(_FT.c.id))
_DECISIONS = (select(_KT.c.item, _KT.c.human_value, _KT.c.kind, _KT.c.reviewer, _KT.c.created_at)
              .where(_KT.c.conversation_id == bindparam("cid")).order_by(_KT.c.id))
_ADD_CORRECTIONS = insert(_KT)
_ADD_AUDIT = insert(_AT)
_SET_IN_FORCE = update(_CT).where(_CT.c.id == bindparam("cid"))


class StoredVersion(NamedTuple):
    """What is stored for one conversation id: enough for a re-run to decide whether to skip it."""

    date: str
    content_hash: str | None
    pipeline_version: str | None
    status: str
    error_code: str | None


class Store:
    """Results database. Opening it with ``migrate=True`` (``zhijian run``, ``zhijian db upgrade``) brings the
    schema to the newest version; readers pass ``migrate=False`` and get ConfigError E044 from a database
    whose schema is not the one this code knows (a database never written to is fine: it reads as empty)."""

    def __init__(self, url: str, settings: Settings | None = None, migrate: bool = True) -> None:
        self.settings = settings or get_settings()
        self.engine = _engine(url)
        if migrate:
            _upgrade(self.engine)
        else:
            have, want = schema_revision(self.engine), head_revision()
            if have is not None and have != want:
                self.engine.dispose()
                raise ConfigError("E044", have=have, want=want)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def card(self) -> Scorecard:
        return Scorecard.load(self.settings.scorecard_path)

    # -- writing a night ------------------------------------------------------------------------------

    def save_analysis(self, analysis: Analysis, *, content_hash: str | None = None,
                      pipeline_version: str | None = None, run_id: int | None = None) -> None:
        """Store one analysed conversation in one transaction: its row, turns (with their words) and the
        machine's findings. Human decisions already made on it stay in force (the score is computed with
        them); a re-run bumps its version. Raises ``OtherDay`` if the id is stored under another day."""
        day = _day(analysis.date)
        tr, machine = analysis.transcript, analysis.result
        with self._session.begin() as s:
            row = s.get(ConversationRow, machine.id, with_for_update=True)
            if row is not None and row.date != day:
                raise OtherDay(machine.id, row.date, day)
            decided = _decided(s, machine.id)
            in_force = self._rescore(analysis.date, tr, analysis.findings, decided) if decided else machine
            values = conversation_values(analysis, in_force, self.settings.review.sample_rate,
                                         content_hash=content_hash, pipeline_version=pipeline_version,
                                         run_id=run_id)
            if row is None:
                s.add(ConversationRow(id=machine.id, version=1, review_status="open", **values))
            else:
                s.execute(delete(TurnRow).where(TurnRow.conversation_id == machine.id))
                s.execute(delete(FindingRow).where(FindingRow.conversation_id == machine.id))
                for k, v in values.items():
                    setattr(row, k, v)
                row.version += 1
                s.add(AuditRow(conversation_id=machine.id, by="pipeline", action="rerun",
                               reason=f"re-run {pipeline_version or ''}".strip()))
            s.flush()
            for table, rows in ((TurnRow, turn_rows(machine.id, tr.turns)),
                                (FindingRow, finding_rows(machine.id, analysis.findings))):
                if rows:
                    s.execute(insert(table), rows)

    def save_failure(self, date: str, failure: Failure, *, content_hash: str | None = None,
                     pipeline_version: str | None = None, run_id: int | None = None) -> None:
        """Store one conversation that could not be analysed, with its code and reason, in one transaction.
        A result stored for it earlier the same day is replaced (the file changed); human decisions are
        kept. Raises ``OtherDay`` if the id is stored under another day."""
        day = _day(date)
        f = failure
        with self._session.begin() as s:
            row = s.get(ConversationRow, f.conversation_id, with_for_update=True)
            if row is not None and row.date != day:
                raise OtherDay(f.conversation_id, row.date, day)
            values: Row = {
                "date": day, "channel": f.channel or UNKNOWN, "agent_id": f.agent_id or UNKNOWN,
                "agent_name": f.agent_name or "", "team": f.team or "", "site": f.site or "",
                "started_at": f.started_at, "source": f.source, "status": "failed", "error_code": f.code,
                "error_message": f.message, "failed_stage": f.stage, "content_hash": content_hash,
                "pipeline_version": pipeline_version, "run_id": run_id, "updated_at": utcnow(),
                "result": None, "machine_result": None, "score": None, "critical": None, "flags": None,
                "flag_text": None, "queue_reason": None, "queue_tier": None,
            }
            if row is None:
                s.add(ConversationRow(id=f.conversation_id, version=1, review_status="open", **values))
            else:
                s.execute(delete(TurnRow).where(TurnRow.conversation_id == f.conversation_id))
                s.execute(delete(FindingRow).where(FindingRow.conversation_id == f.conversation_id))
                for k, v in values.items():
                    setattr(row, k, v)
                row.version += 1

    def replace_day(self, date: str, analyses: Sequence[Analysis], failures: Sequence[Failure]) -> None:
        """Store a whole day (one transaction per conversation) and remove conversations of that day that
        are no longer in it. Human decisions are never removed."""
        day = _day(date)
        ids = [a.result.id for a in analyses] + [f.conversation_id for f in failures]
        if dupes := sorted(i for i, n in Counter(ids).items() if n > 1):
            raise ValueError(f"conversation ids appear more than once in the day {date}: {dupes}")
        if wrong := [a.result.id for a in analyses if a.date != date]:
            raise ValueError(f"analyses not of the day {date}: {wrong}")
        for a in analyses:
            self.save_analysis(a)
        for f in failures:
            self.save_failure(date, f)
        with self._session.begin() as s:
            stored = s.scalars(select(ConversationRow.id).where(ConversationRow.date == day)).all()
            gone = sorted(set(stored) - set(ids))
            for chunk in _chunks(gone):
                s.execute(delete(ConversationRow).where(ConversationRow.id.in_(chunk)))

    # -- runs and resuming ----------------------------------------------------------------------------

    def start_run(self, date: str, pipeline_version: str, host: str = "") -> int:
        """A new ``runs`` row for the night of ``date``; earlier runs of that day still marked running (killed:
        they never finished) are marked interrupted."""
        day = _day(date)
        with self._session.begin() as s:
            s.execute(update(RunRow).where(RunRow.date == day, RunRow.status == "running")
                      .values(status="interrupted"))
            row = RunRow(date=day, status="running", pipeline_version=pipeline_version, host=host, counts={})
            s.add(row)
            s.flush()
            return int(row.id)

    def finish_run(self, run_id: int, status: str, counts: Mapping[str, Any]) -> None:
        """Close a run: ``status`` finished | interrupted | failed, with its counts (and failures)."""
        with self._session.begin() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise LookupError(f"no run {run_id}")
            row.status, row.counts, row.finished_at = status, dict(counts), utcnow()

    def runs(self, date: str) -> list[dict[str, Any]]:
        """The day's runs, oldest first."""
        with self._session() as s:
            rows = s.scalars(select(RunRow).where(RunRow.date == _day(date)).order_by(RunRow.id)).all()
            return [{"id": r.id, "date": r.date.isoformat(), "started_at": r.started_at, "finished_at": r.finished_at,
                     "status": r.status, "pipeline_version": r.pipeline_version, "counts": r.counts or {},
                     "host": r.host} for r in rows]

    def stored_versions(self, ids: Sequence[str]) -> dict[str, StoredVersion]:
        """For each of ``ids`` that is stored (under any day): its day, content hash, pipeline version, status
        and error code."""
        c = ConversationRow
        out: dict[str, StoredVersion] = {}
        with self._session() as s:
            for chunk in _chunks(list(ids)):
                q = select(c.id, c.date, c.content_hash, c.pipeline_version, c.status, c.error_code).where(
                    c.id.in_(chunk))
                for conv_id, day, digest, version, status, code in s.execute(q):
                    out[conv_id] = StoredVersion(day.isoformat(), digest, version, status, code)
        return out

    def count(self, date: str | None = None) -> int:
        """Conversations stored (for ``date``, or all)."""
        q = select(func.count()).select_from(ConversationRow)
        if date is not None:
            q = q.where(ConversationRow.date == _day(date))
        with self._session() as s:
            return int(s.scalar(q) or 0)

    # -- human decisions ----------------------------------------------------------------------------

    def _rescore(self, date: str, transcript: Transcript, machine: Sequence[Finding],
                 decided: Mapping[str, Decided]) -> Result:
        findings = decisions.apply(machine, decided, transcript.turns)
        verdict = Verdict(findings)
        return assemble(date, transcript, verdict, score(self.card, verdict, transcript))

    def _stored(self, s: Session, row: Any) -> tuple[Transcript, list[Finding]]:
        """The machine's transcript and findings of ``row`` (a ``ConversationRow`` or a row of
        ``_DECIDE_COLUMNS``), read as plain rows."""
        # a chat message's time is kept in the machine's record (the turns table has no column for it)
        times = {t["turn"]: t.get("at") for t in (row.machine_result or {}).get("turns", [])}
        turns = [Turn(index=t.turn, role="agent" if t.role == "agent" else "customer", text=t.text, start=t.start,
                      end=t.end, confidence=t.confidence, tokens=t.words.split(), at=times.get(t.turn))
                 for t in s.execute(_TURNS, {"cid": row.id})]
        findings = [Finding(item=f.item, value=f.value, confidence=f.confidence, source=f.source,
                            evidence=[Evidence(**e) for e in f.evidence or []])
                    for f in s.execute(_FINDINGS, {"cid": row.id})]
        return Transcript(meta=_meta(row), turns=turns, asr_model=row.asr_model), findings

    def decide(self, conversation_id: str, items: Sequence[tuple[str, Any, str]], *, by: str,
               kind: str = "review", expected_version: int | None = None, appeal_id: int | None = None) -> int:
        """Record human decisions ``(item, value, reason)`` on one analysed conversation and recompute its
        values in force with the scorecard; returns the new version. Each decision is a correction
        (``zhijian train`` reads it) and an audit entry. ``StaleVersion`` when ``expected_version`` is not the
        stored one, ``ValueError`` for an unknown conversation or a bad item or value: then nothing is
        written.

        One transaction of plain statements (the row locked and read, its turns, findings and decisions read,
        one INSERT each for the corrections and the audit entries, one UPDATE of the row): a reviewer's
        every save runs this, and the ORM's unit of work would only add object bookkeeping to it."""
        if kind not in decisions.HUMAN_KINDS:
            raise ValueError(f"unknown decision kind {kind!r}")
        with self._session.begin() as s:
            row = s.execute(_LOCK_ROW, {"cid": conversation_id}).one_or_none()
            if row is None or row.status != "ok" or row.machine_result is None:
                raise LookupError(f"no analysed conversation with id {conversation_id!r} is stored")
            if expected_version is not None and expected_version != row.version:
                raise StaleVersion(conversation_id, row.version)
            transcript, machine = self._stored(s, row)
            checked = [(item, decisions.validate(item, value, len(transcript.turns)), reason)
                       for item, value, reason in items]
            machine_values = decisions.machine_values(row.machine_result)
            decided = _decided(s, conversation_id)
            now = utcnow()
            corrections, audits = [], []
            for item, value, reason in checked:
                before = decided[item].value if item in decided else machine_values[item]
                corrections.append({"conversation_id": conversation_id, "item": item,
                                    "machine_value": machine_values[item], "human_value": value, "reviewer": by,
                                    "reason": reason, "kind": kind, "appeal_id": appeal_id, "created_at": now})
                audits.append({"conversation_id": conversation_id, "at": now, "by": by, "action": kind,
                               "item": item, "from_value": before, "to_value": value, "reason": reason})
                decided[item] = Decided(value=value, kind=kind, by=by)
            if corrections:
                s.execute(_ADD_CORRECTIONS, corrections)
                s.execute(_ADD_AUDIT, audits)
            in_force = self._rescore(row.date.isoformat(), transcript, machine, decided)
            values: dict[str, Any] = {
                "result": in_force.model_dump(mode="json"),
                **decisions.in_force_columns(in_force, in_force.customer_dissatisfaction, conversation_id,
                                             self.settings.review.sample_rate),
                "version": row.version + 1, "updated_at": now,
            }
            if kind == "review":
                values |= {"review_status": "reviewed", "reviewed_by": by, "reviewed_at": now}
            s.execute(_SET_IN_FORCE, {"cid": conversation_id, **values})
            return int(row.version) + 1

    def in_force(self, conversation_id: str, *, session: Session | None = None,
                 row: Any = None) -> dict[str, dict[str, Any]]:
        """Per review item: the machine's value, the value in force and where it comes from, the machine's
        confidence, the evidence turns, and who decided when.

        ``session``: read in that session (the workbench's request has one open already) instead of a new
        one; ``row``: the conversation as the caller just read it (anything with its ``status`` and
        ``machine_result``), so it is not read a second time."""
        if session is not None:
            return self._in_force(session, conversation_id, row)
        with self._session() as s:
            return self._in_force(s, conversation_id, row)

    def _in_force(self, s: Session, conversation_id: str, row: Any) -> dict[str, dict[str, Any]]:
        if row is None:
            row = s.execute(_MACHINE_ROW, {"cid": conversation_id}).one_or_none()
        if row is None or row.status != "ok" or row.machine_result is None:
            raise LookupError(f"no analysed conversation with id {conversation_id!r} is stored")
        # read straight from the rows: this is on every conversation page, and the evidence is stored as
        # the JSON it is served as (no pydantic round trip)
        machine = s.execute(_FINDINGS, {"cid": conversation_id}).all()
        decided = _decided(s, conversation_id)
        machine_values = decisions.machine_values(row.machine_result)
        by_item = {f.item: f for f in machine if f.item != "courtesy_violation"}
        rude = [f for f in machine if f.item == "courtesy_violation" and f.value]
        out: dict[str, dict[str, Any]] = {}
        for item in REVIEW_ITEMS:
            if item == COURTESY:
                confidence = min((f.confidence for f in rude), default=1.0)
                evidence = [e for f in rude for e in f.evidence or []]
                judge = rude[0].source if rude else ""
            else:
                f = by_item.get(item)
                confidence = f.confidence if f else 1.0
                evidence = list(f.evidence or []) if f else []
                judge = f.source if f else ""
            d = decided.get(item)
            out[item] = {
                "item": item, "machine_value": machine_values[item],
                "value": d.value if d else machine_values[item], "confidence": round(confidence, 3),
                "evidence": evidence, "source": d.kind if d else "machine", "judge": judge,
                "decided_by": d.by if d else None, "decided_at": d.at if d else None,
            }
        return out

    # -- reading ------------------------------------------------------------------------------------

    def results(self, date: str) -> list[dict[str, Any]]:
        """The export records in force (spec section 4) of the day's analysed conversations, by id."""
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
                        code=r.error_code or "", message=r.error_message or "", channel=r.channel,
                        agent_id=r.agent_id, agent_name=r.agent_name, team=r.team, site=r.site,
                        started_at=r.started_at)
                for r in s.scalars(q)
            ]

    def agent_table(self, date: str) -> list[AgentDay]:
        """One row per agent for the day: an aggregate over the values in force."""
        c = ConversationRow
        yes = lambda col: func.sum(case((col.is_(True), 1), else_=0))  # noqa: E731
        script_cols = [getattr(c, f"script_{i}") for i in SCRIPT_ITEMS]
        q = (
            select(c.agent_id, func.max(c.agent_name), func.max(c.team), func.count(), func.avg(c.score),
                   yes(c.critical), func.coalesce(func.sum(c.courtesy_violations), 0), yes(c.escalation_risk),
                   *(yes(col) for col in script_cols))
            .where(c.date == _day(date), c.status == "ok")
            .group_by(c.agent_id)
            .order_by(c.agent_id)
        )
        with self._session() as s:
            rows = s.execute(q).all()
        table = []
        for agent_id, name, team, n, mean, critical, rude, escalations, *done in rows:
            table.append(AgentDay(
                agent_id=agent_id, agent_name=name or "", team=team or "", conversations=int(n),
                score=float(mean) if mean is not None else None, critical=int(critical),
                courtesy_violations=int(rude), escalations=int(escalations),
                script={item: int(d) / int(n) for item, d in zip(SCRIPT_ITEMS, done, strict=True)},
            ))
        return table

    def add_correction(
        self, conversation_id: str, item: str, human_value: object, reviewer: str, reason: str
    ) -> Correction:
        """Record a reviewer's value for one item (``zhijian correct``); the machine's value is taken from what
        is stored. A review item's value is then in force, as a workbench review's would be."""
        if item in REVIEW_ITEMS:
            try:
                self.decide(conversation_id, [(item, human_value, reason)], by=reviewer, kind="correction")
            except LookupError as e:
                raise ValueError(f"cannot correct: {e}") from None
            with self._session() as s:
                row = s.scalars(select(CorrectionRow).where(CorrectionRow.conversation_id == conversation_id)
                                .order_by(CorrectionRow.id.desc()).limit(1)).one()
                return _correction(row)
        with self._session.begin() as s:
            conv = s.get(ConversationRow, conversation_id)
            if conv is None:
                raise ValueError(f"cannot correct: no conversation with id {conversation_id!r} is stored")
            q = select(FindingRow).where(FindingRow.conversation_id == conversation_id)
            findings = s.scalars(q.order_by(FindingRow.id)).all()
            machine = _machine_value(conv.machine_result or conv.result or {}, findings, item)
            row = CorrectionRow(conversation_id=conversation_id, item=item, machine_value=machine,
                                human_value=human_value, reviewer=reviewer, reason=reason)
            s.add(row)
            s.add(AuditRow(conversation_id=conversation_id, by=reviewer, action="correction", item=item,
                           from_value=machine, to_value=human_value, reason=reason))
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
