"""Queue filters by a flag that does not order the queue: one partial index per such flag.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``GET /api/queue?flag=dead_air`` (alone, or with a complaint type, site, team …) walked the whole queue
index ``(queue_tier, score, id)`` and fetched each row to test ``flag_text LIKE '% dead_air %'``; a rare flag
with a second filter matched almost nothing on that walk, and PostgreSQL fell back to a parallel scan of
every conversation: 350–600 ms on the 270,000-conversation bench store (bench/web_load.py). A partial index
over only the conversations with the flag, in queue order, answers it from a few thousand entries (≤ 50 ms
there). ``critical`` (tier 0) and ``low_score`` lead the queue order already and ``low_confidence`` is half
the queue: the main queue index serves them as well as a partial one would.

The predicate is written as the queue's filter is (``LIKE … ESCAPE '\\'``, pipeline/store/review.py), so
PostgreSQL's planner proves the query implies it (checked with EXPLAIN: ``Index Scan using
ix_conversations_queue_dead_air``, 1.8 ms for ``flag=dead_air&complaint_type=noise``). SQLite's planner does
not prove that for a bound LIKE pattern and keeps walking the queue index; the indexes exist there too, so
both databases have one schema (and SQLite stores are the small ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUE_FLAGS = ("dead_air", "escalation_risk", "angry_customer")


def flag_predicate(flag: str) -> str:
    """The queue filter's own condition for ``flag`` (underscores escaped as review.py escapes them)."""
    return "flag_text LIKE '% " + flag.replace("_", "\\_") + " %' ESCAPE '\\'"


def upgrade() -> None:
    for flag in QUEUE_FLAGS:
        where = sa.text(flag_predicate(flag))
        op.create_index(f"ix_conversations_queue_{flag}", "conversations", ["queue_tier", "score", "id"],
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for flag in QUEUE_FLAGS:
        op.drop_index(f"ix_conversations_queue_{flag}", "conversations")
