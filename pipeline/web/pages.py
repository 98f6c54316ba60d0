"""The workbench's pages (质检工作台): server-rendered with Jinja2 from the same service functions the JSON
API answers with, so a page never shows what the API would not. Pages only read; every change goes through
the JSON API from the page's plain JS (with the X-CSRF-Token header), so the API's checks are the only ones.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from pipeline.config import Settings
from pipeline.decisions import COURTESY, OTHER_FLAG_TIER, REVIEW_ITEMS, SAMPLE_TIER, SCRIPT_KEYS, TIER_FLAGS
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS
from pipeline.scorecard import Scorecard
from pipeline.store.review import MAX_LIMIT, QueueFilters, SearchFilters, User
from pipeline.web import service
from pipeline.web.deps import InboxDep, OptionalUser, PageUser, SessionDep, SettingsDep

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Times are shown as the users live them: the company's clock, not UTC.
LOCAL = ZoneInfo("Asia/Shanghai")

# -- labels (Chinese, for the users) -------------------------------------------------------------------------

SCRIPT_LABELS = {
    "greeting": "开场问候", "identity_check": "核实信息", "restate": "复述确认", "commitment": "处理时限",
    "ownership": "首问负责", "closing": "结束确认", "farewell": "致谢道别",
}
COMPLAINT_LABELS = {
    "repair": "报事报修", "facility": "公共设施", "security": "安保秩序", "cleaning": "环境卫生",
    "greening": "绿化养护", "parking": "停车管理", "fees": "收费争议", "noise": "噪音扰民", "neighbor": "邻里纠纷",
    "renovation": "装修管理", "staff_attitude": "服务态度", "inquiry": "咨询", "praise": "表扬",
}
EMOTION_LABELS = {"calm": "平静", "dissatisfied": "不满", "angry": "愤怒"}
ITEM_LABELS = {
    "complaint_type": "投诉类型", "customer_emotion": "客户情绪", "escalation_risk": "升级风险",
    "dead_air": "长时静音", COURTESY: "服务禁语", "courtesy_violation": "服务禁语",
    **{f"script.{k}": v for k, v in SCRIPT_LABELS.items()},
}
LABELS: dict[str, dict[Any, str]] = {
    "item": ITEM_LABELS,
    "complaint": COMPLAINT_LABELS,
    "emotion": EMOTION_LABELS,
    "flag": {"critical": "红线", "escalation_risk": "升级风险", "low_score": "低分", "low_confidence": "低置信",
             "dead_air": "长时静音", "angry_customer": "客户愤怒"},
    "status": {"open": "待审", "in_review": "审核中", "reviewed": "已审"},
    "reason": {"flagged": "标记", "sample": "抽检"},
    "tier": {0: "红线", 1: "升级风险", 2: "低分", 3: "低置信", 4: "其他标记", 5: "抽检"},
    "channel": {"call": "电话", "chat": "在线"},
    "speaker": {"agent": "座席", "customer": "客户"},
    "role": {"admin": "管理员", "supervisor": "质检主管", "reviewer": "质检员", "trainer": "培训师", "agent": "座席"},
    "source": {"machine": "机器", "review": "质检复核", "ruling": "申诉裁定", "correction": "人工更正"},
    "appeal": {"open": "待裁定", "upheld": "维持原判", "overturned": "已改判"},
    "action": {"review": "复核", "ruling": "裁定", "correction": "更正", "rerun": "重跑", "appeal": "申诉",
               "assign": "领取"},
}
assert set(COMPLAINT_LABELS) == set(COMPLAINT_TYPES) and set(EMOTION_LABELS) == set(EMOTIONS)
assert set(SCRIPT_LABELS) == set(SCRIPT_ITEMS) and set(ITEM_LABELS) >= set(REVIEW_ITEMS)



# -- template filters ------------------------------------------------------------------------------------------


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str) and value:
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(LOCAL)


def when(value: Any) -> str:
    """A timestamp as 2026-11-21 09:12 (local time)."""
    t = _parse_time(value)
    return t.strftime("%Y-%m-%d %H:%M") if t else ("" if value is None else str(value))


def hms(value: Any) -> str:
    """A chat message's time as 20:01:00 (local time)."""
    t = _parse_time(value)
    return t.strftime("%H:%M:%S") if t else ""


