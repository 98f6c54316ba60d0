"""Tables of the store (SQLAlchemy 2, typed). The migrations in ``migrations/versions`` create them:
these classes describe the same schema for queries, and a test checks the two agree."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pipeline import schema

# Fixed constraint names, so SQLite and PostgreSQL get the same ones and later migrations can name them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as UTC and always read back timezone-aware.

    SQLite keeps no offset, PostgreSQL does: normalising here makes both return the same value.
    Naive datetimes are taken to be UTC already."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        # SQLite would write the offset-less text anyway; stripping it keeps its string sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Plain JSON, not JSONB: PostgreSQL's json keeps the text as written, so export records come back
    # with their keys in the original order.
    # none_as_null: a missing value is SQL NULL, never the JSON text 'null'.
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON(none_as_null=True),
        Any: JSON(none_as_null=True),
        dt.datetime: UtcDateTime,
        dt.date: Date,
    }


class ConversationRow(Base):
    """One conversation of one inbox day: analysed (``ok``) or not (``failed``)."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'failed')", name="status"),
        Index("ix_conversations_agent_id_date", "agent_id", "date"),
        Index("ix_conversations_team_date", "team", "date"),
        Index("ix_conversations_site_date", "site", "date"),
        Index("ix_conversations_queue", "queue_tier", "score", "id"),
        Index("ix_conversations_review_status", "review_status"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    date: Mapped[dt.date] = mapped_column(index=True)
    channel: Mapped[str] = mapped_column(String)  # call | chat | unknown (failed before metadata was read)
    agent_id: Mapped[str] = mapped_column(String, index=True)
    agent_name: Mapped[str] = mapped_column(String, default="")
    team: Mapped[str] = mapped_column(String, default="")
    site: Mapped[str] = mapped_column(String, default="")
    started_at: Mapped[dt.datetime | None]
    source: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String)
    error_code: Mapped[str | None] = mapped_column(String)
    error_message: Mapped[str | None] = mapped_column(Text)
    failed_stage: Mapped[str | None] = mapped_column(String)
    asr_model: Mapped[str | None] = mapped_column(String)
    score: Mapped[float | None] = mapped_column(Float)
    critical: Mapped[bool | None]
    flags: Mapped[Any | None]
    complaint_type: Mapped[str | None] = mapped_column(String)
    complaint_confidence: Mapped[float | None] = mapped_column(Float)
    customer_emotion: Mapped[str | None] = mapped_column(String)
    escalation_risk: Mapped[bool | None]
    dead_air: Mapped[bool | None]
    result: Mapped[dict[str, Any] | None]  # the export record IN FORCE (human decisions applied)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # -- 0002: values in force as columns (reports and the queue aggregate them in SQL), review state,
    # where the row came from (resume: same content by the same pipeline is not redone)
    machine_result: Mapped[dict[str, Any] | None]  # the export record exactly as the machine made it
    customer_dissatisfaction: Mapped[float | None] = mapped_column(Float)
    courtesy_violations: Mapped[int | None] = mapped_column(Integer)  # courtesy-violation turns in force
    script_greeting: Mapped[bool | None]
    script_identity_check: Mapped[bool | None]
    script_restate: Mapped[bool | None]
    script_commitment: Mapped[bool | None]
    script_ownership: Mapped[bool | None]
    script_closing: Mapped[bool | None]
    script_farewell: Mapped[bool | None]
    flag_text: Mapped[str | None] = mapped_column(String)  # " critical low_score ": LIKE '% flag %' filters
    queue_reason: Mapped[str | None] = mapped_column(String)  # flagged | sample | None (not queued)
    queue_tier: Mapped[int | None] = mapped_column(Integer)  # 0 critical … 5 sample (decisions.queue_tier)
    version: Mapped[int] = mapped_column(Integer, default=1)
    review_status: Mapped[str] = mapped_column(String, default="open")  # open | in_review | reviewed
    assigned_to: Mapped[str | None] = mapped_column(String)
    assigned_at: Mapped[dt.datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String)
    reviewed_at: Mapped[dt.datetime | None]
    customer_ref: Mapped[str | None] = mapped_column(String)
    room: Mapped[str | None] = mapped_column(String)
    first_response_seconds: Mapped[float | None] = mapped_column(Float)  # chats: first customer → agent reply
    content_hash: Mapped[str | None] = mapped_column(String)
    pipeline_version: Mapped[str | None] = mapped_column(String)
    run_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime | None]


class TurnRow(Base):
    __tablename__ = "turns"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    turn: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String)
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    words: Mapped[str] = mapped_column(Text, default="")  # segmented words, space-joined (search indexes it)


class FindingRow(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    item: Mapped[str] = mapped_column(String)
    value: Mapped[Any | None]
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String)  # judge name:version, i.e. which model or rule set said so
    evidence: Mapped[Any]  # [{turn, text, start, end}, ...]


