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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.store import Store
from pipeline.store.review import User
from pipeline.web import auth

# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` one in the thread pool, a
# thread hop per dependency per request (the database ones stay plain: they must not block the event loop).

async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_inbox(request: Request) -> Path | None:
    inbox: Path | None = request.app.state.inbox
    return inbox


def get_session(store: Annotated[Store, Depends(get_store)]) -> Iterator[Session]:
    with store._session() as s:
        s.info["store"] = store
        yield s


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


def current_auth(request: Request, s: SessionDep) -> Auth:
    found = _auth(request, s)
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


def page_user(request: Request, s: SessionDep) -> User:
    found = _auth(request, s)
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return found.user


def optional_user(request: Request, s: SessionDep) -> User | None:
    """The signed-in user or None (the sign-in page itself)."""
    found = _auth(request, s)
    return found.user if found else None


CurrentUser = Annotated[User, Depends(current_user)]
WriteUser = Annotated[User, Depends(write_user)]
PageUser = Annotated[User, Depends(page_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
# Other names for the same (the pages were first written against these).
DbSession = SessionDep
CurrentPageUser = PageUser
