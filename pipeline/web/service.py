"""What the workbench does, as plain functions: each takes a SQLAlchemy ``Session`` (from ``deps.SessionDep``)
and the signed-in ``User`` and returns exactly the JSON of REVIEW_API.md. The API routes (``api.py``) and the
pages (``pages.py``) both call these, so a page can never show or do what the API would refuse.

Errors are exceptions the callers map to status codes: ``NotFound`` 404 (also for what the user may not
see: no existence leak), ``Forbidden`` 403, ``Invalid`` 422, ``Conflict`` 409, ``Stale`` 409 with the
current conversation. Values in force and scores come from the store (``Store.decide`` / ``in_force``);
nothing here scores anything.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline import decisions
from pipeline.store import Store
from pipeline.store import review as repo
from pipeline.store.models import AppealRow, ConversationRow, utcnow
from pipeline.store.repository import StaleVersion
from pipeline.store.review import ListFilters, QueueFilters, SearchFilters, User

__all__ = [
    "Conflict", "Forbidden", "Invalid", "ListFilters", "NotFound", "QueueFilters", "SearchFilters", "Stale",
    "User", "agreement", "appeals", "assign", "audit", "conversation", "file_appeal", "queue", "review", "rule_appeal",
    "search", "store_of", "take_next",
]


class NotFound(Exception):
    """No such thing, or the user may not see it (answered the same: 404)."""


class Forbidden(Exception):
    """The user sees it but their role may not do this (403)."""


class Invalid(ValueError):
    """A bad item, value or parameter (422); ``item`` names the review item when there is one."""

    def __init__(self, message: str, item: str | None = None) -> None:
        super().__init__(message)
        self.item = item


class Conflict(Exception):
    """The request contradicts what is stored: a second open appeal, a ruling on a closed one (409)."""


class Stale(Exception):
    """A review written against an older version (409); ``current`` is the conversation as it is now."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__("the conversation changed since it was read")
        self.current = current


def store_of(s: Session) -> Store:
    """The store a request's session belongs to (``deps.get_session`` puts it in ``Session.info``)."""
    store = s.info.get("store")
    if not isinstance(store, Store):
        raise RuntimeError("session was not opened by pipeline.web.deps.get_session")
    return store


def _page_size(s: Session) -> int:
    return store_of(s).settings.web.page_size


def _bad(e: repo.BadQuery) -> Invalid:
    return Invalid(str(e))


def _date(value: Any, name: str) -> dt.date | None:
    if value is None or value == "" or isinstance(value, dt.date):
        return value or None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name}: {value!r} is not a number") from None


def filters_from(values: Mapping[str, Any], cls: type[ListFilters] = ListFilters) -> ListFilters:
    """Filters from query parameters as the API names them (``from``, ``to``, ``limit`` …; empty = unset)."""
    text = {k: (str(values[k]) if values.get(k) not in (None, "") else None)
            for k in ("site", "team", "agent", "complaint_type", "flag", "status", "item_missed", "cursor")}
    return cls(date=_date(values.get("date"), "date"), from_=_date(values.get("from", values.get("from_")), "from"),
               to=_date(values.get("to"), "to"), limit=_int(values.get("limit"), "limit"), **text)


# -- queue ---------------------------------------------------------------------------------------------

def queue(s: Session, user: User, filters: QueueFilters | Mapping[str, Any]) -> dict[str, Any]:
    """``GET /api/queue``: flagged and sampled conversations the user may see, most severe first.
    ``filters``: a ``QueueFilters``, or the query parameters as a mapping."""
    if not isinstance(filters, ListFilters):
        filters = filters_from(filters)
    try:
        rows, cursor = repo.queue_page(s, user, filters, _page_size(s))
    except repo.BadQuery as e:
        raise _bad(e) from None
    return {"items": [repo.list_item(r) for r in rows], "next_cursor": cursor}


