"""The queue filtered by agent, complaint type, site or team: one partial index in queue order per key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

An agent's queue (``GET /api/queue`` as an agent: ``agent_id = …``) and a reviewer's queue filtered by agent,
complaint type, site or team walked the queue index ``(queue_tier, score, id)`` and fetched each row to test
the key — a fiftieth of the rows match an agent, so a page of 50 read ~2,500 of them (13 ms on the
270,000-conversation bench store, bench/web_load.py) — or PostgreSQL combined the agent's index with the whole
queue index in a bitmap of 106,000 entries (27–100 ms for an agent's queue with a flag or a complaint type).
``(key, queue_tier, score, id)`` over the queued conversations only gives the page in order from as many
entries as it shows. Partial (``queue_tier IS NOT NULL``, the queue's own condition, which the planner proves
the query implies), so each holds the ~40 % of conversations that are queued.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUE_KEYS = ("agent_id", "complaint_type", "site", "team")
QUEUED = "queue_tier IS NOT NULL"


def upgrade() -> None:
    for key in QUEUE_KEYS:
        where = sa.text(QUEUED)
        op.create_index(f"ix_conversations_queue_by_{key}", "conversations", [key, "queue_tier", "score", "id"],
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for key in QUEUE_KEYS:
        op.drop_index(f"ix_conversations_queue_by_{key}", "conversations")
