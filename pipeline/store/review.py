"""Repository queries of the review workbench: users and sessions, the queue and take-next, search, appeals,
the audit log and machine–reviewer agreement.

Everything a user may see goes through one SQL filter, ``visible(user)``, so no query can forget it. Lists
are keyset-paginated SQL over indexed columns (queue: ``(queue_tier, score, id)``; search: ``(date, id)``
and the full-text index of turns), never rows loaded into Python and filtered there.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    Table,
    any_,
    bindparam,
    cast,
    column,
    delete,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from pipeline.decisions import REVIEW_ITEMS
from pipeline.schema import SCRIPT_ITEMS
from pipeline.store.models import (
    ROLES,
    SEARCH_DOCS_TABLE,
    SEARCH_FTS_TABLE,
    AppealRow,
    AuditRow,
    ConversationRow,
    CorrectionRow,
    LoginFailureRow,
    SessionRow,
    TurnRow,
    UserRow,
    utcnow,
)

REVIEWERS = ("admin", "supervisor", "reviewer")  # may review and take from the queue
RULERS = ("admin", "supervisor")  # may rule on appeals and assign
REVIEW_STATUSES = ("open", "in_review", "reviewed")
APPEAL_STATUSES = ("open", "upheld", "overturned")
MAX_LIMIT = 500


@dataclass(frozen=True)
class User:
    """The signed-in user, as every query and permission check sees them."""

    id: int
    login: str
    role: str
    agent_id: str | None = None
    teams: tuple[str, ...] = ()

    @property
    def may_review(self) -> bool:
        return self.role in REVIEWERS

    @property
    def may_rule(self) -> bool:
        return self.role in RULERS


def _user(row: UserRow) -> User:
    return User(id=row.id, login=row.login, role=row.role, agent_id=row.agent_id, teams=tuple(row.teams or ()))


class BadQuery(ValueError):
    """A filter, cursor or limit the caller got wrong (the API answers 422)."""


# -- visibility: the one filter ------------------------------------------------------------------------

def visible(user: User, c: Any = ConversationRow) -> ColumnElement[bool]:
    """Which conversations ``user`` may see, as one SQL condition on ``conversations`` (or on ``c``, another
    table with the conversation's ``agent_id`` and ``team``: PostgreSQL's search index carries them).

    admin: all; agent: those with their own agent_id (none without one); supervisor, reviewer, trainer:
    their teams' (all teams when they have none)."""
    if user.role == "admin":
        return true()
    if user.role == "agent":
        return c.agent_id == user.agent_id if user.agent_id else false()
    if user.role in ROLES:
        return c.team.in_(user.teams) if user.teams else true()
    return false()


def visible_row(s: Session, user: User, conversation_id: str) -> ConversationRow | None:
    """The conversation if it exists and ``user`` may see it, else None (the API's 404 either way)."""
    if "\x00" in conversation_id:  # PostgreSQL refuses NUL in text; no id has one
        return None
    q = select(ConversationRow).where(ConversationRow.id == conversation_id, visible(user))
    return s.scalars(q).one_or_none()


_c = ConversationRow.__table__
# What a conversation's page and ``GET /api/conversations/{id}`` show of its row (not the night's bookkeeping).
RECORD_COLUMNS = tuple(_c.c[name] for name in (
    "id", "status", "result", "machine_result", "channel", "agent_id", "date", "error_code", "error_message",
    "failed_stage", "version", "review_status", "assigned_to", "reviewed_by", "reviewed_at", "agent_name", "team",
    "site", "started_at", "customer_ref", "room"))


def _bound_visibility(user: User) -> tuple[str, dict[str, Any]]:
    """``visible(user)`` as one of four fixed conditions and the values for its parameters: the
    statements of the hottest routes are then built once, not per request (``_RECORD``)."""
    if user.role == "admin":
        return "all", {}
    if user.role == "agent":
        return ("agent", {"v_agent": user.agent_id}) if user.agent_id else ("none", {})
    if user.role in ROLES:
        return ("teams", {"v_teams": list(user.teams)}) if user.teams else ("all", {})
    return "none", {}


