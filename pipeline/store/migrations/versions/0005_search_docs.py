"""Search on PostgreSQL by conversation: one tsvector of all a conversation's words, GIN-indexed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

0003 indexed each turn (GIN on ``to_tsvector('simple', words)``). A query of two words then matched the first
word from the index and probed turn by turn for the second, recomputing each turn's tsvector: 0.5–1.8 s on
100,000 conversations when one word is rare and the other common (measured with EXPLAIN ANALYZE). Here
``search_docs`` holds one document per conversation (its turns' words, jieba's, space-joined; the 'simple'
configuration neither stems nor drops them, and its parser keeps CJK words whole under this database's
C.UTF-8 ctype — a test holds it to that); ``doc @@ (w1 & w2)`` is answered by the GIN index intersecting its
posting lists, and a common word's check against a stored document is cheap.

It is kept in step with ``turns`` by statement-level triggers with transition tables: whoever writes turns
(the nightly run, a re-run, a benchmark's bulk COPY) rebuilds the documents of exactly the conversations the
statement touched, once per statement. SQLite keeps 0003's per-turn FTS5 table (its stores are small).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_SEARCH = [
    "CREATE TABLE search_docs (conversation_id varchar PRIMARY KEY "
    "REFERENCES conversations (id) ON DELETE CASCADE, doc tsvector NOT NULL)",
    "CREATE INDEX ix_search_docs_doc ON search_docs USING gin (doc)",
    "INSERT INTO search_docs (conversation_id, doc) SELECT conversation_id, "
    "to_tsvector('simple', string_agg(words, ' ')) FROM turns GROUP BY conversation_id",
    # search_path pinned at creation: the functions find this schema's tables whoever calls them
    """CREATE FUNCTION zj_search_docs_refresh(ids text[]) RETURNS void LANGUAGE sql
       SET search_path FROM CURRENT AS $$
         DELETE FROM search_docs WHERE conversation_id = ANY (ids);
         INSERT INTO search_docs (conversation_id, doc)
         SELECT conversation_id, to_tsvector('simple', string_agg(words, ' ')) FROM turns
         WHERE conversation_id = ANY (ids) GROUP BY conversation_id;
       $$""",
    """CREATE FUNCTION zj_turns_search_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN PERFORM zj_search_docs_refresh(ARRAY(SELECT DISTINCT conversation_id FROM new_turns)); RETURN NULL;
       END $$""",
    """CREATE FUNCTION zj_turns_search_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN PERFORM zj_search_docs_refresh(ARRAY(SELECT DISTINCT conversation_id FROM old_turns)); RETURN NULL;
       END $$""",
    """CREATE FUNCTION zj_turns_search_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN PERFORM zj_search_docs_refresh(ARRAY(SELECT conversation_id FROM new_turns
                                                  UNION SELECT conversation_id FROM old_turns)); RETURN NULL;
       END $$""",
    "CREATE TRIGGER turns_search_insert AFTER INSERT ON turns REFERENCING NEW TABLE AS new_turns "
    "FOR EACH STATEMENT EXECUTE FUNCTION zj_turns_search_insert()",
    "CREATE TRIGGER turns_search_delete AFTER DELETE ON turns REFERENCING OLD TABLE AS old_turns "
    "FOR EACH STATEMENT EXECUTE FUNCTION zj_turns_search_delete()",
    "CREATE TRIGGER turns_search_update AFTER UPDATE ON turns REFERENCING OLD TABLE AS old_turns "
    "NEW TABLE AS new_turns FOR EACH STATEMENT EXECUTE FUNCTION zj_turns_search_update()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_turns_words_tsv")
    for statement in POSTGRES_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for kind in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER turns_search_{kind} ON turns")
        op.execute(f"DROP FUNCTION zj_turns_search_{kind}()")
    op.execute("DROP FUNCTION zj_search_docs_refresh(text[])")
    op.execute("DROP TABLE search_docs")
    op.execute("CREATE INDEX ix_turns_words_tsv ON turns USING gin (to_tsvector('simple', words))")
