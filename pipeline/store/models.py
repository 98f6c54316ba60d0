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
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    __table_args__ = (CheckConstraint("status IN ('ok', 'failed')", name="status"),)

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
    result: Mapped[dict[str, Any] | None]  # the export record, exactly as Result.model_dump(mode="json")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


class AgentDailyRow(Base):
    """One number about one agent on one day (long format: adding a skill needs no migration)."""

    __tablename__ = "agent_daily"
    __table_args__ = (UniqueConstraint("date", "agent_id", "skill"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    date: Mapped[dt.date]
    agent_id: Mapped[str] = mapped_column(String, index=True)
    agent_name: Mapped[str] = mapped_column(String, default="")
    team: Mapped[str] = mapped_column(String, default="")
    skill: Mapped[str] = mapped_column(String)
    value: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)  # conversations the value is computed over


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
