"""The workbench's FastAPI application: ``create_app(settings, db_url, inbox)``.

One app serves the API (``/api``, ``api.py``) and, when present, the pages (``pages.py``, its templates and
``static/``), with one session cookie for both. The secret key is checked here, at start-up, so production
mode never comes up without one.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import make_url, text

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.store import Store
from pipeline.web import api, auth
from pipeline.web.deps import LoginRequired

log = logging.getLogger("zhijian.web")
HERE = Path(__file__).resolve().parent


def _sqlite_wal(store: Store) -> None:
    """SQLite in WAL mode: the workbench's readers then never block a reviewer's write (nor the night's)."""
    url = make_url(str(store.engine.url))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with store.engine.connect() as conn:
            conn.execute(text("PRAGMA journal_mode=WAL"))


def create_app(settings: Settings, db_url: str | None = None, inbox: Path | str | None = None) -> FastAPI:
    """The app over the store at ``db_url`` (default: the settings' database), serving recordings from
    ``inbox``. Raises ``ConfigError`` for a missing or weak secret in production or a missing inbox."""
    keys = auth.Keys(auth.secret_key(settings.web))
    inbox_path = Path(inbox).expanduser() if inbox is not None else None
    if inbox_path is not None and not inbox_path.is_dir():
        raise ConfigError("E082", inbox_path)
    store = Store(db_url or settings.database_url, settings)
    _sqlite_wal(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="Zhijian 质检 review workbench", version="1", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.settings, app.state.store, app.state.inbox, app.state.keys = settings, store, inbox_path, keys

    @app.exception_handler(LoginRequired)
    async def _to_sign_in(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.middleware("http")
    async def _no_store(request: Request, call_next: Any) -> Response:
        # nothing a signed-in user sees belongs in a shared cache; and pages must not be framed
        response = await call_next(request)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    app.include_router(api.router)

    @app.get("/api/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    if importlib.util.find_spec("pipeline.web.pages") is not None:
        pages = importlib.import_module("pipeline.web.pages")
        app.include_router(pages.router)
    if (HERE / "static").is_dir():
        app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
