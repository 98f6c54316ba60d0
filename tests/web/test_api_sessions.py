"""Sessions (REVIEW_API.md "Sessions"): sign-in, the cookie, 401 without a session, CSRF on every change,
the login rate limit; `zhijian users add`; the secret key's start-up check."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import CALL_ID, LEAK_ID, PASSWORD, Workbench, make_settings
from sqlalchemy import update
from typer.testing import CliRunner

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.store.models import LoginFailureRow, SessionRow

# every /api route but login, as (method, path)
ROUTES = [
    ("POST", "/api/logout"), ("GET", "/api/me"), ("GET", "/api/queue"), ("POST", "/api/queue/next"),
    ("GET", "/api/conversations?q=漏水"), ("GET", f"/api/conversations/{LEAK_ID}"),
    ("GET", f"/api/conversations/{CALL_ID}/audio"), ("POST", f"/api/conversations/{LEAK_ID}/review"),
    ("POST", f"/api/conversations/{LEAK_ID}/appeals"), ("GET", f"/api/conversations/{LEAK_ID}/audit"),
    ("POST", f"/api/conversations/{LEAK_ID}/assign"),
    ("GET", "/api/appeals?status=open"), ("POST", "/api/appeals/1/ruling"), ("GET", "/api/agreement"),
]
WRITES = [(m, p) for m, p in ROUTES if m == "POST"]


def test_sign_in_returns_role_and_token_and_sets_a_safe_cookie(workbench: Workbench) -> None:
    c = workbench.client()
    r = c.post("/api/login", json={"login": "qa1", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["login"] == "qa1" and body["role"] == "reviewer" and len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("zhijian_session=") and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert PASSWORD not in cookie
    me = c.get("/api/me").json()
    assert me == {"login": "qa1", "role": "reviewer", "agent_id": None, "teams": ["海棠湾客服组"],
                  "csrf_token": body["csrf_token"]}


def test_the_database_keeps_no_usable_session_token(workbench: Workbench) -> None:
    c = workbench.client()
    c.post("/api/login", json={"login": "qa", "password": PASSWORD})
    token = c.cookies.get("zhijian_session")
    with workbench.store._session() as s:
        ids = [row.id for row in s.query(SessionRow)]
    assert ids and token not in ids  # only a keyed hash of it


def test_wrong_login_and_wrong_password_get_the_same_401(workbench: Workbench) -> None:
    c = workbench.client()
    wrong_password = c.post("/api/login", json={"login": "qa", "password": "nope"})
    no_such_user = c.post("/api/login", json={"login": "nobody", "password": "nope"})
    assert wrong_password.status_code == no_such_user.status_code == 401
    assert wrong_password.json() == no_such_user.json()
    assert "set-cookie" not in wrong_password.headers


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_session_is_401(workbench: Workbench, method: str, path: str) -> None:
    r = workbench.client().request(method, path, json={})
    assert r.status_code == 401


def test_a_forged_or_ended_session_is_401(workbench: Workbench) -> None:
    c = workbench.client()
    c.cookies.set("zhijian_session", "forged-token-value")
    assert c.get("/api/queue").status_code == 401
    qa = workbench.client("qa")
    assert qa.get("/api/queue").status_code == 200
    assert qa.post("/api/logout").status_code == 204
    assert qa.get("/api/queue").status_code == 401


def test_an_expired_session_is_401(workbench: Workbench) -> None:
    qa = workbench.client("qa")
    with workbench.store._session.begin() as s:
        s.execute(update(SessionRow).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert qa.get("/api/queue").status_code == 401


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_change_without_the_csrf_token_is_403(workbench: Workbench, method: str, path: str) -> None:
    qa = workbench.client("qa")
    token = qa.headers.pop("X-CSRF-Token")
    try:
        assert qa.request(method, path, json={}).status_code == 403
        qa.headers["X-CSRF-Token"] = "not-the-token"
        assert qa.request(method, path, json={}).status_code == 403
    finally:
        qa.headers["X-CSRF-Token"] = token
    assert qa.get("/api/me").status_code == 200  # still signed in: logout without the token did nothing


def test_the_sixth_wrong_password_is_429_until_the_window_passes(workbench: Workbench) -> None:
    c = workbench.client()
    for _ in range(5):
        assert c.post("/api/login", json={"login": "qa", "password": "wrong"}).status_code == 401
    sixth = c.post("/api/login", json={"login": "qa", "password": "wrong"})
    assert sixth.status_code == 429 and int(sixth.headers["Retry-After"]) > 0
    # even the right password waits for the window
    assert c.post("/api/login", json={"login": "qa", "password": PASSWORD}).status_code == 429
    # other logins are not affected
    assert c.post("/api/login", json={"login": "qa1", "password": PASSWORD}).status_code == 200
    with workbench.store._session.begin() as s:  # 16 minutes pass
        s.execute(update(LoginFailureRow).values(at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)))
    assert c.post("/api/login", json={"login": "qa", "password": PASSWORD}).status_code == 200


def test_a_success_clears_earlier_failures(workbench: Workbench) -> None:
    c = workbench.client()
    for _ in range(4):
        c.post("/api/login", json={"login": "qa", "password": "wrong"})
    assert c.post("/api/login", json={"login": "qa", "password": PASSWORD}).status_code == 200
    for _ in range(5):
        assert c.post("/api/login", json={"login": "qa", "password": "wrong"}).status_code == 401


def test_a_page_without_a_session_redirects_to_sign_in(workbench: Workbench) -> None:
    r = workbench.client().get("/queue?team=x", follow_redirects=False)
    if r.status_code == 404:
        pytest.skip("the pages are not there")
    assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("/login?next=/queue")


def test_users_add_reads_the_password_from_stdin(workbench: Workbench) -> None:
    from pipeline.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["users", "add", "newqa", "--role", "reviewer", "--team", "海棠湾客服组",
                              "--password-stdin", "--db", workbench.db_url], input="a long password\n")
    assert out.exit_code == 0, out.output
    assert "newqa: reviewer" in out.output and "a long password" not in out.output
    c = workbench.client()
    assert c.post("/api/login", json={"login": "newqa", "password": "a long password"}).status_code == 200
    bad = runner.invoke(app, ["users", "add", "x", "--role", "boss", "--password-stdin", "--db", workbench.db_url],
                        input="whatever123\n")
    assert bad.exit_code == 2 and "E081" in bad.output
    agent = runner.invoke(app, ["users", "add", "x", "--role", "agent", "--password-stdin", "--db",
                                workbench.db_url], input="whatever123\n")
    assert agent.exit_code == 2 and "agent-id" in agent.output


@pytest.mark.parametrize(("key", "ok"), [(None, False), ("short", False), ("a" * 40, False),
                                         ("k3y-" + "x9Q!rT7$mZ2@" * 3, True)])
def test_production_needs_a_strong_secret_key(settings: Settings, tmp_path: object, key: str | None,
                                              ok: bool) -> None:
    from pydantic import SecretStr

    from pipeline.web.app import create_app

    s = make_settings(settings, production=True)
    s = s.model_copy(update={"web": s.web.model_copy(update={"secret_key": SecretStr(key) if key else None})})
    url = f"sqlite:///{tmp_path}/prod.db"
    if ok:
        app = create_app(s, url, None)
        app.state.store.close()
    else:
        with pytest.raises(ConfigError, match="E080"):
            create_app(s, url, None)


def test_users_demo_creates_one_account_per_role(workbench: Workbench) -> None:
    from pipeline.cli import app

    out = CliRunner().invoke(app, ["users", "demo", "--db", workbench.db_url])
    assert out.exit_code == 0, out.output
    accounts = dict(line.split()[:2] for line in out.stdout.splitlines() if line.startswith("  demo-"))
    assert set(accounts) == {f"demo-{r}" for r in ("admin", "supervisor", "reviewer", "trainer", "agent")}
    c = workbench.client()
    r = c.post("/api/login", json={"login": "demo-agent", "password": accounts["demo-agent"]})
    assert r.status_code == 200 and r.json()["role"] == "agent"