def clock(seconds: Any) -> str:
    """Seconds into a recording as m:ss."""
    if not isinstance(seconds, int | float):
        return ""
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def plain(value: Any, item: str | None = None) -> str:
    """An audit entry's value, in words."""
    if value is None:
        return ""
    if isinstance(value, bool):
        good = {"escalation_risk": False, "dead_air": False}.get(item or "", True)
        if item and item.startswith("script."):
            return "已做" if value else "未做"
        return ("是" if value else "否") if item in ("escalation_risk", "dead_air") or not good else str(value)
    if item == COURTESY and isinstance(value, list):
        return "、".join(f"#{t}" for t in value) or "无"
    if item == "complaint_type":
        return COMPLAINT_LABELS.get(str(value), str(value))
    if item == "customer_emotion":
        return EMOTION_LABELS.get(str(value), str(value))
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def highlight(text: str, terms: Sequence[str]) -> Markup:
    """``text`` with every occurrence of each search term in <mark>, the rest escaped."""
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return Markup(escape(text))
    out: list[str] = []
    i = 0
    while i < len(text):
        hit = next((w for w in words if text.startswith(w, i)), None)
        if hit:
            out.append(f"<mark>{escape(hit)}</mark>")
            i += len(hit)
        else:
            out.append(str(escape(text[i])))
            i += 1
    return Markup("".join(out))


templates.env.filters.update(when=when, hms=hms, clock=clock, plain=plain, highlight=highlight)
templates.env.globals.update(labels=LABELS, script_labels=SCRIPT_LABELS)


# -- the scorecard rows ---------------------------------------------------------------------------------------


def _card(settings: Settings) -> Scorecard:
    return Scorecard.load(settings.scorecard_path)  # read once per path (Scorecard.load caches)


def item_meta(item: str) -> dict[str, Any]:
    """How an item's value is shown and edited: kind, the options (value → label), which value is good."""
    if item == "complaint_type":
        return {"kind": "enum", "options": COMPLAINT_LABELS, "good": None}
    if item == "customer_emotion":
        return {"kind": "enum", "options": EMOTION_LABELS, "good": None}
    if item == COURTESY:
        return {"kind": "turns", "options": {}, "good": []}
    if item.startswith("script."):
        return {"kind": "bool", "options": {True: "✓ 已做", False: "✗ 未做"}, "good": True}
    return {"kind": "bool", "options": {True: "是", False: "否"}, "good": False}


def weight(item: str, card: Scorecard) -> str:
    """The item's weight on the scorecard, as the reviewer reads it."""
    red_line = item in card.red_line_items or (item == COURTESY and "courtesy_violation" in card.red_line_items)
    red = " · 红线" if red_line else ""
    if item in SCRIPT_KEYS:
        points = card.script.get(item.removeprefix("script."))
        return (f"−{points:g}" if points else "0") + red
    if item == COURTESY:
        return f"每处 −{card.courtesy_each:g}{red}"
    if item == "dead_air":
        return f"−{card.dead_air:g}"
    if item == "escalation_risk":
        return "标记"
    return "—"


def scorecard_rows(conv: Mapping[str, Any], open_items: set[str], card: Scorecard) -> list[dict[str, Any]]:
    rows = []
    for it in conv.get("items", []):
        item = it["item"]
        source = it.get("source") or "machine"
        rows.append({
            **item_meta(item),
            "item": item,
            "label": ITEM_LABELS.get(item, item),
            "weight": weight(item, card),
            "machine_value": it.get("machine_value"),
            "value": it.get("value"),
            "confidence": it.get("confidence"),
            "evidence": it.get("evidence") or [],
            "source": source,
            "decided_by": it.get("decided_by"),
            "overridden": source != "machine" and it.get("value") != it.get("machine_value"),
            "open_appeal": item in open_items,
        })
    return rows


