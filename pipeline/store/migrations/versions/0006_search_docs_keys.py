"""Search on PostgreSQL: the sort keys and the visibility columns beside each document.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

With 0005's ``search_docs`` a search was ``conversations.id IN (SELECT conversation_id FROM search_docs WHERE
doc @@ q) ORDER BY date DESC, id DESC LIMIT 51``: for a pair of common words 7,880 primary-key lookups into
``conversations`` and a sort of them, 306 ms on the 270,000-conversation bench store. Here ``search_docs``
carries what the search sorts and filters on most — ``date``, ``status`` and the visibility keys ``agent_id``
and ``team`` — so the match, the filter, the sort and the limit all happen inside ``search_docs`` and only the
page's rows are looked up in ``conversations`` (32–73 ms measured). The other filters (site, complaint type,
flag, item missed) stay on ``conversations``.

The copies are kept in step by the same trigger functions: a statement writing turns rebuilds its
conversations' documents with the conversations' current keys, and a row trigger on ``conversations``
follows a change of date, status, agent or team (a re-run that moved a conversation). The table is rebuilt
rather than updated in place: an UPDATE of every row would leave a dead copy of each document behind and
re-insert each into the GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFRESH_0005 = """CREATE OR REPLACE FUNCTION zj_search_docs_refresh(ids text[]) RETURNS void LANGUAGE sql
   SET search_path FROM CURRENT AS $$
     DELETE FROM search_docs WHERE conversation_id = ANY (ids);
     INSERT INTO search_docs (conversation_id, doc)
     SELECT conversation_id, to_tsvector('simple', string_agg(words, ' ')) FROM turns
     WHERE conversation_id = ANY (ids) GROUP BY conversation_id;
   $$"""

UPGRADE = [
    "CREATE TABLE search_docs_keyed (conversation_id varchar NOT NULL, date date NOT NULL, "
    "status varchar NOT NULL, agent_id varchar, team varchar, doc tsvector NOT NULL)",
    "INSERT INTO search_docs_keyed (conversation_id, date, status, agent_id, team, doc) "
    "SELECT d.conversation_id, c.date, c.status, c.agent_id, c.team, d.doc "
    "FROM search_docs d JOIN conversations c ON c.id = d.conversation_id",
    "DROP TABLE search_docs",
    "ALTER TABLE search_docs_keyed RENAME TO search_docs",
    "ALTER TABLE search_docs ADD CONSTRAINT search_docs_pkey PRIMARY KEY (conversation_id)",
    "ALTER TABLE search_docs ADD CONSTRAINT search_docs_conversation_id_fkey FOREIGN KEY (conversation_id) "
    "REFERENCES conversations (id) ON DELETE CASCADE",
    "CREATE INDEX ix_search_docs_doc ON search_docs USING gin (doc)",
    # newest first, the search's order (a btree is read backwards as readily as forwards)
    "CREATE INDEX ix_search_docs_date ON search_docs (date, conversation_id)",
    "CREATE INDEX ix_search_docs_agent_date ON search_docs (agent_id, date, conversation_id)",
    "CREATE INDEX ix_search_docs_team_date ON search_docs (team, date, conversation_id)",
    """CREATE OR REPLACE FUNCTION zj_search_docs_refresh(ids text[]) RETURNS void LANGUAGE sql
       SET search_path FROM CURRENT AS $$
         DELETE FROM search_docs WHERE conversation_id = ANY (ids);
         INSERT INTO search_docs (conversation_id, date, status, agent_id, team, doc)
         SELECT t.conversation_id, c.date, c.status, c.agent_id, c.team, to_tsvector('simple', string_agg(t.words, ' '))
         FROM turns t JOIN conversations c ON c.id = t.conversation_id
         WHERE t.conversation_id = ANY (ids) GROUP BY t.conversation_id, c.date, c.status, c.agent_id, c.team;
       $$""",
    """CREATE FUNCTION zj_conversations_search_keys() RETURNS trigger LANGUAGE plpgsql
       SET search_path FROM CURRENT AS $$
       BEGIN
         UPDATE search_docs SET date = NEW.date, status = NEW.status, agent_id = NEW.agent_id, team = NEW.team
         WHERE conversation_id = NEW.id;
         RETURN NULL;
       END $$""",
    "CREATE TRIGGER conversations_search_keys AFTER UPDATE OF date, status, agent_id, team ON conversations "
    "FOR EACH ROW WHEN (OLD.date IS DISTINCT FROM NEW.date OR OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.agent_id IS DISTINCT FROM NEW.agent_id OR OLD.team IS DISTINCT FROM NEW.team) "
    "EXECUTE FUNCTION zj_conversations_search_keys()",
    # statistics for a filled store's planner at once; an empty one is left unanalysed (statistics of no rows
    # would make the planner take a full scan of the primary key for the GIN index once rows come)
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM search_docs) THEN ANALYZE search_docs; END IF; END $$",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER conversations_search_keys ON conversations")
    op.execute("DROP FUNCTION zj_conversations_search_keys()")
    for name in ("date", "agent_date", "team_date"):
        op.execute(f"DROP INDEX ix_search_docs_{name}")
    for column in ("date", "status", "agent_id", "team"):
        op.execute(f"ALTER TABLE search_docs DROP COLUMN {column}")
    op.execute(REFRESH_0005)