_VISIBILITY: dict[str, ColumnElement[bool]] = {
    "all": true(), "none": false(), "agent": _c.c.agent_id == bindparam("v_agent"),
    "teams": _c.c.team.in_(bindparam("v_teams", expanding=True)),
}
_RECORD = {kind: select(*RECORD_COLUMNS).where(_c.c.id == bindparam("cid"), cond)
           for kind, cond in _VISIBILITY.items()}


def visible_record(s: Session, user: User, conversation_id: str) -> Any:
    """``RECORD_COLUMNS`` of the conversation if it exists and ``user`` may see it, else None: one plain row
    (the conversation route reads it on every request; an ORM object would cost more and give nothing)."""
    if "\x00" in conversation_id:
        return None
    kind, params = _bound_visibility(user)
    return s.execute(_RECORD[kind], {"cid": conversation_id, **params}).one_or_none()


# -- users ---------------------------------------------------------------------------------------------

def add_user(s: Session, login: str, password_hash: str, role: str, *, agent_id: str | None = None,
             teams: Sequence[str] = ()) -> User:
    """Create an account, or replace the password, role, agent id and teams of an existing one."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "agent" and not agent_id:
        raise ValueError("an agent needs --agent-id (they see only their own conversations)")
    row = s.scalars(select(UserRow).where(UserRow.login == login)).one_or_none()
    if row is None:
        row = UserRow(login=login, password_hash=password_hash, role=role, agent_id=agent_id,
                      teams=list(teams), active=True)
        s.add(row)
    else:
        row.password_hash, row.role, row.agent_id, row.teams, row.active = (
            password_hash, role, agent_id, list(teams), True)
        # a changed password or role ends every session the account had
        s.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
    s.flush()
    return _user(row)


def user_with_hash(s: Session, login: str) -> tuple[User, str] | None:
    row = s.scalars(select(UserRow).where(UserRow.login == login, UserRow.active.is_(True))).one_or_none()
    return (_user(row), row.password_hash) if row is not None else None


def set_password_hash(s: Session, user_id: int, password_hash: str) -> None:
    s.execute(update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash))


def list_users(s: Session) -> list[User]:
    return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.login))]


# -- sessions and sign-in failures --------------------------------------------------------------------

def create_session(s: Session, session_id: str, user_id: int, csrf_token: str, expires_at: dt.datetime) -> None:
    s.add(SessionRow(id=session_id, user_id=user_id, csrf_token=csrf_token, expires_at=expires_at))
    s.flush()


_ut, _st = UserRow.__table__, SessionRow.__table__
_SESSION_USER = (
    select(_ut.c.id, _ut.c.login, _ut.c.role, _ut.c.agent_id, _ut.c.teams, _st.c.csrf_token)
    .join(_st, _st.c.user_id == _ut.c.id)
    .where(_st.c.id == bindparam("sid"), _st.c.expires_at > bindparam("now", type_=_st.c.expires_at.type),
           _ut.c.active.is_(True))
)


def session_user(s: Session, session_id: str, now: dt.datetime) -> tuple[User, str] | None:
    """(user, csrf token) of a live session of an active account."""
    # one statement built once, plain columns, not a UserRow: this runs on every request
    found = s.execute(_SESSION_USER, {"sid": session_id, "now": now}).one_or_none()
    if found is None:
        return None
    user = User(id=found.id, login=found.login, role=found.role, agent_id=found.agent_id,
                teams=tuple(found.teams or ()))
    return user, found.csrf_token


def delete_session(s: Session, session_id: str) -> None:
    s.execute(delete(SessionRow).where(SessionRow.id == session_id))


def purge_expired_sessions(s: Session, now: dt.datetime) -> None:
    s.execute(delete(SessionRow).where(SessionRow.expires_at <= now))


def recent_failures(s: Session, login: str, since: dt.datetime) -> int:
    q = select(func.count()).select_from(LoginFailureRow).where(LoginFailureRow.login == login,
                                                               LoginFailureRow.at > since)
    return int(s.execute(q).scalar_one())


def oldest_recent_failure(s: Session, login: str, since: dt.datetime) -> dt.datetime | None:
    q = select(func.min(LoginFailureRow.at)).where(LoginFailureRow.login == login, LoginFailureRow.at > since)
    return s.execute(q).scalar_one_or_none()


def add_failure(s: Session, login: str, at: dt.datetime) -> None:
    s.add(LoginFailureRow(login=login, at=at))
    s.flush()


def clear_failures(s: Session, login: str, before: dt.datetime | None = None) -> None:
    q = delete(LoginFailureRow).where(LoginFailureRow.login == login)
    if before is not None:
        q = q.where(LoginFailureRow.at <= before)
    s.execute(q)


# -- cursors -------------------------------------------------------------------------------------------

def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadQuery("cursor: not a cursor this API gave out") from None
    if not isinstance(values, list) or len(values) != n:
        raise BadQuery("cursor: not a cursor this API gave out")
    return values


def _limit(limit: int | None, default: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit: must be between 1 and {MAX_LIMIT}")
    return limit


# -- filters shared by the queue and search ------------------------------------------------------------

@dataclass(frozen=True)
class ListFilters:
    """Filters of ``GET /api/queue`` and ``GET /api/conversations`` (None = not filtered)."""

    date: dt.date | None = None
    from_: dt.date | None = None
    to: dt.date | None = None
    site: str | None = None
    team: str | None = None
    agent: str | None = None
    complaint_type: str | None = None
    flag: str | None = None
    status: str | None = None  # queue only: open | in_review | reviewed
    item_missed: str | None = None  # search only: a script item not done ("restate" or "script.restate")
    limit: int | None = None
    cursor: str | None = None


QueueFilters = ListFilters


@dataclass(frozen=True)
class SearchFilters(ListFilters):
    q: str = ""
    words: tuple[str, ...] = field(default=())  # the query segmented (service fills it)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(f: ListFilters, keys: Any = ConversationRow) -> list[ColumnElement[bool]]:
    """The filters as SQL conditions on ``conversations``; those on date, team and agent on ``keys``
    instead when given (the search index's own copies of them, so its sort and limit need no join)."""
    c = ConversationRow
    _check_filters(f)
    out: list[ColumnElement[bool]] = []
    if f.date is not None:
        out.append(keys.date == f.date)
    if f.from_ is not None:
        out.append(keys.date >= f.from_)
    if f.to is not None:
        out.append(keys.date <= f.to)
    if f.site:
        out.append(c.site == f.site)
    if f.team:
        out.append(keys.team == f.team)
    if f.agent:
        out.append(keys.agent_id == f.agent)
    if f.complaint_type:
        out.append(c.complaint_type == f.complaint_type)
    if f.flag:
        out.append(c.flag_text.like(f"% {_like_escape(f.flag)} %", escape="\\"))
    if f.status:
        out.append(c.review_status == f.status)
    if f.item_missed:
        out.append(getattr(c, f"script_{f.item_missed.removeprefix('script.')}").is_(False))
    return out


def _check_filters(f: ListFilters) -> None:
    """``BadQuery`` for a filter no query may take (NUL, an unknown status or script item)."""
    for name in ("site", "team", "agent", "complaint_type", "flag", "status", "item_missed", "cursor"):
        if "\x00" in (getattr(f, name) or ""):
            raise BadQuery(f"{name}: contains a NUL character")
    if f.status and f.status not in REVIEW_STATUSES:
        raise BadQuery(f"status: must be one of {', '.join(REVIEW_STATUSES)}")
    if f.item_missed and f.item_missed.removeprefix("script.") not in SCRIPT_ITEMS:
        raise BadQuery(f"item_missed: must be one of {', '.join(SCRIPT_ITEMS)}")


LIST_COLUMNS = (
    ConversationRow.id, ConversationRow.date, ConversationRow.channel, ConversationRow.agent_id,
    ConversationRow.agent_name, ConversationRow.team, ConversationRow.site, ConversationRow.score,
    ConversationRow.critical, ConversationRow.flags, ConversationRow.complaint_type, ConversationRow.queue_reason,
    ConversationRow.review_status, ConversationRow.assigned_to, ConversationRow.queue_tier,
    ConversationRow.started_at,
)


def list_item(row: Any) -> dict[str, Any]:
    """A queue or search item (REVIEW_API.md, "Queue") from a row that starts with ``LIST_COLUMNS``.
    Unpacked by position: a page has up to 500 of them, and reading a Row by position is several times
    cheaper than by name."""
    (conv_id, date, channel, agent_id, agent_name, team, site, score, critical, flags, complaint_type,
     queue_reason, review_status, assigned_to) = tuple(row)[:14]
    return {
        "id": conv_id, "date": date.isoformat(), "channel": channel, "agent_id": agent_id,
        "agent_name": agent_name, "team": team, "site": site, "score": score,
        "critical": critical, "flags": list(flags or []), "complaint_type": complaint_type,
        "reason": queue_reason, "status": review_status, "assigned_to": assigned_to,
    }


# -- the queue -----------------------------------------------------------------------------------------

def _queue_order() -> tuple[Any, ...]:
    c = ConversationRow
    return (c.queue_tier, c.score, c.id)


def queue_page(s: Session, user: User, f: ListFilters, default_limit: int) -> tuple[list[Any], str | None]:
    """One page of the review queue: tier (most severe first), then score, then id."""
    limit = _limit(f.limit, default_limit)
    c = ConversationRow
    q = select(*LIST_COLUMNS).where(c.queue_tier.is_not(None), c.status == "ok", visible(user), *_conditions(f))
    if f.cursor:
        tier, score, conv_id = decode_cursor(f.cursor, 3)
        if not (isinstance(tier, int) and isinstance(score, int | float) and isinstance(conv_id, str)):
            raise BadQuery("cursor: not a cursor this API gave out")
        q = q.where(tuple_(*_queue_order()) > tuple_(tier, float(score), conv_id))
    rows = list(s.execute(q.order_by(*_queue_order()).limit(limit + 1)).all())
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return page, encode_cursor([last.queue_tier, last.score, last.id]) if more and last is not None else None


def take_next(s: Session, user: User, now: dt.datetime) -> str | None:
    """Assign ``user`` the first open, unassigned queue item they may see; its id, or None when none is left.

    One UPDATE picks and claims the row, so two callers never get the same one: on PostgreSQL the pick
    skips rows another transaction is claiming (FOR UPDATE SKIP LOCKED), on SQLite writers are serialised;
    the claim re-checks that the row is still open either way, and a lost race simply tries again."""
    c = ConversationRow
    pick: Select[Any] = (
        select(c.id)
        .where(c.queue_tier.is_not(None), c.review_status == "open", c.assigned_to.is_(None), c.status == "ok",
               visible(user))
        .order_by(*_queue_order()).limit(1)
    )
    if s.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    claimed = s.execute(
        update(c)
        .where(c.id == pick.scalar_subquery(), c.review_status == "open", c.assigned_to.is_(None))
        .values(review_status="in_review", assigned_to=user.login, assigned_at=now)
        .returning(c.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is not None:
        add_audit(s, claimed, user.login, "assign", None, None, user.login, "take next", at=now)
    return claimed


# -- search --------------------------------------------------------------------------------------------

_FTS = table(SEARCH_FTS_TABLE, column("rowid"), column("conversation_id", String), column("turn"),
             column("words", String))
_DOCS = table(SEARCH_DOCS_TABLE, column("conversation_id", String), column("date", Date), column("status", String),
              column("agent_id", String), column("team", String), column("doc"))


def _fts_phrase(word: str) -> str:
    """An FTS5 phrase matching ``word`` exactly (its own quotes doubled)."""
    return '"' + word.replace('"', '""') + '"'


def _has_words(s: Session, words: Sequence[str]) -> list[ColumnElement[bool]]:
    """Conditions for: the conversation's turns contain every one of ``words``, answered by the index."""
    if not words:
        return []
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        sub = select(_DOCS.c.conversation_id).where(_docs_match(words))
        return [ConversationRow.id.in_(sub)]
    if dialect == "sqlite":
        out: list[ColumnElement[bool]] = []
        for w in words:
            match = literal_column(SEARCH_FTS_TABLE).op("MATCH")(bindparam(None, _fts_phrase(w), type_=String))
            out.append(ConversationRow.id.in_(select(_FTS.c.conversation_id).where(match)))
        return out
    # Another database has no index here: a plain LIKE keeps it correct, if slow.
    return [ConversationRow.id.in_(select(TurnRow.conversation_id)
                                   .where(TurnRow.words.like(f"%{_like_escape(w)}%", escape="\\")))
            for w in words]


def _docs_match(words: Sequence[str]) -> ColumnElement[bool]:
    """``search_docs.doc`` holds every one of ``words``: one tsquery w1 & w2 & …, so the GIN index
    intersects the words' posting lists itself."""
    parts = [func.phraseto_tsquery(literal_column("'simple'"), bindparam(None, w, type_=String)) for w in words]
    query: ColumnElement[Any] = parts[0]
    for one in parts[1:]:
        query = query.op("&&")(one)
    return _DOCS.c.doc.op("@@")(query)


@dataclass(frozen=True)
class _SearchShape:
    """What PostgreSQL's search statement depends on, but for the values: which filters are set."""

    n_words: int
    visibility: str  # _bound_visibility's kind
    date: bool
    from_: bool
    to: bool
    site: bool
    team: bool
    agent: bool
    complaint_type: bool
    flag: bool
    status: bool
    item_missed: str | None  # the script item (its column is part of the statement)
    cursor: bool
    limit: int


@lru_cache(maxsize=512)
def _pg_search(shape: _SearchShape) -> Select[Any]:
    """PostgreSQL's search statement of one shape, its values as parameters (``q0`` … the words, ``v_*``
    the visibility, ``f_*`` the filters, ``cur_day``/``cur_id`` the cursor).

    Match, visibility, date/team/agent filters, sort and limit all on search_docs (which carries those keys,
    migration 0006); conversations is joined for the page's rows only. Written as a LIMITed subquery: joined
    first, the planner (which underestimates how many documents a pair of common words matches, 478 for
    6,583) looked up every match in conversations and sorted after the join. The conditions are those of
    ``_conditions`` and ``visible``, bound."""
    d, c = _DOCS.c, ConversationRow
    parts = [func.phraseto_tsquery(literal_column("'simple'"), bindparam(f"q{i}", type_=String))
             for i in range(shape.n_words)]
    query: ColumnElement[Any] = parts[0]
    for one in parts[1:]:
        query = query.op("&&")(one)
    visibility = {"all": true(), "none": false(), "agent": d.agent_id == bindparam("v_agent"),
                  "teams": d.team.in_(bindparam("v_teams", expanding=True))}[shape.visibility]
    on_docs: list[ColumnElement[bool]] = []
    on_c: list[ColumnElement[bool]] = []
    if shape.date:
        on_docs.append(d.date == bindparam("f_date", type_=Date))
    if shape.from_:
        on_docs.append(d.date >= bindparam("f_from", type_=Date))
    if shape.to:
        on_docs.append(d.date <= bindparam("f_to", type_=Date))
    if shape.team:
        on_docs.append(d.team == bindparam("f_team", type_=String))
    if shape.agent:
        on_docs.append(d.agent_id == bindparam("f_agent", type_=String))
    if shape.site:
        on_c.append(c.site == bindparam("f_site", type_=String))
    if shape.complaint_type:
        on_c.append(c.complaint_type == bindparam("f_ct", type_=String))
    if shape.flag:
        on_c.append(c.flag_text.like(bindparam("f_flag", type_=String), escape="\\"))
    if shape.status:
        on_c.append(c.review_status == bindparam("f_status", type_=String))
    if shape.item_missed:
        on_c.append(getattr(c, f"script_{shape.item_missed}").is_(False))
    keyed = (select(d.conversation_id.label("cid"), d.date.label("day"))
             .where(d.doc.op("@@")(query), d.status == "ok", visibility, *on_docs))
    if shape.cursor:
        keyed = keyed.where(tuple_(d.date, d.conversation_id)
                            < tuple_(bindparam("cur_day", type_=Date), bindparam("cur_id", type_=String)))
    keyed = keyed.order_by(d.date.desc(), d.conversation_id.desc())
    if not on_c:  # other filters (site, complaint type, flag, item missed) are on conversations
        keyed = keyed.limit(shape.limit + 1)
    page_keys = keyed.subquery("keyed")
    return (select(*LIST_COLUMNS).select_from(page_keys).join(c, c.id == page_keys.c.cid).where(*on_c)
            .order_by(page_keys.c.day.desc(), page_keys.c.cid.desc()).limit(shape.limit + 1))


def search_page(s: Session, user: User, f: SearchFilters, default_limit: int) -> tuple[list[Any], str | None]:
    """Conversations whose turns contain every word of ``f.words``, newest first (date, then id)."""
    limit = _limit(f.limit, default_limit)
    c = ConversationRow
    cursor: tuple[dt.date, str] | None = None
    if f.cursor:
        day, conv_id = decode_cursor(f.cursor, 2)
        try:
            cursor = (dt.date.fromisoformat(day), str(conv_id))
        except (TypeError, ValueError):
            raise BadQuery("cursor: not a cursor this API gave out") from None
    if f.words and s.get_bind().dialect.name == "postgresql":
        # The statement is built once per shape (_pg_search) and given the values as parameters: building
        # it and its cache key cost more CPU than PostgreSQL's answer to it.
        _check_filters(f)
        vis, params = _bound_visibility(user)
        item = f.item_missed.removeprefix("script.") if f.item_missed else None
        shape = _SearchShape(
            n_words=len(f.words), visibility=vis, date=f.date is not None, from_=f.from_ is not None,
            to=f.to is not None, site=bool(f.site), team=bool(f.team), agent=bool(f.agent),
            complaint_type=bool(f.complaint_type), flag=bool(f.flag), status=bool(f.status), item_missed=item,
            cursor=cursor is not None, limit=limit)
        params |= {f"q{i}": w for i, w in enumerate(f.words)}
        params |= {k: v for k, v in (("f_date", f.date), ("f_from", f.from_), ("f_to", f.to),
                                     ("f_site", f.site), ("f_team", f.team), ("f_agent", f.agent),
                                     ("f_ct", f.complaint_type), ("f_status", f.status)) if v}
        if f.flag:
            params["f_flag"] = f"% {_like_escape(f.flag)} %"
        if cursor is not None:
            params |= {"cur_day": cursor[0], "cur_id": cursor[1]}
        rows = list(s.execute(_pg_search(shape), params).all())
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if page else None
        return page, encode_cursor([last.date.isoformat(), last.id]) if more and last is not None else None
    q = select(*LIST_COLUMNS).where(c.status == "ok", visible(user), *_conditions(f), *_has_words(s, f.words))
    if cursor is not None:
        q = q.where(tuple_(c.date, c.id) < tuple_(*cursor))
    q = q.order_by(c.date.desc(), c.id.desc())
    rows = list(s.execute(q.limit(limit + 1)).all())
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return page, encode_cursor([last.date.isoformat(), last.id]) if more and last is not None else None


@cache
def _pg_hits(n_words: int) -> Select[Any]:
    """PostgreSQL's statement of ``hits`` for ``n_words`` words (parameters ``ids``, ``w0`` …)."""
    t = cast_table(TurnRow)
    lowered = func.lower(t.c.words)
    return (select(t.c.conversation_id, t.c.turn, t.c.role, t.c.text, t.c.words)
            .where(t.c.conversation_id == any_(bindparam("ids", type_=postgresql.ARRAY(String))),
                   or_(*(lowered.like(bindparam(f"w{i}", type_=String), escape="\\") for i in range(n_words))))
            .order_by(t.c.conversation_id, t.c.turn))


def cast_table(model: Any) -> Table:
    """A model's table, typed as one (``__table__`` is typed as any FROM clause)."""
    table_: Table = model.__table__
    return table_


def hits(s: Session, conversation_ids: Sequence[str], words: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The turns of a page of conversations that contain a query word: ``{id: [{turn, role, text}]}``.
    Reads the page's turns only (a page is at most MAX_LIMIT conversations)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not conversation_ids or not words:
        return out
    wanted = {w.lower() for w in words}
    params: dict[str, Any] = {}
    if s.get_bind().dialect.name == "postgresql":
        # Only the turns holding one of the words come back (a page's turns are ~10 per conversation, most
        # without a word). A superset of the check below: a word of a turn, or a part of its words, is a
        # substring of them; lower() as the index's own 'simple' configuration folds case. The ids go as one
        # array parameter, so the statement's text is the same for every page (built once per word count).
        ordered = sorted(wanted)
        q: Any = _pg_hits(len(ordered))
        params = {"ids": list(conversation_ids)} | {f"w{i}": f"%{_like_escape(w)}%" for i, w in enumerate(ordered)}
    else:
        q = (select(TurnRow.conversation_id, TurnRow.turn, TurnRow.role, TurnRow.text, TurnRow.words)
             .where(TurnRow.conversation_id.in_(list(conversation_ids)))
             .order_by(TurnRow.conversation_id, TurnRow.turn))
    for t in s.execute(q, params):
        joined = (t.words or "").lower()
        # a word the index splits further (e.g. "3-2-1502") is found in the joined words instead
        if wanted & set(joined.split()) or any(w in joined for w in wanted if not w.isalnum()):
            out[t.conversation_id].append({"turn": t.turn, "role": t.role, "text": t.text})
    return out


# -- appeals -------------------------------------------------------------------------------------------

def open_appeal(s: Session, conversation_id: str, item: str) -> AppealRow | None:
    q = select(AppealRow).where(AppealRow.conversation_id == conversation_id, AppealRow.item == item,
                                AppealRow.status == "open")
    return s.scalars(q).first()


def visible_appeal(s: Session, user: User, appeal_id: int) -> AppealRow | None:
    q = (select(AppealRow).join(ConversationRow, ConversationRow.id == AppealRow.conversation_id)
         .where(AppealRow.id == appeal_id, visible(user)))
    return s.scalars(q).one_or_none()


_at = AppealRow.__table__
_APPEALS_OF = select(*_at.c).where(_at.c.conversation_id == bindparam("cid")).order_by(_at.c.id)


def appeals_of(s: Session, conversation_id: str) -> list[Any]:
    """Every appeal on the conversation, oldest first, as plain rows with ``AppealRow``'s attributes (read
    on every conversation page)."""
    return list(s.execute(_APPEALS_OF, {"cid": conversation_id}))


def appeals_page(s: Session, user: User, status: str | None, limit: int | None, cursor: str | None,
                 default_limit: int) -> tuple[list[AppealRow], str | None]:
    """Appeals on conversations ``user`` may see, oldest first (the order a supervisor works them in)."""
    n = _limit(limit, default_limit)
    q = (select(AppealRow).join(ConversationRow, ConversationRow.id == AppealRow.conversation_id)
         .where(visible(user)))
    if status:
        if status not in APPEAL_STATUSES:
            raise BadQuery(f"status: must be one of {', '.join(APPEAL_STATUSES)}")
        q = q.where(AppealRow.status == status)
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, int):
            raise BadQuery("cursor: not a cursor this API gave out")
        q = q.where(AppealRow.id > after)
    rows = list(s.scalars(q.order_by(AppealRow.id).limit(n + 1)))
    page = rows[:n]
    return page, encode_cursor([page[-1].id]) if len(rows) > n else None


def claim_appeal(s: Session, appeal_id: int, status: str, by: str, reason: str, value: Any,
                 now: dt.datetime) -> bool:
    """Close an open appeal with a ruling; False if it was no longer open (ruled by someone else)."""
    done = s.execute(
        update(AppealRow).where(AppealRow.id == appeal_id, AppealRow.status == "open")
        .values(status=status, ruled_by=by, ruled_at=now, ruling_reason=reason, ruling_value=value)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(done, "rowcount", 0))


def reopen_appeal(s: Session, appeal_id: int) -> None:
    s.execute(update(AppealRow).where(AppealRow.id == appeal_id)
              .values(status="open", ruled_by=None, ruled_at=None, ruling_reason=None, ruling_value=None)
              .execution_options(synchronize_session=False))


# -- audit ---------------------------------------------------------------------------------------------

def add_audit(s: Session, conversation_id: str, by: str, action: str, item: str | None, from_value: Any,
              to_value: Any, reason: str, at: dt.datetime | None = None) -> None:
    s.execute(insert(AuditRow).values(conversation_id=conversation_id, at=at or utcnow(), by=by, action=action,
                                      item=item, from_value=from_value, to_value=to_value, reason=reason))


def audit_entries(s: Session, conversation_id: str) -> list[AuditRow]:
    q = select(AuditRow).where(AuditRow.conversation_id == conversation_id).order_by(AuditRow.at, AuditRow.id)
    return list(s.scalars(q))


# -- agreement -----------------------------------------------------------------------------------------

def agreement_counts(s: Session, user: User, start: dt.datetime, end: dt.datetime,
                     team: str | None) -> dict[str, dict[tuple[Any, Any], int]]:
    """Per review item: how many times each (machine value, reviewer value) pair was decided, counting each
    conversation's latest review of the item made in [start, end). SQL groups the pairs; only the small
    contingency tables come back."""
    k = CorrectionRow
    latest = (
        select(func.max(k.id).label("id"))
        .join(ConversationRow, ConversationRow.id == k.conversation_id)
        .where(k.kind == "review", k.created_at >= start, k.created_at < end, visible(user),
               *([ConversationRow.team == team] if team else []))
        .group_by(k.conversation_id, k.item)
        .subquery()
    )
    machine, human = cast(k.machine_value, String), cast(k.human_value, String)
    q = (select(k.item, machine, human, func.count())
         .join(latest, latest.c.id == k.id)
         .group_by(k.item, machine, human))
    out: dict[str, dict[tuple[Any, Any], int]] = defaultdict(lambda: defaultdict(int))
    for item, m, h, n in s.execute(q):
        # the JSON text read back as values: [1, 2] and [1,2] are the same decision
        out[item][(_canonical(m), _canonical(h))] += int(n)
    return out


def _canonical(text: str | None) -> str:
    if text is None:
        return "null"
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return text


def kappa(table: dict[tuple[Any, Any], int]) -> tuple[int, float | None, float | None]:
    """(n, raw agreement, Cohen's kappa) of a contingency table; kappa is None where it is undefined (no
    pairs, or chance agreement 1: both raters always gave the one same value)."""
    n = sum(table.values())
    if n == 0:
        return 0, None, None
    observed = sum(v for (a, b), v in table.items() if a == b) / n
    left: dict[Any, int] = defaultdict(int)
    right: dict[Any, int] = defaultdict(int)
    for (a, b), v in table.items():
        left[a] += v
        right[b] += v
    expected = sum(left[x] * right.get(x, 0) for x in left) / (n * n)
    if expected >= 1.0:
        return n, observed, None
    return n, observed, (observed - expected) / (1 - expected)


def agreement_rows(counts: dict[str, dict[tuple[Any, Any], int]]) -> list[dict[str, Any]]:
    rows = []
    for item in REVIEW_ITEMS:
        n, agree, k = kappa(counts.get(item, {}))
        rows.append({"item": item, "n": n, "agreement": None if agree is None else round(agree, 4),
                     "kappa": None if k is None else round(k, 4)})
    return rows

