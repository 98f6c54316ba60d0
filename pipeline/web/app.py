"""The workbench's FastAPI application: ``create_app(settings, db_url, inbox)``.

One app serves the API (``/api``, ``api.py``) and, when present, the pages (``pages.py``, its templates and
``static/``), with one session cookie for both. The secret key is checked here, at start-up, so production
mode never comes up without one.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event, make_url, text

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


def _orjson_reads(store: Store) -> None:
    """PostgreSQL's JSON columns (the record, the findings' values and evidence, flags) parsed by orjson on
    the workbench's connections: a conversation page reads some forty JSON values, json.loads' CPU for them
    is a tenth of its request's. The same values but for integers beyond 64 bits (read as floats): no stored
    value has one."""
    if store.engine.dialect.name != "postgresql":
        return
    import orjson
    from psycopg.types.json import set_json_loads

    @event.listens_for(store.engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        set_json_loads(orjson.loads, dbapi_connection)

    store.engine.dispose()  # the connections the migration left in the pool were made before the hook


_frozen = False


def _warm_segmenter(settings: Settings) -> None:
    from pipeline.text import load_nlp

    try:
        load_nlp(settings.lexicon_path)
    except Exception:  # a broken lexicon shows itself on the first search, with its error
        log.warning("could not preload the segmenter", exc_info=True)
    # What is loaded now (jieba's dictionary, spaCy, the app) lives as long as the process: out of the
    # collector's sight, so a full collection walks only what requests left behind. Otherwise each one
    # walks these 300,000 objects, 290 ms measured, while every request of the process waits. Once per
    # process (a test run makes many apps: the garbage of earlier ones must stay collectable).
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


class SecurityHeaders:
    """Nothing a signed-in user sees belongs in a shared cache, and pages must not be framed: these headers
    on every answer (Cache-Control not on /static/), unless the route set them. A plain ASGI middleware:
    ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware) runs each request through extra tasks and
    memory streams, a few ms of CPU per request under load."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [] if static else [(b"cache-control", b"no-store")]
                extra += [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                          (b"referrer-policy", b"same-origin")]
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, db_url: str | None = None, inbox: Path | str | None = None) -> FastAPI:
    """The app over the store at ``db_url`` (default: the settings' database), serving recordings from
    ``inbox``. Raises ``ConfigError`` for a missing or weak secret in production or a missing inbox."""
    keys = auth.Keys(auth.secret_key(settings.web))
    inbox_path = Path(inbox).expanduser() if inbox is not None else None
    if inbox_path is not None and not inbox_path.is_dir():
        raise ConfigError("E082", inbox_path)
    store = Store(db_url or settings.database_url, settings)
    _sqlite_wal(store)
    _orjson_reads(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # jieba and spaCy take seconds to load: do it now, beside serving, not in the first search
        threading.Thread(target=_warm_segmenter, args=(settings,), daemon=True, name="zhijian-warm").start()
        yield
        store.close()

    app = FastAPI(title="Zhijian 质检 review workbench", version="1", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.settings, app.state.store, app.state.inbox, app.state.keys = settings, store, inbox_path, keys

    @app.exception_handler(LoginRequired)
    async def _to_sign_in(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    app.add_middleware(SecurityHeaders)

    app.include_router(api.router)
    # the trainers' and operations' reports (培训报告 / 运营看板, pipeline/reports), same session and roles
    from pipeline.reports.pages import router as reports_router

    app.include_router(reports_router)

    @app.get("/api/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    if importlib.util.find_spec("pipeline.web.pages") is not None:
        pages = importlib.import_module("pipeline.web.pages")
        app.include_router(pages.router)
    if (HERE / "static").is_dir():
        app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


# How ``zhijian web --workers N`` hands its --db and --inbox to the worker processes uvicorn starts: each
# worker imports this module and calls ``app_from_env`` (uvicorn needs an import string to start workers).
ENV_DB_URL = "ZHIJIAN_WEB_DB_URL"
ENV_INBOX = "ZHIJIAN_WEB_INBOX"


def app_from_env() -> FastAPI:
    """The app factory by import string (``pipeline.web.app:app_from_env``, uvicorn ``factory=True``): the
    settings from the environment as always, the database from ``ZHIJIAN_WEB_DB_URL`` (default: the
    settings'), the recordings from ``ZHIJIAN_WEB_INBOX`` (default: none)."""
    from pipeline.config import get_settings

    settings = get_settings()
    return create_app(settings, os.environ.get(ENV_DB_URL) or settings.database_url,
                      os.environ.get(ENV_INBOX) or None)
