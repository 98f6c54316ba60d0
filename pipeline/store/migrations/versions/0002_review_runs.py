"""Values in force as columns, review state, provenance (resume); audit log; runs; words for search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True)
TIMESTAMP = sa.DateTime(timezone=True)
SCRIPT_ITEMS = ("greeting", "identity_check", "restate", "commitment", "ownership", "closing", "farewell")


def upgrade() -> None:
    with op.batch_alter_table("conversations") as t:
        t.add_column(sa.Column("machine_result", JSON, nullable=True))
        t.add_column(sa.Column("customer_dissatisfaction", sa.Float(), nullable=True))
        t.add_column(sa.Column("courtesy_violations", sa.Integer(), nullable=True))
        for item in SCRIPT_ITEMS:
            t.add_column(sa.Column(f"script_{item}", sa.Boolean(), nullable=True))
        t.add_column(sa.Column("flag_text", sa.String(), nullable=True))
        t.add_column(sa.Column("queue_reason", sa.String(), nullable=True))
        t.add_column(sa.Column("queue_tier", sa.Integer(), nullable=True))
        t.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        t.add_column(sa.Column("review_status", sa.String(), nullable=False, server_default="open"))
        t.add_column(sa.Column("assigned_to", sa.String(), nullable=True))
        t.add_column(sa.Column("assigned_at", TIMESTAMP, nullable=True))
        t.add_column(sa.Column("reviewed_by", sa.String(), nullable=True))
        t.add_column(sa.Column("reviewed_at", TIMESTAMP, nullable=True))
        t.add_column(sa.Column("customer_ref", sa.String(), nullable=True))
        t.add_column(sa.Column("room", sa.String(), nullable=True))
        t.add_column(sa.Column("first_response_seconds", sa.Float(), nullable=True))
        t.add_column(sa.Column("content_hash", sa.String(), nullable=True))
        t.add_column(sa.Column("pipeline_version", sa.String(), nullable=True))
        t.add_column(sa.Column("run_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("updated_at", TIMESTAMP, nullable=True))
    op.create_index("ix_conversations_agent_id_date", "conversations", ["agent_id", "date"])
    op.create_index("ix_conversations_team_date", "conversations", ["team", "date"])
    op.create_index("ix_conversations_site_date", "conversations", ["site", "date"])
    op.create_index("ix_conversations_queue", "conversations", ["queue_tier", "score", "id"])
    op.create_index("ix_conversations_review_status", "conversations", ["review_status"])

    with op.batch_alter_table("turns") as t:
        t.add_column(sa.Column("words", sa.Text(), nullable=False, server_default=""))

    with op.batch_alter_table("corrections") as t:
        t.add_column(sa.Column("kind", sa.String(), nullable=False, server_default="correction"))
        t.add_column(sa.Column("appeal_id", sa.Integer(), nullable=True))

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("item", sa.String(), nullable=True),
        sa.Column("from_value", JSON, nullable=True),
        sa.Column("to_value", JSON, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_conversation_id", "audit_log", ["conversation_id"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("pipeline_version", sa.String(), nullable=False),
        sa.Column("counts", JSON, nullable=True),
        sa.Column("host", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_date", "runs", ["date"])
    # per-agent numbers are aggregated from the in-force columns now; a stored copy would go stale on review
    op.drop_table("agent_daily")


def downgrade() -> None:
    op.create_table(
        "agent_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("agent_name", sa.String(), nullable=False),
        sa.Column("team", sa.String(), nullable=False),
        sa.Column("skill", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_daily"),
        sa.UniqueConstraint("date", "agent_id", "skill", name="uq_agent_daily_date_agent_id_skill"),
    )
    op.create_index("ix_agent_daily_agent_id", "agent_daily", ["agent_id"])
    op.drop_table("runs")
    op.drop_table("audit_log")
    with op.batch_alter_table("corrections") as t:
        t.drop_column("appeal_id")
        t.drop_column("kind")
    with op.batch_alter_table("turns") as t:
        t.drop_column("words")
    for name in ("review_status", "queue", "site_date", "team_date", "agent_id_date"):
        op.drop_index(f"ix_conversations_{name}", "conversations")
    with op.batch_alter_table("conversations") as t:
        for col in ("updated_at", "run_id", "pipeline_version", "content_hash", "first_response_seconds", "room",
                    "customer_ref", "reviewed_at", "reviewed_by", "assigned_at", "assigned_to", "review_status",
                    "version", "queue_tier", "queue_reason", "flag_text", *(f"script_{i}" for i in SCRIPT_ITEMS),
                    "courtesy_violations", "customer_dissatisfaction", "machine_result"):
            t.drop_column(col)
