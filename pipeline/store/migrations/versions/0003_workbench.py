"""The review workbench: users, sessions, login failures, appeals; the search index over turns' words.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Search is an index, never a scan. PostgreSQL: a GIN index on ``to_tsvector('simple', words)`` (the words
are jieba's, space-joined; 'simple' neither stems nor drops them, and its parser keeps CJK words whole
under this database's C.UTF-8 ctype — the tests search Chinese on PostgreSQL to hold it to that). SQLite: an
FTS5 table whose rowid is the turn's rowid, kept in step with ``turns`` by triggers, so whoever writes turns
(the nightly run, a re-run, a benchmark's bulk load) keeps the index right without knowing of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True)
TIMESTAMP = sa.DateTime(timezone=True)
OPEN_QUEUE = "queue_tier IS NOT NULL AND review_status = 'open' AND assigned_to IS NULL"

SQLITE_FTS = [
    # unicode61 splits on spaces and punctuation and keeps a run of CJK characters whole: each jieba word
    # of ``words`` is one token.
    "CREATE VIRTUAL TABLE turns_fts USING fts5(words, conversation_id UNINDEXED, turn UNINDEXED, "
    "tokenize = 'unicode61')",
    "INSERT INTO turns_fts (rowid, words, conversation_id, turn) "
    "SELECT rowid, words, conversation_id, turn FROM turns",
    "CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN "
    "INSERT INTO turns_fts (rowid, words, conversation_id, turn) "
    "VALUES (new.rowid, new.words, new.conversation_id, new.turn); END",
    # ON DELETE CASCADE from conversations fires this too
    "CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN "
    "DELETE FROM turns_fts WHERE rowid = old.rowid; END",
    "CREATE TRIGGER turns_fts_update AFTER UPDATE ON turns BEGIN "
    "DELETE FROM turns_fts WHERE rowid = old.rowid; "
    "INSERT INTO turns_fts (rowid, words, conversation_id, turn) "
    "VALUES (new.rowid, new.words, new.conversation_id, new.turn); END",
]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("teams", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("role IN ('admin', 'supervisor', 'reviewer', 'trainer', 'agent')",
                           name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("login", name="uq_users_login"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_login_at", "login_failures", ["login", "at"])
    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("item", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("filed_at", TIMESTAMP, nullable=False),
        sa.Column("ruled_by", sa.String(), nullable=True),
        sa.Column("ruled_at", TIMESTAMP, nullable=True),
        sa.Column("ruling_reason", sa.Text(), nullable=True),
        sa.Column("ruling_value", JSON, nullable=True),
        sa.CheckConstraint("status IN ('open', 'upheld', 'overturned')", name="ck_appeals_status"),
        sa.PrimaryKeyConstraint("id", name="pk_appeals"),
    )
    op.create_index("ix_appeals_conversation_id", "appeals", ["conversation_id"])
    op.create_index("ix_appeals_agent_id", "appeals", ["agent_id"])
    op.create_index("uq_appeals_open_item", "appeals", ["conversation_id", "item"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_index("ix_conversations_open_queue", "conversations", ["queue_tier", "score", "id"],
                    sqlite_where=sa.text(OPEN_QUEUE), postgresql_where=sa.text(OPEN_QUEUE))
    op.create_index("ix_conversations_date_id", "conversations", ["date", "id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_turns_words_tsv ON turns USING gin (to_tsvector('simple', words))")
    elif op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_turns_words_tsv")
    elif op.get_bind().dialect.name == "sqlite":
        for trigger in ("turns_fts_insert", "turns_fts_delete", "turns_fts_update"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE turns_fts")
    op.drop_index("ix_conversations_date_id", "conversations")
    op.drop_index("ix_conversations_open_queue", "conversations")
    op.drop_table("appeals")
    op.drop_table("login_failures")
    op.drop_table("sessions")
    op.drop_table("users")