def transcript_turns(conv: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                     inbox: Path | None) -> list[dict[str, Any]]:
    """The turns, each with the labels of the items whose evidence it is and whether it is a violation in
    force; a chat's message times, where the record lacks them, come from the chat file itself."""
    cited: dict[int, list[str]] = {}
    violations: set[int] = set()
    for r in rows:
        if r["item"] == COURTESY:
            for t in r["value"] or []:
                violations.add(t)
                cited.setdefault(t, []).insert(0, r["label"])
            continue
        for e in r["evidence"]:
            cited.setdefault(int(e["turn"]), []).append(r["label"])
    times = chat_times(conv, inbox) if conv.get("channel") == "chat" else {}
    out = []
    for t in conv.get("turns", []):
        n = int(t["turn"])
        out.append({**t, "cited": list(dict.fromkeys(cited.get(n, []))), "violation": n in violations,
                    "at": t.get("at") or times.get(n)})
    return out


def chat_times(conv: Mapping[str, Any], inbox: Path | None) -> dict[int, str]:
    """A chat's message times, read from its own file in the inbox (``<inbox>/<date>/chats/<id>.json``,
    CONVERSATIONS.md section 1): the stored record keeps each message's text but not its time."""
    if inbox is None or any(t.get("at") for t in conv.get("turns", [])):
        return {}
    root = inbox.resolve()
    try:
        path = (root / str(conv.get("date")) / "chats" / f"{conv.get('id')}.json").resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return {}
        messages = json.loads(path.read_text(encoding="utf-8")).get("messages", [])
    except (OSError, ValueError, AttributeError):
        return {}
    if len(messages) != len(conv.get("turns", [])):
        return {}  # not the file the record was made from
    return {i: m["at"] for i, m in enumerate(messages) if isinstance(m, dict) and isinstance(m.get("at"), str)}


# -- pages ---------------------------------------------------------------------------------------------------


def _render(request: Request, name: str, page: str, user: User | None, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {
        "page": page, "user": user, "csrf_token": getattr(request.state, "csrf_token", "") if user else "",
        **context,
    }, status_code=status_code)


def _query(request: Request, keys: Sequence[str]) -> dict[str, str]:
    """The filters given (blank ones dropped), as strings, to fill the form and build page links."""
    return {k: v for k in keys if (v := request.query_params.get(k, "").strip())}


def _date(f: Mapping[str, str], key: str) -> dt.date | None:
    raw = f.get(key)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise service.Invalid(f"{key}: {raw!r} is not a date (YYYY-MM-DD)") from None


def _list_filters(f: Mapping[str, str], cursor: str | None) -> dict[str, Any]:
    limit = f.get("limit")
    if limit is not None and not limit.isdigit():
        raise service.Invalid(f"limit: {limit!r} is not a number")
    return {
        "date": _date(f, "date"), "from_": _date(f, "from"), "to": _date(f, "to"),
        **{k: f.get(k) or None for k in ("site", "team", "agent", "complaint_type", "flag")},
        "limit": int(limit) if limit else None, "cursor": cursor,
    }


def _tier(item: Mapping[str, Any]) -> int:
    if item.get("reason") == "sample":
        return SAMPLE_TIER
    flags = item.get("flags") or []
    return next((i for i, f in enumerate(TIER_FLAGS) if f in flags), OTHER_FLAG_TIER)


QUEUE_KEYS = ("date", "from", "to", "site", "team", "agent", "complaint_type", "flag", "status", "limit")
SEARCH_KEYS = ("q", "from", "to", "site", "team", "agent", "complaint_type", "flag", "item_missed", "limit")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, user: OptionalUser, next: str = "/") -> Response:
    safe = next if next.startswith("/") and not next.startswith(("//", "/\\")) else "/"  # never off-site
    if user is not None:
        return RedirectResponse(safe, status_code=303)
    return _render(request, "login.html", "login", None, next=safe)


@router.get("/")
def home(user: PageUser) -> Response:
    return RedirectResponse("/search" if user.role == "agent" else "/queue", status_code=303)


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, s: SessionDep, user: PageUser) -> HTMLResponse:
    f = _query(request, QUEUE_KEYS)
    cursor = request.query_params.get("cursor") or None
    error = None
    try:
        page = service.queue(s, user, QueueFilters(**_list_filters(f, cursor), status=f.get("status")))
    except service.Invalid as e:
        page, error = {"items": [], "next_cursor": None}, str(e)
    items = [{**it, "tier": _tier(it)} for it in page["items"]]
    nxt = page.get("next_cursor")
    return _render(request, "queue.html", "queue", user, f=f, items=items, cursor=cursor, error=error,
                   can_review=user.may_review, first_url="/queue?" + urlencode(f),
                   next_url=("/queue?" + urlencode({**f, "cursor": nxt})) if nxt else None)


