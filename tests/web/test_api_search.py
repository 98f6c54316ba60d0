"""Search (REVIEW_API.md "Search"): every word of the query, segmented as the text stage segments turns,
answered by the full-text index (FTS5 / PostgreSQL GIN), newest first, only what the caller may see."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CHATS, LEAK_ID, T2, Workbench
from sqlalchemy import text

from pipeline.store.models import TurnRow


def _ids(body: dict[str, Any]) -> list[str]:
    return [it["id"] for it in body["items"]]


def test_two_words_find_the_turn_that_has_both(workbench: Workbench) -> None:
    body = workbench.get("qa", "/api/conversations?q=厨房 漏水").json()
    assert _ids(body) == [LEAK_ID]
    item = body["items"][0]
    assert {"id", "date", "agent_id", "score", "flags", "reason", "status", "hits"} <= set(item)
    assert item["hits"][0] == {"turn": 0, "role": "customer", "text": "你好，我家厨房的水管漏水了，楼下都渗水了"}
    assert body["words"] == ["厨房", "漏水"]


def test_every_word_must_be_there(workbench: Workbench) -> None:
    # 厨房 is in two conversations, 漏水 in one (and in the call: 卫生间漏水)
    kitchen = _ids(workbench.get("qa", "/api/conversations?q=厨房").json())
    assert set(kitchen) == {LEAK_ID, "W-CLEAN"}
    assert _ids(workbench.get("qa", "/api/conversations?q=厨房 电梯").json()) == []
    # a query without spaces is segmented too
    assert _ids(workbench.get("qa", "/api/conversations?q=厨房漏水").json()) == [LEAK_ID]


def test_only_what_the_caller_may_see(workbench: Workbench) -> None:
    assert _ids(workbench.get("qa2", "/api/conversations?q=厨房").json()) == ["W-CLEAN"]
    assert _ids(workbench.get("a102", "/api/conversations?q=厨房").json()) == []
    assert _ids(workbench.get("a101", "/api/conversations?q=厨房 漏水").json()) == [LEAK_ID]


def test_the_index_follows_a_conversation_moved_to_another_team_or_agent(workbench: Workbench) -> None:
    # PostgreSQL's search_docs carries team and agent (migration 0006): a trigger on conversations keeps them
    from pipeline.store.models import ConversationRow

    with workbench.store._session() as s:
        row = s.get(ConversationRow, LEAK_ID)
        assert row is not None
        row.team, row.agent_id = T2, "A102"
        s.commit()
    assert _ids(workbench.get("qa2", "/api/conversations?q=厨房 漏水").json()) == [LEAK_ID]
    assert _ids(workbench.get("a102", "/api/conversations?q=厨房 漏水").json()) == [LEAK_ID]
    assert _ids(workbench.get("a101", "/api/conversations?q=厨房 漏水").json()) == []
    assert _ids(workbench.get("qa", f"/api/conversations?q=厨房 漏水&team={T2}").json()) == [LEAK_ID]


def test_newest_first_with_pages_that_never_repeat_or_skip(workbench: Workbench) -> None:
    whole = workbench.get("admin", "/api/conversations?limit=500").json()["items"]
    keys = [(it["date"], it["id"]) for it in whole]
    assert keys == sorted(keys, reverse=True) and len(whole) == len(CHATS) + 1
    paged, cursor = [], None
    while True:
        body = workbench.get("admin", "/api/conversations?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        paged += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [it["id"] for it in paged] == [it["id"] for it in whole]


def test_filters_apply_to_search(workbench: Workbench) -> None:
    assert _ids(workbench.get("admin", f"/api/conversations?q=厨房&team={T2}").json()) == ["W-CLEAN"]
    conv = workbench.conv("admin", LEAK_ID)
    missed = [k for k, v in conv["script"].items() if not v]
    done = [k for k, v in conv["script"].items() if v]
    if missed:
        assert LEAK_ID in _ids(workbench.get("admin", f"/api/conversations?q=厨房&item_missed={missed[0]}").json())
    if done:
        assert LEAK_ID not in _ids(workbench.get("admin", f"/api/conversations?q=厨房&item_missed={done[0]}").json())
    assert workbench.get("admin", "/api/conversations?item_missed=smile").status_code == 422


def test_turns_keep_their_segmented_words(workbench: Workbench) -> None:
    with workbench.store._session() as s:
        words = s.query(TurnRow.words).filter(TurnRow.conversation_id == LEAK_ID, TurnRow.turn == 0).scalar()
    assert "厨房" in words.split() and "漏水" in words.split()


def test_search_is_answered_by_the_index(workbench: Workbench) -> None:
    """The query plan reads the full-text index, not every turn."""
    from pipeline.store import review as repo
    from pipeline.store.review import SearchFilters, User
    from pipeline.web import service

    with workbench.store._session() as s:
        s.info["store"] = workbench.store
        user = User(id=0, login="x", role="admin")
        f = SearchFilters(words=service.query_words("厨房 漏水", s))
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            s.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its options
        q = repo.select(*repo.LIST_COLUMNS).where(repo.visible(user), *repo._has_words(s, f.words))
        compiled = q.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(r[-1]) for r in s.execute(text(explain + str(compiled))))
    if dialect == "sqlite":
        assert "VIRTUAL TABLE INDEX" in plan and "turns_fts" in plan, plan
    else:
        assert "ix_search_docs_doc" in plan, plan


def test_postgres_full_text_keeps_chinese_words(workbench: Workbench) -> None:
    with workbench.store._session() as s:
        if s.get_bind().dialect.name != "postgresql":
            pytest.skip("PostgreSQL only")
        vector = s.execute(text("SELECT to_tsvector('simple', '我家 厨房 的 水管 漏水 了')::text")).scalar_one()
    assert "'厨房'" in vector and "'漏水'" in vector


def test_a_rerun_reindexes_the_turns(workbench: Workbench, analyses: list[Any]) -> None:
    leak = next(a for a in analyses if a.result.id == LEAK_ID)
    changed = leak.model_copy(update={"transcript": leak.transcript.model_copy(update={
        "turns": [t.model_copy(update={"tokens": ["电梯", "坏", "了"]}) for t in leak.transcript.turns]})})
    workbench.store.save_analysis(changed)
    assert _ids(workbench.get("qa", "/api/conversations?q=厨房 漏水").json()) == []
    assert LEAK_ID in _ids(workbench.get("qa", "/api/conversations?q=电梯").json())


def test_models_and_migrations_agree_leaving_out_the_search_tables(workbench: Workbench) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pipeline.store.models import Base, include_name

    with workbench.store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []
