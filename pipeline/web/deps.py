"""FastAPI dependencies, as ``Annotated`` types a route simply declares:

- ``SessionDep``: a SQLAlchemy session on the app's store (closed after the request; writes commit
  themselves in ``service``);
- ``CurrentUser``: the signed-in user, else 401 (API routes);
- ``WriteUser``: the same, and the request's ``X-CSRF-Token`` must be the session's, else 403 — every
  POST/PUT/PATCH/DELETE route but login takes this one;
- ``PageUser``: the signed-in user, else a redirect to ``/login?next=…`` (page routes);
- ``AuthDep``: user, CSRF token and session id together (logout, the pages' templates).

Each of them leaves the session's CSRF token on ``request.state.csrf_token`` (and the user on
``request.state.user``) so a template can put it in a ``<meta name="csrf-token">``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.store import Store
from pipeline.store.review import User
from pipeline.web import auth

# Dependencies are ``async def``: FastAPI runs a plain ``def`` one in the thread pool, a thread hop per
# dependency per request (and two for a generator). Those that query the database hop into the pool
# themselves, once: the event loop never waits on the database.

async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_inbox(request: Request) -> Path | None:
    inbox: Path | None = request.app.state.inbox
    return inbox


async def get_session(store: Annotated[Store, Depends(get_store)]) -> AsyncIterator[Session]:
    """A session for the request. Opening one does no I/O (it connects on its first query), so this runs on
    the event loop, not in a thread of its own; the API routes close it in their own thread when done
    (``api.answer``), and only a session still holding a connection is closed here in a thread."""
    s = store._session()
    s.info["store"] = store
    try:
        yield s
    finally:
        await close_session(s)


async def close_session(s: Session) -> None:
    if s.get_transaction() is None:  # never connected, or already closed: nothing to roll back
        s.close()
    else:
        await run_in_threadpool(s.close)


SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
InboxDep = Annotated[Path | None, Depends(get_inbox)]


@dataclass(frozen=True)
class Auth:
    user: User
    csrf_token: str
    session_id: str


class LoginRequired(Exception):
    """A page asked for without a session: the app answers with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url

    @property
    def location(self) -> str:
        return f"/login?next={quote(self.next_url, safe='/')}"


def _auth(request: Request, s: Session) -> Auth | None:
    settings: Settings = request.app.state.settings
    found = auth.session_of(s, request.app.state.keys, request.cookies.get(settings.web.cookie_name))
    if found is None:
        return None
    user, csrf, session_id = found
    request.state.user, request.state.csrf_token = user, csrf
    return Auth(user=user, csrf_token=csrf, session_id=session_id)


async def current_auth(request: Request, s: SessionDep) -> Auth:
    # the session lookup in the thread pool; one hop for session and user together (a plain ``def``
    # dependency on a plain ``def`` session dependency were two, and the session's teardown a third)
    found = await run_in_threadpool(_auth, request, s)
    if found is None:
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Cookie"})
    return found


AuthDep = Annotated[Auth, Depends(current_auth)]


async def current_user(a: AuthDep) -> User:
    return a.user


async def write_user(request: Request, a: AuthDep) -> User:
    if not auth.csrf_ok(a.csrf_token, request.headers.get(auth.CSRF_HEADER)):
        raise HTTPException(403, f"missing or wrong {auth.CSRF_HEADER} header")
    return a.user


async def page_user(request: Request, s: SessionDep) -> User:
    found = await run_in_threadpool(_auth, request, s)
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return found.user


async def optional_user(request: Request, s: SessionDep) -> User | None:
    """The signed-in user or None (the sign-in page itself)."""
    found = await run_in_threadpool(_auth, request, s)
    return found.user if found else None


CurrentUser = Annotated[User, Depends(current_user)]
WriteUser = Annotated[User, Depends(write_user)]
PageUser = Annotated[User, Depends(page_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
# Other names for the same (the pages were first written against these).
DbSession = SessionDep
CurrentPageUser = PageUser