def take_next(s: Session, user: User) -> dict[str, Any] | None:
    """``POST /api/queue/next``: claim the first open, unassigned item; None when none is left (204)."""
    if not user.may_review:
        raise Forbidden(f"a {user.role} does not take conversations for review")
    conv_id = repo.take_next(s, user, utcnow())
    s.commit()
    if conv_id is None:
        return None
    row = s.execute(select(*repo.LIST_COLUMNS).where(ConversationRow.id == conv_id)).one()
    return repo.list_item(row)


def assign(s: Session, user: User, conv_id: str, to: Any) -> dict[str, Any]:
    """``POST /api/conversations/{id}/assign {"to": login | null}``: a supervisor or admin gives a queued
    conversation to a reviewer who may see it (or takes it back: ``null``). A reviewed one stays reviewed."""
    row = repo.visible_row(s, user, conv_id)
    if row is None:
        raise NotFound(conv_id)
    if not user.may_rule:
        raise Forbidden(f"a {user.role} does not assign conversations")
    if to is not None:
        found = repo.user_with_hash(s, to) if isinstance(to, str) and "\x00" not in to else None
        if found is None or not found[0].may_review or repo.visible_row(s, found[0], conv_id) is None:
            raise Invalid(f"to: {to!r} is not a reviewer who can see this conversation")
    before = row.assigned_to
    status = row.review_status if row.review_status == "reviewed" else ("in_review" if to else "open")
    row.assigned_to, row.assigned_at, row.review_status = to, utcnow() if to else None, status
    repo.add_audit(s, conv_id, user.login, "assign", None, before, to, "assigned" if to else "unassigned")
    s.commit()
    out = s.execute(select(*repo.LIST_COLUMNS).where(ConversationRow.id == conv_id)).one()
    return repo.list_item(out)


# -- one conversation ----------------------------------------------------------------------------------

def _weights(store: Store) -> dict[str, tuple[float, bool]]:
    """(weight, red line) of each review item on the scorecard: what missing it costs."""
    card = store.card
    out = {item: (0.0, False) for item in decisions.REVIEW_ITEMS}
    for key in decisions.SCRIPT_KEYS:
        out[key] = (card.script.get(key.removeprefix("script."), 0.0), key in card.red_line_items)
    out[decisions.COURTESY] = (card.courtesy_each, "courtesy_violation" in card.red_line_items)
    out["dead_air"] = (card.dead_air, "dead_air" in card.red_line_items)
    return out


def appeal_dict(a: Any) -> dict[str, Any]:
    """An appeal as the API answers it (``a``: an ``AppealRow`` or a row of its columns)."""
    ruling = None
    if a.status != "open":
        ruling = {"decision": a.status, "value": a.ruling_value, "reason": a.ruling_reason, "by": a.ruled_by,
                  "at": a.ruled_at.isoformat() if a.ruled_at else None}
    return {"id": a.id, "conversation_id": a.conversation_id, "item": a.item, "reason": a.reason,
            "status": a.status, "filed_by": a.filed_by, "agent_id": a.agent_id,
            "filed_at": a.filed_at.isoformat(), "value": a.value, "ruling": ruling}