class CorrectionRow(Base):
    """A reviewer's verdict on one item. No foreign key on purpose: re-running a day replaces the
    conversation, but human feedback must survive it."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String, index=True)
    item: Mapped[str] = mapped_column(String)
    machine_value: Mapped[Any | None]
    human_value: Mapped[Any | None]
    reviewer: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String, default="correction")  # correction (CLI) | review | ruling
    appeal_id: Mapped[int | None] = mapped_column(Integer)


class AuditRow(Base):
    """Every change to a conversation, oldest first. Append-only: nothing updates or deletes a row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String, index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)  # review | ruling | correction | rerun | appeal | assign
    item: Mapped[str | None] = mapped_column(String)
    from_value: Mapped[Any | None]
    to_value: Mapped[Any | None]
    reason: Mapped[str] = mapped_column(Text, default="")


class RunRow(Base):
    """One nightly run of one inbox day."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    date: Mapped[dt.date] = mapped_column(index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String, default="running")  # running | finished | interrupted | failed
    pipeline_version: Mapped[str] = mapped_column(String, default="")
    counts: Mapped[Any | None]
    host: Mapped[str] = mapped_column(String, default="")


# -- 0003: the review workbench (pipeline/web) ------------------------------------------------------

ROLES = schema.ROLES
# The search index of turns.words lives in tables of its own, made and kept in step by migrations 0003 and
# 0005 (triggers on turns), that no model describes: SQLite's FTS5 table ``turns_fts`` (and its shadow tables),
# PostgreSQL's ``search_docs`` (one tsvector of all a conversation's words, GIN-indexed). Compare the schema
# with ``compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), Base.metadata)``.
SEARCH_FTS_TABLE = "turns_fts"
SEARCH_DOCS_TABLE = "search_docs"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: leave the search index's own tables out of schema comparisons."""
    return not (type_ == "table" and name is not None
                and (name.startswith(SEARCH_FTS_TABLE) or name == SEARCH_DOCS_TABLE))


class UserRow(Base):
    """A workbench account. The password is kept only as an argon2 hash."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'supervisor', 'reviewer', 'trainer', 'agent')",
                                      name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String, unique=True)
    password_hash: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    agent_id: Mapped[str | None] = mapped_column(String)  # an agent's own conversations (role agent)
    teams: Mapped[Any] = mapped_column(default=list)  # JSON list of team names; [] = every team
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SessionRow(Base):
    """A signed-in browser or script. ``id`` is a keyed hash of the cookie's token, never the token itself,
    so a copy of the database lets no one in."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class LoginFailureRow(Base):
    """One wrong password (or unknown login): counted per login over the rate-limit window."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_login_at", "login", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AppealRow(Base):
    """An agent's appeal (申诉) against one item of one of their conversations, and its ruling.
    No foreign key, like corrections: a re-run replaces the conversation row, the appeal stays."""

    __tablename__ = "appeals"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'upheld', 'overturned')", name="status"),
        # one open appeal per item: the database refuses a second even when two requests race
        Index("uq_appeals_open_item", "conversation_id", "item", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String, index=True)
    item: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String)  # login
    agent_id: Mapped[str] = mapped_column(String, index=True)
    value: Mapped[Any | None]  # the value in force when the appeal was filed
    status: Mapped[str] = mapped_column(String, default="open")
    filed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ruled_by: Mapped[str | None] = mapped_column(String)
    ruled_at: Mapped[dt.datetime | None]
    ruling_reason: Mapped[str | None] = mapped_column(Text)
    ruling_value: Mapped[Any | None]  # the value set by an overturning ruling


# Take-next reads only what is still to be taken: a partial index keeps that walk short however many
# conversations have been reviewed already.
Index("ix_conversations_open_queue", ConversationRow.queue_tier, ConversationRow.score, ConversationRow.id,
      sqlite_where=text("queue_tier IS NOT NULL AND review_status = 'open' AND assigned_to IS NULL"),
      postgresql_where=text("queue_tier IS NOT NULL AND review_status = 'open' AND assigned_to IS NULL"))
# Search, newest first: the keyset (date, id) walks this index backwards.
Index("ix_conversations_date_id", ConversationRow.date, ConversationRow.id)

# The queue filtered by a flag that does not lead its order (migration 0004): each of these flags has a
# partial index in queue order over only the conversations that carry it, its predicate the queue filter's
# own condition (``LIKE '% flag %'`` with underscores escaped), so the planner proves the filter implies it.
QUEUE_FLAG_INDEXES = ("dead_air", "escalation_risk", "angry_customer")
for _flag in QUEUE_FLAG_INDEXES:
    _where = "flag_text LIKE '% " + _flag.replace("_", "\\_") + " %' ESCAPE '\\'"
    Index(f"ix_conversations_queue_{_flag}", ConversationRow.queue_tier, ConversationRow.score, ConversationRow.id,
          sqlite_where=text(_where), postgresql_where=text(_where))

# The queue filtered by (or, for an agent, seen through) one key (migration 0007): a partial index in queue
# order per key over the queued conversations, so a page is read in order from as many entries as it shows.
QUEUE_KEY_INDEXES = ("agent_id", "complaint_type", "site", "team")
for _key in QUEUE_KEY_INDEXES:
    Index(f"ix_conversations_queue_by_{_key}", getattr(ConversationRow, _key), ConversationRow.queue_tier,
          ConversationRow.score, ConversationRow.id,
          sqlite_where=text("queue_tier IS NOT NULL"), postgresql_where=text("queue_tier IS NOT NULL"))
