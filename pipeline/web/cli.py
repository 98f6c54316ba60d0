"""The workbench's commands: ``zhijian users add``, ``zhijian web`` and ``zhijian agreement``.
``pipeline.cli`` calls ``register(app)`` to add them."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import get_settings
from pipeline.errors import ConfigError
from pipeline.schema import ROLES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# The store, SQLAlchemy's ORM and the web stack are imported inside the commands: every `zhijian` command
# loads this module, and `zhijian report agent` must answer in under 2 s (issue 9).

DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]
_err = Console(stderr=True)


@contextmanager
def _session(db: str | None) -> Iterator[Session]:
    from pipeline.store import Store

    settings = get_settings()
    store = Store(db or settings.database_url, settings)
    try:
        with store._session() as s:
            s.info["store"] = store
            yield s
    finally:
        store.close()


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def users_add(
    login: Annotated[str, typer.Argument(help="the sign-in name")],
    role: Annotated[str, typer.Option("--role", help=f"one of {', '.join(ROLES)}")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="an agent's own id (role agent)")] = None,
    team: Annotated[list[str] | None, typer.Option("--team", help="a team they see (repeat; none = all)")] = None,
    db: DbOption = None,
) -> None:
    """Create a workbench account (or reset an existing one's password, role and teams)."""
    from sqlalchemy.exc import IntegrityError

    from pipeline.store import review as repo
    from pipeline.web.auth import hash_password

    if role not in ROLES:
        raise _fail(f"[E081] user {login!r}: role must be one of {', '.join(ROLES)}")
    if not password_stdin:
        raise _fail(f"[E081] user {login!r}: pass the password on stdin with --password-stdin "
                    "(never on the command line, where ps and the shell history see it)")
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise _fail(f"[E081] user {login!r}: the password must have at least 8 characters")
    with _session(db) as s:
        try:
            user = repo.add_user(s, login, hash_password(password), role, agent_id=agent_id, teams=team or [])
            s.commit()
        except (ValueError, IntegrityError) as e:
            raise _fail(f"[E081] user {login!r}: {e}") from None
    teams = ", ".join(user.teams) or "all teams"
    typer.echo(f"user {user.login}: {user.role}" + (f", agent {user.agent_id}" if user.agent_id else "")
               + f" ({teams})")


def users_demo(db: DbOption = None) -> None:
    """Demo accounts, one per role (the agent is the store's first agent), each with a fresh random
    password, printed once: for trying the workbench on the demo store, never for production."""
    import secrets

    from sqlalchemy import select

    from pipeline.store import review as repo
    from pipeline.store.models import ConversationRow
    from pipeline.web.auth import hash_password

    with _session(db) as s:
        agent = s.scalars(select(ConversationRow.agent_id).where(ConversationRow.status == "ok")
                          .order_by(ConversationRow.agent_id).limit(1)).first()
        lines = []
        for role in ROLES:
            if role == "agent" and agent is None:
                continue
            login, password = f"demo-{role}", secrets.token_urlsafe(9)
            repo.add_user(s, login, hash_password(password), role, agent_id=agent if role == "agent" else None)
            who = f"{role}, agent {agent}" if role == "agent" else role
            lines.append(f"  {login:<16} {password}   ({who})")
        s.commit()
    typer.echo("demo accounts (sign in at http://127.0.0.1:8000/login):")
    typer.echo("\n".join(lines))


def users_list(db: DbOption = None) -> None:
    """The workbench accounts."""
    from pipeline.store import review as repo

    with _session(db) as s:
        for u in repo.list_users(s):
            typer.echo("\t".join([u.login, u.role, u.agent_id or "-", ",".join(u.teams) or "*"]))


def web(
    db: DbOption = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    inbox: Annotated[Path | None, typer.Option("--inbox", help="where the recordings are (to play them)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="server processes (default 1); one Python "
                                         "process serves requests one CPU core's worth at a time, so give about "
                                         "one per core the machine can spare")] = 1,
) -> None:
    """Serve the review workbench (pages and the review API)."""
    import os
    import secrets

    import uvicorn

    from pipeline.web.app import ENV_DB_URL, ENV_INBOX, create_app

    settings = get_settings()
    try:
        # built here even with workers: the store is migrated once, and a bad setting fails before any starts
        app = create_app(settings, db or settings.database_url, inbox)
    except ConfigError as e:
        raise _fail(str(e)) from None
    _err.print(f"质检 workbench on http://{host}:{port}/  (API: /api, docs: /api/docs)"
               + (f", {workers} workers" if workers > 1 else ""))
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True)
        return
    app.state.store.close()
    os.environ[ENV_DB_URL] = db or settings.database_url
    if inbox is not None:
        os.environ[ENV_INBOX] = str(inbox)
    if settings.web.secret_key is None or not settings.web.secret_key.get_secret_value():
        # development without a key: one random key for all workers, or a session made by one worker
        # would be unknown to the next (production never gets here: create_app refused to start)
        os.environ["ZHIJIAN_WEB__SECRET_KEY"] = secrets.token_urlsafe(48)
    uvicorn.run("pipeline.web.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="info", proxy_headers=True)


def agreement(
    from_: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD")],
    team: Annotated[str | None, typer.Option("--team", help="only this team's conversations")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table")] = False,
    db: DbOption = None,
) -> None:
    """Machine vs reviewers, per item: n, raw agreement and Cohen's kappa over the reviews of the period."""
    from pipeline.store.review import User
    from pipeline.web import service

    try:
        first, last = dt.date.fromisoformat(from_), dt.date.fromisoformat(to)
    except ValueError as e:
        raise _fail(f"--from/--to: {e}") from None
    everyone = User(id=0, login="cli", role="admin")
    with _session(db) as s:
        try:
            rows = service.agreement(s, everyone, first, last, team)
        except service.Invalid as e:
            raise _fail(str(e)) from None
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"machine vs reviewers, {first} – {last}" + (f", {team}" if team else ""))
    for col in ("item", "n", "agreement", "kappa"):
        table.add_column(col, justify="left" if col == "item" else "right")
    for row in rows:
        table.add_row(row["item"], str(row["n"]),
                      "-" if row["agreement"] is None else f"{row['agreement']:.3f}",
                      "-" if row["kappa"] is None else f"{row['kappa']:.3f}")
    Console(width=max(80, Console().width)).print(table)


def register(app: typer.Typer) -> None:
    """Add ``users``, ``web`` and ``agreement`` to the ``zhijian`` command."""
    users = typer.Typer(help="Workbench accounts.", no_args_is_help=True)
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("demo")(users_demo)
    app.add_typer(users, name="users")
    app.command("web")(web)
    app.command("agreement")(agreement)