def _conversation(s: Session, row: Any) -> dict[str, Any]:
    """The answer of ``GET /api/conversations/{id}`` for ``row`` (``repo.RECORD_COLUMNS``, or a whole
    ``ConversationRow``)."""
    store = store_of(s)
    if row.status == "ok" and row.result is not None:
        record: dict[str, Any] = dict(row.result)
        weights = _weights(store)
        try:
            # in this session, from the row just read: no second connection, no second read of the row
            in_force = store.in_force(row.id, session=s, row=row)
        except LookupError:  # removed between our read and the store's (a re-run dropped it)
            raise NotFound(row.id) from None
        items = [{**in_force[i], "weight": weights[i][0], "red_line": weights[i][1]} for i in decisions.REVIEW_ITEMS]
        error = None
    else:
        record = {"id": row.id, "channel": row.channel, "agent_id": row.agent_id, "date": row.date.isoformat(),
                  "turns": []}
        items = []
        error = {"code": row.error_code, "message": row.error_message, "stage": row.failed_stage}
    record.update({
        "version": row.version,
        "items": items,
        "review": {"status": row.review_status, "assigned_to": row.assigned_to, "reviewed_by": row.reviewed_by,
                   "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None},
        "appeals": [appeal_dict(a) for a in repo.appeals_of(s, row.id)],
        # beside the result record, for the pages: who and where, and where the recording is
        "agent_name": row.agent_name, "team": row.team, "site": row.site,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "customer_ref": row.customer_ref, "room": row.room,
        "audio_url": f"/api/conversations/{row.id}/audio" if row.channel == "call" else None,
        "error": error,
    })
    return record


def conversation(s: Session, user: User, conv_id: str) -> dict[str, Any]:
    """``GET /api/conversations/{id}``: the record in force plus version, items, review and appeals."""
    s.expire_all()  # read what is stored now, not what this session saw earlier
    row = repo.visible_record(s, user, conv_id)
    if row is None:
        raise NotFound(conv_id)
    return _conversation(s, row)


def visible_conversation(s: Session, user: User, conv_id: str) -> ConversationRow:
    """The row, if the user may see it (the audio route uses it before serving a file)."""
    row = repo.visible_row(s, user, conv_id)
    if row is None:
        raise NotFound(conv_id)
    return row


# -- review --------------------------------------------------------------------------------------------

def _item_of(message: str, items: Sequence[str]) -> str | None:
    return next((i for i in items if message.startswith(f"{i}:") or f"{i!r}" in message), None)


def review(s: Session, user: User, conv_id: str, version: Any, decisions_: Sequence[Mapping[str, Any]]
           ) -> dict[str, Any]:
    """``POST /api/conversations/{id}/review``: confirm or override items; the store recomputes the score.
    Everything is checked before anything is written; a stale ``version`` writes nothing.

    The checks read only the columns they need (not the record in force, with its transcript): the store
    reads the conversation again under a row lock to write, and the answer is read once after that."""
    c = ConversationRow
    row = None if "\x00" in conv_id else s.execute(
        select(c.id, c.status, c.machine_result).where(c.id == conv_id, repo.visible(user))).one_or_none()
    if row is None:
        raise NotFound(conv_id)
    if not user.may_review:
        raise Forbidden(f"a {user.role} may not review")
    if row.status != "ok" or row.machine_result is None:
        raise Invalid("the conversation was not analysed: there is nothing to review")
    if not isinstance(version, int) or isinstance(version, bool):
        raise Invalid("version: must be the integer the conversation was read at")
    if not isinstance(decisions_, list) or not decisions_:
        raise Invalid("decisions: give at least one {item, value, reason}")
    machine = decisions.machine_values(row.machine_result)
    checked: list[tuple[str, Any, str]] = []
    for d in decisions_:
        item = d.get("item") if isinstance(d, Mapping) else None
        if not isinstance(item, str):
            raise Invalid("decisions: each needs an \"item\"")
        if "value" not in d:
            raise Invalid(f"{item}: no value given", item)
        try:
            value = decisions.validate(item, d["value"])
        except ValueError as e:
            raise Invalid(str(e), item) from None
        reason = d.get("reason") or ""
        if not isinstance(reason, str) or "\x00" in reason:
            raise Invalid(f"{item}: reason must be text", item)
        if value != machine[item] and not reason.strip():
            raise Invalid(f"{item}: an override of the machine's value needs a reason", item)
        if any(item == c[0] for c in checked):
            raise Invalid(f"{item}: decided twice in one review", item)
        checked.append((item, value, reason.strip()))
    s.rollback()  # end this session's read before the store writes (SQLite: a reader blocks the writer)
    try:
        store_of(s).decide(conv_id, checked, by=user.login, kind="review", expected_version=version)
    except StaleVersion:
        raise Stale(conversation(s, user, conv_id)) from None
    except LookupError:
        raise NotFound(conv_id) from None
    except ValueError as e:
        raise Invalid(str(e), _item_of(str(e), [c[0] for c in checked])) from None
    return conversation(s, user, conv_id)


# -- appeals -------------------------------------------------------------------------------------------

def file_appeal(s: Session, user: User, conv_id: str, item: Any, reason: Any) -> dict[str, Any]:
    """``POST /api/conversations/{id}/appeals``: the conversation's own agent appeals one item."""
    row = repo.visible_row(s, user, conv_id)
    if row is None:
        raise NotFound(conv_id)
    if user.role != "agent" or row.agent_id != user.agent_id:
        raise Forbidden("only the conversation's own agent may appeal it")
    if not isinstance(item, str) or item not in decisions.REVIEW_ITEMS:
        raise Invalid(f"item: {item!r} is not one of {', '.join(decisions.REVIEW_ITEMS)}", str(item))
    if not isinstance(reason, str) or not reason.strip() or "\x00" in reason:
        raise Invalid("reason: say why the finding is wrong", item)
    if row.status != "ok" or row.result is None:
        raise Invalid("the conversation was not analysed: there is nothing to appeal", item)
    window = store_of(s).settings.review.appeal_window_days
    closes = row.date + dt.timedelta(days=window)
    if dt.date.today() > closes:
        raise Invalid(f"the appeal window closed on {closes.isoformat()} ({window} days after the conversation)",
                      item)
    if repo.open_appeal(s, conv_id, item) is not None:
        raise Conflict(f"{item}: an appeal on it is already open")
    in_force = store_of(s).in_force(conv_id)[item]["value"]
    now = utcnow()
    appeal = AppealRow(conversation_id=conv_id, item=item, reason=reason.strip(), filed_by=user.login,
                       agent_id=row.agent_id, value=in_force, status="open", filed_at=now)
    s.add(appeal)
    try:
        s.flush()
    except IntegrityError:  # a second request raced this one past the check: the unique index refused it
        s.rollback()
        raise Conflict(f"{item}: an appeal on it is already open") from None
    repo.add_audit(s, conv_id, user.login, "appeal", item, in_force, None, reason.strip(), at=now)
    s.commit()
    return appeal_dict(appeal)


def rule_appeal(s: Session, user: User, appeal_id: int, decision: Any, value: Any, reason: Any) -> dict[str, Any]:
    """``POST /api/appeals/{id}/ruling``: a supervisor or admin upholds the finding or overturns it (the
    store then sets the value in force and rescores, as a ``ruling`` decision tied to the appeal)."""
    appeal = repo.visible_appeal(s, user, appeal_id)
    if appeal is None:
        raise NotFound(str(appeal_id))
    if not user.may_rule:
        raise Forbidden(f"a {user.role} may not rule on appeals")
    if decision not in ("upheld", "overturned"):
        raise Invalid("decision: must be \"upheld\" or \"overturned\"")
    if not isinstance(reason, str) or not reason.strip() or "\x00" in reason:
        raise Invalid("reason: a ruling needs a reason")
    if appeal.status != "open":
        raise Conflict(f"appeal {appeal_id} was already ruled on ({appeal.status})")
    item, conv_id, why, now = appeal.item, appeal.conversation_id, reason.strip(), utcnow()
    store = store_of(s)
    if decision == "overturned":
        try:
            value = decisions.validate(item, value)
        except ValueError as e:
            raise Invalid(str(e), item) from None
    else:
        value = store.in_force(conv_id)[item]["value"]
    if not repo.claim_appeal(s, appeal_id, decision, user.login, why, value, now):
        s.rollback()
        raise Conflict(f"appeal {appeal_id} was already ruled on")
    if decision == "upheld":
        repo.add_audit(s, conv_id, user.login, "ruling", item, value, value, f"upheld: {why}", at=now)
        s.commit()
    else:
        s.commit()  # the appeal is ours now: no second ruling can start; the store writes the value
        try:
            store.decide(conv_id, [(item, value, why)], by=user.login, kind="ruling", appeal_id=appeal_id)
        except (ValueError, LookupError) as e:
            repo.reopen_appeal(s, appeal_id)
            s.commit()
            raise Invalid(str(e), item) from None
    s.expire_all()
    ruled = repo.visible_appeal(s, user, appeal_id)
    assert ruled is not None
    return appeal_dict(ruled)


def appeals(s: Session, user: User, status: str | None, limit: int | None = None,
            cursor: str | None = None) -> dict[str, Any]:
    """``GET /api/appeals?status=``: appeals on conversations the user may see, oldest first."""
    try:
        rows, next_cursor = repo.appeals_page(s, user, status or None, limit, cursor, _page_size(s))
    except repo.BadQuery as e:
        raise _bad(e) from None
    return {"items": [appeal_dict(a) for a in rows], "next_cursor": next_cursor}


# -- audit, agreement, search --------------------------------------------------------------------------

def audit(s: Session, user: User, conv_id: str) -> list[dict[str, Any]]:
    """``GET /api/conversations/{id}/audit``: every change, oldest first."""
    if repo.visible_row(s, user, conv_id) is None:
        raise NotFound(conv_id)
    return [{"at": e.at.isoformat(), "by": e.by, "action": e.action, "item": e.item, "from": e.from_value,
             "to": e.to_value, "reason": e.reason} for e in repo.audit_entries(s, conv_id)]


def agreement(s: Session, user: User, from_: dt.date | str | None, to: dt.date | str | None,
              team: str | None = None) -> list[dict[str, Any]]:
    """``GET /api/agreement``: per item, n, raw agreement and Cohen's kappa between the machine's value and
    the reviewers' (their latest review of each conversation's item made from ``from_`` to ``to``
    inclusive; default: the last 30 days)."""
    if user.role == "agent":
        raise Forbidden("agreement is for reviewers, supervisors and trainers")
    last = _date(to, "to") or dt.date.today()
    first = _date(from_, "from") or last - dt.timedelta(days=29)
    if first > last:
        raise Invalid("from: must not be after to")
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    return repo.agreement_rows(repo.agreement_counts(s, user, start, end, team or None))


def query_words(q: str, s: Session | None = None) -> tuple[str, ...]:
    """A search query as the text stage segments turns: normalised, then jieba with the property lexicon,
    part by part (spaces separate parts); punctuation dropped, each word once."""
    from pipeline.config import get_settings
    from pipeline.text import normalise, segment

    lexicon = store_of(s).settings.lexicon_path if s is not None else get_settings().lexicon_path
    words: list[str] = []
    for part in q.replace("\x00", " ").split():
        for w in segment(normalise(part), lexicon):
            w = w.strip()
            if w and any(unicodedata.category(ch)[0] in "LN" for ch in w) and w not in words:
                words.append(w)
    return tuple(words)


def search(s: Session, user: User, q: str, filters: SearchFilters | Mapping[str, Any] | None = None
           ) -> dict[str, Any]:
    """``GET /api/conversations?q=``: conversations the user may see whose turns contain every word of
    ``q``, newest first, each with its matching turns as ``hits`` (and ``words``: the query segmented).
    ``filters``: a ``SearchFilters``, or the query parameters as a mapping."""
    if filters is not None and not isinstance(filters, SearchFilters):
        filters = filters_from(filters, SearchFilters)  # type: ignore[assignment]
    base = filters if isinstance(filters, SearchFilters) else SearchFilters()
    f = replace(base, q=q or "", words=query_words(q or "", s))
    try:
        rows, cursor = repo.search_page(s, user, f, _page_size(s))
    except repo.BadQuery as e:
        raise _bad(e) from None
    found = repo.hits(s, [r.id for r in rows], f.words)
    return {"items": [{**repo.list_item(r), "hits": found.get(r.id, [])} for r in rows], "next_cursor": cursor,
            "words": list(f.words)}
