"""The ``/api`` routes of REVIEW_API.md: thin wrappers over ``service`` (which the pages call too). Here only
HTTP lives: parameters, cookies, status codes, the recording's byte ranges."""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.web import auth, service
from pipeline.web.deps import AuthDep, CurrentUser, InboxDep, SessionDep, WriteUser
from pipeline.web.service import Conflict, Forbidden, Invalid, NotFound, SearchFilters, Stale

router = APIRouter(prefix="/api")
T = TypeVar("T")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".amr")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def error_response(e: Exception) -> JSONResponse:
    """The status and body of a service error (the pages' fetch calls read the same)."""
    if isinstance(e, Stale):
        return JSONResponse(e.current, status_code=409)
    if isinstance(e, NotFound):
        return JSONResponse({"detail": "not found"}, status_code=404)
    if isinstance(e, Forbidden):
        return JSONResponse({"detail": str(e) or "forbidden"}, status_code=403)
    if isinstance(e, Invalid):
        return JSONResponse({"detail": str(e), "item": e.item}, status_code=422)
    if isinstance(e, Conflict):
        return JSONResponse({"detail": str(e)}, status_code=409)
    raise e


def _json_default(value: Any) -> Any:
    """What ``jsonable_encoder`` would make of the few non-JSON values a service answer may hold."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):  # a float subclass (numpy's): orjson writes only float itself
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FastJSONResponse(JSONResponse):
    """A JSON answer rendered by orjson alone. A route returning a dict has FastAPI walk it with
    ``jsonable_encoder`` first: 8.3 ms for a 100-item queue page against 0.8 ms for ``json.dumps``
    (bench/web_load.py), and orjson takes a tenth of that again. The service functions already return
    plain JSON values, so the walk buys nothing. The same text as ``json.dumps(ensure_ascii=False)`` but
    for NaN or infinity (null here; no answer holds one), and keys that are not strings are written as
    strings as ``json`` does."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def call(fn: Callable[..., T], *args: Any) -> T | JSONResponse:
    try:
        return fn(*args)
    except (Stale, NotFound, Forbidden, Invalid, Conflict) as e:
        return error_response(e)


def answer(fn: Callable[..., Any], *args: Any, status_code: int = 200) -> Response:
    """``fn(*args)`` as the route's response: its JSON (``FastJSONResponse``), or the error it raised. The
    request's session (the first argument) is closed here, in the route's thread, once the answer is
    rendered: ``deps.get_session`` then has nothing left to do on the event loop."""
    try:
        result = call(fn, *args)
        return result if isinstance(result, Response) else FastJSONResponse(result, status_code=status_code)
    finally:
        if args and isinstance(args[0], Session):
            args[0].close()


# -- sessions ------------------------------------------------------------------------------------------

@router.post("/login")
def login(request: Request, s: SessionDep, body: Annotated[dict[str, Any], Body()]) -> Response:
    settings: Settings = request.app.state.settings
    name, password = body.get("login"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name:
        return JSONResponse({"detail": "give login and password"}, status_code=422)
    try:
        signed = auth.sign_in(s, settings.web, request.app.state.keys, name, password)
    except auth.RateLimited as e:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})
    if signed is None:
        return JSONResponse({"detail": "wrong login or password"}, status_code=401)
    response = JSONResponse({"login": signed.user.login, "role": signed.user.role,
                             "csrf_token": signed.csrf_token})
    web = settings.web
    response.set_cookie(web.cookie_name, signed.token, max_age=int(web.session_hours * 3600), path="/",
                        httponly=True, samesite="lax",
                        secure=web.production if web.cookie_secure is None else web.cookie_secure)
    return response


@router.post("/logout")
def logout(request: Request, s: SessionDep, a: AuthDep, _: WriteUser) -> Response:
    auth.sign_out(s, a.session_id)
    response = Response(status_code=204)
    response.delete_cookie(request.app.state.settings.web.cookie_name, path="/")
    return response


@router.get("/me")
def me(a: AuthDep) -> Response:
    u = a.user
    return FastJSONResponse({"login": u.login, "role": u.role, "agent_id": u.agent_id, "teams": list(u.teams),
                             "csrf_token": a.csrf_token})


# -- queue ---------------------------------------------------------------------------------------------

Day = Annotated[dt.date | None, Query()]
From = Annotated[dt.date | None, Query(alias="from")]
Text = Annotated[str | None, Query()]


@router.get("/queue", response_model=None)
def queue(s: SessionDep, user: CurrentUser, date: Day = None, from_: From = None, to: Day = None,
          site: Text = None, team: Text = None, agent: Text = None, complaint_type: Text = None,
          flag: Text = None, status: Text = None, limit: Annotated[int | None, Query()] = None,
          cursor: Text = None) -> Response:
    filters = service.QueueFilters(date=date, from_=from_, to=to, site=site, team=team, agent=agent,
                                   complaint_type=complaint_type, flag=flag, status=status, limit=limit,
                                   cursor=cursor)
    return answer(service.queue, s, user, filters)


