"""Initial schema: conversations, turns, findings, agent_daily, corrections.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration must not import the live models (they change later); it spells its types out.
JSON = sa.JSON(none_as_null=True)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("agent_name", sa.String(), nullable=False),
        sa.Column("team", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("failed_stage", sa.String(), nullable=True),
        sa.Column("asr_model", sa.String(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=True),
        sa.Column("flags", JSON, nullable=True),
        sa.Column("complaint_type", sa.String(), nullable=True),
        sa.Column("complaint_confidence", sa.Float(), nullable=True),
        sa.Column("customer_emotion", sa.String(), nullable=True),
        sa.Column("escalation_risk", sa.Boolean(), nullable=True),
        sa.Column("dead_air", sa.Boolean(), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('ok', 'failed')", name="ck_conversations_status"),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
    )
    op.create_index("ix_conversations_date", "conversations", ["date"])
    op.create_index("ix_conversations_agent_id", "conversations", ["agent_id"])

    op.create_table(
        "turns",
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("start", sa.Float(), nullable=True),
        sa.Column("end", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name="fk_turns_conversation_id_conversations", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "turn", name="pk_turns"),
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("item", sa.String(), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name="fk_findings_conversation_id_conversations", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    op.create_index("ix_findings_conversation_id", "findings", ["conversation_id"])

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

    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("item", sa.String(), nullable=False),
        sa.Column("machine_value", JSON, nullable=True),
        sa.Column("human_value", JSON, nullable=True),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_corrections"),
    )
    op.create_index("ix_corrections_conversation_id", "corrections", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("corrections")
    op.drop_table("agent_daily")
    op.drop_table("findings")
    op.drop_table("turns")
    op.drop_table("conversations")
