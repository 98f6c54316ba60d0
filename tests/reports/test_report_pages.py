"""The trainer pages in the workbench: the same reports, to the users the roles allow, 404 to the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import END, START
from fastapi.testclient import TestClient

from pipeline.config import Settings
from pipeline.store import Store

PASSWORD = "report-pages-password-1"
Q = f"from={START}&to={END}"
USERS = {  # login -> role, agent id, teams
    "boss": ("admin", None, ()),
    "trainer": ("trainer", None, ("海棠湾夜班组",)),
    "a104": ("agent", "A104", ()),
}


@pytest.fixture(scope="module")
def app_client(store: Store, settings: Settings) -> Iterator[dict[str, TestClient]]:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the pages read through the same queries on either database: once is enough")
    from pipeline.reports.pages import router
    from pipeline.store import review as repo
    from pipeline.web.app import create_app
    from pipeline.web.auth import hash_password

    url = store.engine.url.render_as_string(hide_password=False)
    hashed = hash_password(PASSWORD)
    with store._session.begin() as s:
        for login, (role, agent_id, teams) in USERS.items():
            repo.add_user(s, login, hashed, role, agent_id=agent_id, teams=teams)
    app = create_app(settings.model_copy(update={"web": settings.web.model_copy(update={"secret_key": None})}), url)
    if not any(getattr(r, "path", "").startswith("/reports") for r in app.routes):
        app.include_router(router)
    clients = {}
    with TestClient(app) as anonymous:
        clients["anonymous"] = anonymous
        for login in USERS:
            c = TestClient(app)
            assert c.post("/api/login", json={"login": login, "password": PASSWORD}).status_code == 200
            clients[login] = c
        yield clients
        for login in USERS:
            clients[login].close()


def test_pages_need_sign_in(app_client: dict[str, TestClient]) -> None:
    r = app_client["anonymous"].get(f"/reports/agent/A104?{Q}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_admin_sees_every_report(app_client: dict[str, TestClient]) -> None:
    c = app_client["boss"]
    index = c.get(f"/reports?{Q}")
    assert index.status_code == 200 and "周强" in index.text and "海棠湾" in index.text
    page = c.get(f"/reports/agent/A104?{Q}")
    assert page.status_code == 200 and "周强" in page.text and "<svg" in page.text and "沟通技巧：复述确认" in page.text
    assert c.get(f"/reports/site/海棠湾?{Q}").status_code == 200
    team = c.get(f"/reports/team/海棠湾夜班组?{Q}")
    assert team.status_code == 200 and "吴婷" in team.text
    assert "投诉激增" in c.get(f"/reports/signals?date={END}").text
    pdf = c.get(f"/reports/agent/A104?{Q}&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert c.get(f"/reports/agent/A999?{Q}").status_code == 404


def test_a_trainer_sees_their_teams_only(app_client: dict[str, TestClient]) -> None:
    c = app_client["trainer"]
    assert c.get(f"/reports/team/海棠湾夜班组?{Q}").status_code == 200
    assert c.get(f"/reports/agent/A206?{Q}").status_code == 200  # 吴婷 is on the trainer's team
    assert c.get(f"/reports/agent/A104?{Q}").status_code == 404  # 周强 is not
    assert c.get(f"/reports/team/阳光花园客服组?{Q}").status_code == 404
    assert c.get(f"/reports/site/海棠湾?{Q}").status_code == 404  # the site has another team too
    index = c.get(f"/reports?{Q}").text
    assert "吴婷" in index and "周强" not in index


def test_an_agent_sees_their_own_report(app_client: dict[str, TestClient]) -> None:
    c = app_client["a104"]
    assert c.get(f"/reports/agent/A104?{Q}").status_code == 200
    assert c.get(f"/reports/agent/A101?{Q}").status_code == 404
    assert c.get(f"/reports/team/阳光花园客服组?{Q}").status_code == 404
    assert c.get(f"/reports/signals?date={END}").status_code == 404