@router.post("/queue/next", response_model=None)
def take_next(s: SessionDep, user: WriteUser) -> Response:
    item = call(service.take_next, s, user)
    if isinstance(item, Response):
        return item
    return Response(status_code=204) if item is None else FastJSONResponse(item)


# -- conversations -------------------------------------------------------------------------------------

@router.get("/conversations", response_model=None)
def search(s: SessionDep, user: CurrentUser, q: str = "", from_: From = None, to: Day = None,
           site: Text = None, team: Text = None, agent: Text = None, complaint_type: Text = None,
           flag: Text = None, item_missed: Text = None, limit: Annotated[int | None, Query()] = None,
           cursor: Text = None) -> Response:
    filters = SearchFilters(from_=from_, to=to, site=site, team=team, agent=agent, complaint_type=complaint_type,
                            flag=flag, item_missed=item_missed, limit=limit, cursor=cursor)
    return answer(service.search, s, user, q, filters)


@router.get("/conversations/{conv_id}", response_model=None)
def conversation(s: SessionDep, user: CurrentUser, conv_id: str) -> Response:
    return answer(service.conversation, s, user, conv_id)


def audio_file(inbox: Path | None, date: dt.date, conv_id: str) -> Path | None:
    """The recording of a call: ``<inbox>/<date>/calls/<id>.<audio suffix>``, and only if it really lies
    under the inbox (a symlink out of it, or an id with a path in it, finds nothing)."""
    if inbox is None or not _SAFE_ID.match(conv_id):
        return None
    root = inbox.resolve()
    calls = root / date.isoformat() / "calls"
    for suffix in AUDIO_SUFFIXES:
        candidate = calls / f"{conv_id}{suffix}"
        if candidate.is_file():
            real = candidate.resolve()
            if real.is_relative_to(root) and real.is_file():
                return real
    return None


@router.get("/conversations/{conv_id}/audio", response_model=None)
def audio(s: SessionDep, user: CurrentUser, inbox: InboxDep, conv_id: str) -> Response:
    try:
        row = service.visible_conversation(s, user, conv_id)
    except NotFound as e:
        return error_response(e)
    path = audio_file(inbox, row.date, row.id) if row.channel == "call" else None
    if path is None:
        return JSONResponse({"detail": "no recording for this conversation"}, status_code=404)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # Starlette answers Range requests itself (206, Content-Range; 416 when unsatisfiable).
    return FileResponse(path, media_type=media, headers={"Accept-Ranges": "bytes", "Cache-Control": "private"})


@router.post("/conversations/{conv_id}/review", response_model=None)
def review(s: SessionDep, user: WriteUser, conv_id: str,
           body: Annotated[dict[str, Any], Body()]) -> Response:
    return answer(service.review, s, user, conv_id, body.get("version"), body.get("decisions"))


@router.post("/conversations/{conv_id}/assign", response_model=None)
def assign(s: SessionDep, user: WriteUser, conv_id: str,
           body: Annotated[dict[str, Any], Body()]) -> Response:
    return answer(service.assign, s, user, conv_id, body.get("to"))


@router.post("/conversations/{conv_id}/appeals", response_model=None)
def file_appeal(s: SessionDep, user: WriteUser, conv_id: str,
                body: Annotated[dict[str, Any], Body()]) -> Response:
    return answer(service.file_appeal, s, user, conv_id, body.get("item"), body.get("reason"), status_code=201)


@router.get("/conversations/{conv_id}/audit", response_model=None)
def audit(s: SessionDep, user: CurrentUser, conv_id: str) -> Response:
    return answer(service.audit, s, user, conv_id)


# -- appeals, agreement --------------------------------------------------------------------------------

@router.get("/appeals", response_model=None)
def appeals(s: SessionDep, user: CurrentUser, status: Text = None, limit: Annotated[int | None, Query()] = None,
            cursor: Text = None) -> Response:
    return answer(service.appeals, s, user, status, limit, cursor)


@router.post("/appeals/{appeal_id}/ruling", response_model=None)
def rule(s: SessionDep, user: WriteUser, appeal_id: int,
         body: Annotated[dict[str, Any], Body()]) -> Response:
    return answer(service.rule_appeal, s, user, appeal_id, body.get("decision"), body.get("value"),
                  body.get("reason"))


@router.get("/agreement", response_model=None)
def agreement(s: SessionDep, user: CurrentUser, from_: From = None, to: Day = None,
              team: Text = None) -> Response:
    return answer(service.agreement, s, user, from_, to, team)