@router.get("/conversations/{conv_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conv_id: str, s: SessionDep, user: PageUser, inbox: InboxDep,
                      settings: SettingsDep) -> HTMLResponse:
    try:
        conv = service.conversation(s, user, conv_id)
        audit = service.audit(s, user, conv_id)
    except service.NotFound:
        return _render(request, "not_found.html", "", user, status_code=404)
    appeals = list(conv.get("appeals") or [])
    open_items = {a["item"] for a in appeals if a.get("status") == "open"}
    card = _card(settings)
    rows = scorecard_rows(conv, open_items, card)
    own = user.role == "agent" and conv.get("agent_id") == user.agent_id
    return _render(
        request, "conversation.html", "conversation", user,
        conv=conv, review=conv.get("review") or {}, rows=rows, rows_by_item={r["item"]: r for r in rows},
        turns=transcript_turns(conv, rows, inbox), appeals=appeals, audit=audit,
        can_review=user.may_review and bool(rows), can_appeal=own and bool(rows),
        appeal_open=own and _appeal_window_open(conv, settings.review.appeal_window_days), can_rule=user.may_rule,
        low_confidence=card.low_confidence_below,
    )


def _appeal_window_open(conv: Mapping[str, Any], days: int) -> bool:
    """Whether the agent may still appeal (the API decides; this only hides a button that would fail)."""
    try:
        day = dt.date.fromisoformat(str(conv.get("date")))
    except ValueError:
        return True
    return dt.date.today() <= day + dt.timedelta(days=days)


@router.get("/appeals", response_class=HTMLResponse)
def appeals_page(request: Request, s: SessionDep, user: PageUser, status: str | None = None) -> HTMLResponse:
    # a supervisor comes here to rule: the open ones first; an agent wants to see all of theirs
    chosen = ("" if user.role == "agent" else "open") if status is None else status
    error = None
    try:
        appeals = service.appeals(s, user, chosen or None, limit=MAX_LIMIT)["items"]
    except service.Invalid as e:
        appeals, error = [], str(e)
    meta = {a["item"]: {**item_meta(a["item"]), "item": a["item"], "value": a.get("value")} for a in appeals}
    return _render(request, "appeals.html", "appeals", user, appeals=appeals, status=chosen, error=error,
                   item_meta=meta, can_rule=user.may_rule)


@router.get("/agreement", response_class=HTMLResponse)
def agreement_page(request: Request, s: SessionDep, user: PageUser) -> HTMLResponse:
    f = _query(request, ("from", "to", "team"))
    if "from" not in f and "to" not in f:  # the service's default period, shown in the form
        today = dt.date.today()
        f = {**f, "from": (today - dt.timedelta(days=29)).isoformat(), "to": today.isoformat()}
    error = None
    try:
        rows = service.agreement(s, user, _date(f, "from"), _date(f, "to"), f.get("team"))
    except service.Forbidden:
        return _render(request, "not_found.html", "", user, status_code=404)
    except service.Invalid as e:
        rows, error = [], str(e)
    return _render(request, "agreement.html", "agreement", user, f=f, rows=rows, error=error)


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, s: SessionDep, user: PageUser) -> HTMLResponse:
    f = _query(request, SEARCH_KEYS)
    cursor = request.query_params.get("cursor") or None
    q = f.get("q", "")
    error = None
    try:
        page = service.search(s, user, q, SearchFilters(**_list_filters(f, cursor),
                                                         item_missed=f.get("item_missed")))
    except service.Invalid as e:
        page, error = {"items": [], "next_cursor": None, "words": []}, str(e)
    items = [{**it, "tier": _tier(it)} for it in page["items"]]
    nxt = page.get("next_cursor")
    return _render(request, "search.html", "search", user, f=f, items=items, terms=page.get("words", []),
                   error=error, next_url=("/search?" + urlencode({**f, "cursor": nxt})) if nxt else None)
