"""Fixtures of the review API tests (tests/web/test_api_*.py): a store filled through the real pipeline (the
Analyser judging chats and a call, Store.save_analysis writing them), accounts for every role, and signed-in
API clients. Every test gets a fresh database of each kind: SQLite, and PostgreSQL in a schema of its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from zhijian_testing import postgres_url

from pipeline.config import ReviewSettings, Settings
from pipeline.schema import Analysis, ConversationMeta, Transcript, Turn

PASSWORD = "correct horse battery"
TODAY = dt.date.today()
OLD = TODAY - dt.timedelta(days=30)  # outside the 7-day appeal window
T1, T2 = "海棠湾客服组", "阳光花园客服组"
LEAK_ID = "W-LEAK"  # the search target: "我家厨房的水管漏水了"
CALL_ID = "C-CALL"  # the one call (with a recording in the inbox)

# (id, agent, team, day, [(role, text), ...])
CHATS: list[tuple[str, str, str, dt.date, list[tuple[str, str]]]] = [
    (LEAK_ID, "A101", T1, TODAY, [("customer", "你好，我家厨房的水管漏水了，楼下都渗水了"),
                                  ("agent", "您好，海棠湾物业客服中心，请问您的房号是多少？"),
                                  ("customer", "3栋2单元1502"),
                                  ("agent", "好的，我跟您确认一下，3栋2单元1502厨房水管漏水，"
                                            "我们30分钟内安排维修师傅上门。"),
                                  ("customer", "好的谢谢"), ("agent", "不客气，还有其他问题吗？祝您生活愉快，再见。")]),
    ("W-RUDE", "A102", T1, TODAY, [("customer", "楼上装修太吵了，天天早上七点就开始砸墙"),
                                   ("agent", "不知道，这不归我们管，你自己找他们去"),
                                   ("customer", "你这什么态度？我要投诉你，打12345"),
                                   ("agent", "爱找谁找谁")]),
    ("W-LIFT", "A201", T2, TODAY, [("customer", "电梯又坏了，这是这个月第三次了"),
                                   ("agent", "您好，阳光花园物业客服，非常抱歉给您带来不便，请问是几栋的电梯？"),
                                   ("customer", "5栋"),
                                   ("agent", "好的，5栋电梯故障，维保单位一小时内到场处理，处理完给您回电。"),
                                   ("agent", "请问还有其他需要吗？感谢您的来电，再见。")]),
    ("W-OLD", "A101", T1, OLD, [("customer", "物业费怎么交？"), ("agent", "公众号里就能交。")]),
    ("W-FEE", "A101", T1, TODAY - dt.timedelta(days=1), [
        ("customer", "这个月物业费怎么多收了五十块？"), ("agent", "您好，我帮您查一下，请问房号是？"),
        ("customer", "2栋1101"), ("agent", "查到了，是公摊电费，明天给您发明细。")]),
    ("W-PARK", "A201", T2, TODAY - dt.timedelta(days=2), [
        ("customer", "地库有车一直占我的车位"), ("agent", "好的，我马上通知保安过去看看。")]),
    ("W-NOISE", "A102", T1, TODAY - dt.timedelta(days=1), [
        ("customer", "晚上广场舞太吵了，孩子没法睡觉"), ("agent", "您好，我们今晚就去劝导，十点前结束。")]),
    ("W-CLEAN", "A201", T2, TODAY, [
        ("customer", "楼道里的垃圾三天没人收了，厨房那边都有味道了"), ("agent", "抱歉，今天下午就安排保洁清理。")]),
]
CALL_TURNS = [("agent", "您好，阳光花园物业客服中心，请问有什么可以帮您？"), ("customer", "我家卫生间漏水了"),
              ("agent", "好的，我们马上安排师傅上门。")]


def _meta(conv_id: str, agent: str, team: str, day: dt.date, channel: str = "chat") -> ConversationMeta:
    started = dt.datetime.combine(day, dt.time(9, 30), dt.timezone(dt.timedelta(hours=8)))
    return ConversationMeta(id=conv_id, channel=channel, agent_id=agent, agent_name=f"坐席{agent}",  # type: ignore[arg-type]
                            team=team, site=team.removesuffix("客服组"), started_at=started,
                            source=f"/inbox/{day}/{channel}s/{conv_id}.json")


@pytest.fixture(scope="session")
def analyses(settings: Settings) -> list[Analysis]:
    """The test day, judged once per session by the real Analyser (learned judge, scorecard)."""
    from pipeline.analysis import Analyser

    analyser = Analyser(settings)
    out = []
    for conv_id, agent, team, day, lines in CHATS:
        turns = [Turn(index=i, role=r, text=t) for i, (r, t) in enumerate(lines)]  # type: ignore[arg-type]
        out.append(analyser(Transcript(meta=_meta(conv_id, agent, team, day), turns=turns), day.isoformat()))
    call_turns = [Turn(index=i, role=r, text=t, start=i * 4.0, end=i * 4.0 + 3.5, confidence=0.9)  # type: ignore[arg-type]
                  for i, (r, t) in enumerate(CALL_TURNS)]
    call = Transcript(meta=_meta(CALL_ID, "A201", T2, TODAY, "call"), turns=call_turns, asr_model="whisper-base")
    out.append(analyser(call, TODAY.isoformat()))
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def web_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workbench.db'}"
    else:
        yield from postgres_url("zj_web")


@pytest.fixture(scope="session")
def password_hash() -> str:
    from pipeline.web.auth import hash_password

    return hash_password(PASSWORD)  # argon2 is slow on purpose: hash once, give every test account this one


# login -> (role, agent_id, teams)
USERS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "admin": ("admin", None, ()),
    "sup": ("supervisor", None, ()),
    "sup2": ("supervisor", None, (T2,)),
    "qa": ("reviewer", None, ()),
    "qa1": ("reviewer", None, (T1,)),
    "qa2": ("reviewer", None, (T2,)),
    "trainer": ("trainer", None, (T1,)),
    "a101": ("agent", "A101", ()),
    "a102": ("agent", "A102", ()),
}


@dataclass
class Workbench:
    """The app over a filled store, and signed-in clients by login."""

    app: Any
    db_url: str
    inbox: Path
    settings: Settings
    clients: dict[str, TestClient] = field(default_factory=dict)

    @property
    def store(self) -> Any:
        return self.app.state.store

    def client(self, login: str | None = None) -> TestClient:
        """A client signed in as ``login`` (its CSRF token sent on every request), or a fresh anonymous one."""
        if login is None:
            return TestClient(self.app)
        if login not in self.clients:
            c = TestClient(self.app)
            r = c.post("/api/login", json={"login": login, "password": PASSWORD})
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            self.clients[login] = c
        return self.clients[login]

    def get(self, login: str, path: str, **kw: Any) -> Any:
        return self.client(login).get(path, **kw)

    def post(self, login: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.client(login).post(path, json=body, **kw)

    def conv(self, login: str, conv_id: str) -> dict[str, Any]:
        r = self.get(login, f"/api/conversations/{conv_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def make_settings(settings: Settings, **web: Any) -> Settings:
    """Test settings: every unflagged conversation drawn for calibration (rate 1), so the queue holds them all."""
    return settings.model_copy(update={
        "review": ReviewSettings(sample_rate=1.0, appeal_window_days=7),
        "web": settings.web.model_copy(update={"secret_key": None, **web}),
    })


@pytest.fixture
def workbench(web_db_url: str, analyses: list[Analysis], password_hash: str, settings: Settings,
              tmp_path: Path) -> Iterator[Workbench]:
    from zhijian_testing import write_wav

    from pipeline.store import Store
    from pipeline.store import review as repo
    from pipeline.web.app import create_app

    s = make_settings(settings)
    store = Store(web_db_url, s)
    try:
        for a in analyses:
            store.save_analysis(a)
        with store._session.begin() as session:
            for login, (role, agent_id, teams) in USERS.items():
                repo.add_user(session, login, password_hash, role, agent_id=agent_id, teams=teams)
    finally:
        store.close()
    inbox = tmp_path / "inbox"
    write_wav(inbox / TODAY.isoformat() / "calls" / f"{CALL_ID}.wav", seconds=3.0, channels=2)
    app = create_app(s, web_db_url, inbox)
    wb = Workbench(app=app, db_url=web_db_url, inbox=inbox, settings=s)
    with TestClient(app):  # runs the lifespan: the store is closed at the end
        yield wb
    for c in wb.clients.values():
        c.close()


@pytest.fixture
def stored(workbench: Workbench) -> Callable[[str], Any]:
    """The conversations row as stored now."""
    from pipeline.store.models import ConversationRow

    def get(conv_id: str) -> Any:
        with workbench.store._session() as s:
            return s.get(ConversationRow, conv_id)

    return get
