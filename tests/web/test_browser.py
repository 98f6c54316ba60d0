"""The workbench in a real browser: Debian's Chromium, headless, driven by Playwright, against `zhijian web`
on a free port over a fresh SQLite store filled through the real pipeline (a real call recognised by the
real recogniser, chats judged by the real judges). The tests run in file order and share the browser and
the store, as a working day does: sign in, the queue, take next, listen, review, a conflict, an appeal
and its ruling, search. Two screenshots for the README come from this run."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

from pipeline.config import Settings  # noqa: E402
from pipeline.schema import Transcript  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct-horse-电池-9"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")

# The day the conversations are filed under: yesterday, so the 7-day appeal window is open.
DAY = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))

LEAK_ID = "W-WEB-0001"  # the rude kitchen-leak chat of agent A102: critical, searched for, appealed
GOOD_ID = "W-WEB-0002"  # a good chat of A101: reviewed (override) and fought over (conflict)
RISK_ID = "W-WEB-0003"  # an escalation threat
SLOPPY_ID = "W-WEB-0004"  # no greeting, no closing: low score

CHATS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    LEAK_ID: ("A102", "张伟", [
        ("customer", "你好，我家厨房的水管漏水了，楼下都被淹了，赶紧派人来！"),
        ("agent", "不知道，这个不归我们管，你自己去找工程部吧。"),
        ("customer", "你们物业就是这个态度吗？"),
        ("agent", "没办法，这是规定。"),
    ]),
    GOOD_ID: ("A101", "李静", [
        ("customer", "你好，我家楼上装修太吵了，中午都不停。"),
        ("agent", "您好，阳光花园物业在线客服，工号1024，请问您是几栋几单元几号？"),
        ("customer", "3栋2单元1502。"),
        ("agent", "您是说楼上装修中午施工噪音太大，对吗？我马上通知巡逻保安，20分钟内上门处理。"),
        ("customer", "对，谢谢。"),
        ("agent", "请问还有其他问题吗？"),
        ("customer", "没有了。"),
        ("agent", "感谢您的反馈，再见！"),
    ]),
    RISK_ID: ("A101", "李静", [
        ("customer", "电梯又坏了，这是第三次投诉了，再不修我就打12345，还要找媒体曝光！"),
        ("agent", "您好，阳光花园物业客服。非常抱歉，维保单位一小时内到场维修。"),
        ("customer", "一小时？我家老人还被困在楼下。"),
        ("agent", "我来跟进，修好后给您回电。"),
    ]),
    SLOPPY_ID: ("A102", "张伟", [
        ("customer", "小区门口的垃圾两天没人收了，味道很大。"),
        ("agent", "哦。"),
        ("customer", "什么时候处理？"),
        ("agent", "等着吧。"),
    ]),
}

# More of the day, so the queue looks like one: other agents, another team and site.
HAITANG = ("海棠湾客服组", "海棠湾")
MORE: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("W-WEB-0101", "A201", "王芳", [("customer", "地库B区有辆车一直占我的车位，三天了。"),
                                  ("agent", "您好，海棠湾物业客服。请问您的车位号是多少？"), ("customer", "B-117。"),
                                  ("agent", "好的，我马上通知保安去现场处理。")]),
    ("W-WEB-0102", "A201", "王芳", [("customer", "这个月物业费怎么多收了五十块？"),
                                  ("agent", "您好，海棠湾物业客服，请问您的房号是？"), ("customer", "2栋1101。"),
                                  ("agent", "查到了，是公摊电费，您是说公摊电费不清楚对吗？明天上午给您发明细。"),
                                  ("agent", "请问还有其他问题吗？感谢来电，再见。")]),
    ("W-WEB-0103", "A202", "陈刚", [("customer", "晚上广场舞太吵了，孩子没法睡觉，再这样我就找媒体了。"),
                                  ("agent", "急什么，又不是只有你一家。"), ("customer", "你什么态度！")]),
    ("W-WEB-0104", "A202", "陈刚", [("customer", "楼道灯坏了一个星期了。"), ("agent", "知道了。")]),
    ("W-WEB-0105", "A201", "王芳", [("customer", "想表扬一下保洁李阿姨，每天都打扫得很干净。"),
                                  ("agent", "您好，海棠湾物业客服，谢谢您的认可，我们一定转达。"),
                                  ("agent", "请问还有其他需要吗？祝您生活愉快，再见。")]),
    ("W-WEB-0106", "A202", "陈刚", [("customer", "门禁卡刷不开了，进不了单元门。"),
                                  ("agent", "这个你自己去找物业前台，不归我们客服管。")]),
]

USERS = [  # login, role, agent id
    ("qa01", "reviewer", None),
    ("qa02", "reviewer", None),
    ("sup01", "supervisor", None),
    ("zhangwei", "agent", "A102"),
]


@dataclass
class Live:
    url: str
    db_url: str
    inbox: Path
    call_id: str
    browser: Browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill_store(settings: Settings, db_url: str, inbox: Path, call: Transcript) -> None:
    """The day through the real judges and scorecard into the store, as the nightly run saves it."""
    from zhijian_testing import write_chat

    from pipeline.analysis import Analyser
    from pipeline.ingest import read_chat
    from pipeline.schema import Analysis
    from pipeline.store import Store

    transcripts = [call]
    for conv_id, (agent_id, agent_name, lines) in CHATS.items():
        messages = [{"role": r, "at": f"{DAY}T20:{10 + i:02d}:{7 * i % 60:02d}+08:00", "text": t}
                    for i, (r, t) in enumerate(lines)]
        path = write_chat(inbox / DAY / "chats" / f"{conv_id}.json", conv_id, messages, agent_id=agent_id,
                          agent_name=agent_name, started_at=f"{DAY}T20:10:00+08:00")
        transcripts.append(read_chat(path))
    for conv_id, agent_id, agent_name, lines in MORE:
        messages = [{"role": r, "at": f"{DAY}T09:{10 + i:02d}:00+08:00", "text": t} for i, (r, t) in enumerate(lines)]
        path = write_chat(inbox / DAY / "chats" / f"{conv_id}.json", conv_id, messages, agent_id=agent_id,
                          agent_name=agent_name, team=HAITANG[0], site=HAITANG[1],
                          started_at=f"{DAY}T09:10:00+08:00")
        transcripts.append(read_chat(path))
    analyses = list(Analyser(settings).pipe(transcripts, DAY))
    assert all(isinstance(a, Analysis) for a in analyses), analyses
    with Store(db_url) as store:
        for a in analyses:
            assert isinstance(a, Analysis)
            store.save_analysis(a)


def _add_users(db_url: str, settings: Settings) -> None:
    from pipeline.store import Store
    from pipeline.store import review as repo
    from pipeline.web import auth

    with Store(db_url, settings) as store, store._session() as s:
        for login, role, agent_id in USERS:
            repo.add_user(s, login, auth.hash_password(PASSWORD), role, agent_id=agent_id)
        s.commit()


@pytest.fixture(scope="module")
def live(settings: Settings, stereo_transcript: Transcript,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    import uvicorn
    from zhijian_testing import copy_call

    from pipeline.web.app import create_app

    root = tmp_path_factory.mktemp("workbench")
    inbox = root / "inbox"
    call_id = copy_call("stereo_short", inbox / DAY / "calls")
    audio = next(p for p in (inbox / DAY / "calls").iterdir() if p.stem == call_id and p.suffix != ".json")
    meta = stereo_transcript.meta.model_copy(update={
        "source": str(inbox / DAY / "calls" / f"{call_id}.json"), "audio_path": str(audio)})
    call = stereo_transcript.model_copy(update={"meta": meta})
    db_url = f"sqlite:///{root / 'zhijian.db'}"
    _fill_store(settings, db_url, inbox, call)
    _add_users(db_url, settings)

    # the app as `zhijian web` serves it, on a free port, in a thread of this process
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, db_url, inbox), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="zhijian-web", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, thread)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--lang=zh-CN"])
            yield Live(url=url, db_url=db_url, inbox=inbox, call_id=call_id, browser=browser)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_up(url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the web server stopped before it answered")
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the web server did not answer in 30 s")


def _context(wb: Live) -> BrowserContext:
    ctx = wb.browser.new_context(base_url=wb.url, viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                 timezone_id="Asia/Shanghai")
    ctx.set_default_timeout(15_000)
    return ctx


def _sign_in(wb: Live, login: str) -> Page:
    page = _context(wb).new_page()
    page.goto("/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda u: "/login" not in u)
    return page


def _api(page: Page, path: str) -> Any:
    """A GET of the JSON API with the page's own session cookie."""
    r = page.request.get(path)
    assert r.ok, (path, r.status, r.text())
    return r.json()


def _score(page: Page) -> float:
    return float(page.locator("#score").inner_text())


@pytest.fixture(scope="module")
def reviewer(live: Live) -> Iterator[Page]:
    page = _sign_in(live, "qa01")
    yield page
    page.context.close()


# -- the tests, in the order of a working day ------------------------------------------------------------------


def test_sign_in_rejects_a_wrong_password_then_lands_on_the_queue(live: Live) -> None:
    page = _context(live).new_page()
    page.goto("/queue")
    page.wait_for_url("**/login**")  # no session: the page sends us to sign in
    page.fill("#login", "qa01")
    page.fill("#password", "wrong password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("账号或密码错误")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/queue")
    expect(page.locator("h1")).to_contain_text("质检队列")
    expect(page.locator("#who-login")).to_have_text("qa01")
    page.context.close()


def test_queue_is_in_severity_order_with_filters(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto("/queue")
    rows = page.locator("#conv-table tbody tr[data-id]")
    expect(rows.first).to_be_visible()
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.id)")
    api = _api(page, "/api/queue?limit=100")
    assert ids == [it["id"] for it in api["items"]]  # the page shows the API's order
    tiers = rows.evaluate_all("rows => rows.map(r => Number(r.className.match(/tier-(\\d)/)[1]))")
    assert tiers == sorted(tiers)
    assert LEAK_ID in ids and tiers[ids.index(LEAK_ID)] == 0  # the rude chat is critical, at the top
    reasons = rows.evaluate_all("rows => rows.map(r => r.children[10].textContent.trim())")
    assert set(reasons) <= {"标记", "抽检"}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))

    page.select_option("select[name=flag]", "critical")
    page.click("#queue-filters button[type=submit]")
    page.wait_for_url("**flag=critical**")
    flagged = page.locator("#conv-table tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert flagged and LEAK_ID in flagged and set(flagged) <= set(ids)
    assert all(page.locator(f"tr[data-id='{i}'] [data-flag=critical]").count() == 1 for i in flagged)


def test_the_queue_pages_with_a_cursor_never_repeating_or_skipping(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto("/queue")
    everything = page.locator("#conv-table tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    page.goto("/queue?limit=3")
    seen: list[str] = []
    while True:
        seen += page.locator("#conv-table tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
        if page.locator("#next-page").count() == 0:
            break
        page.click("#next-page")
        page.wait_for_load_state()
    assert seen == everything and len(everything) > 3


def test_take_next_assigns_the_most_severe_open_item(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto("/queue")
    first = page.locator("#conv-table tbody tr[data-id]").first.get_attribute("data-id")
    page.click("#take-next")
    page.wait_for_url(f"**/conversations/{first}")
    expect(page.locator("#review-status")).to_contain_text("审核中")
    expect(page.locator("#review-status")).to_contain_text("qa01")
    page.goto("/queue")
    expect(page.locator(f"tr[data-id='{first}']")).to_contain_text("qa01")


def _open_call(page: Page, call_id: str) -> list[dict[str, float]]:
    page.goto(f"/conversations/{call_id}")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    turns = page.locator("#transcript .turn").evaluate_all(
        "els => els.map(e => ({turn: +e.dataset.turn, start: +e.dataset.start, end: +e.dataset.end}))")
    assert len(turns) >= 3, turns
    return turns


def test_clicking_a_turn_seeks_the_audio_there(live: Live, reviewer: Page) -> None:
    page = reviewer
    turns = _open_call(page, live.call_id)
    for t in (turns[2], turns[1]):
        page.click(f"#turn-{t['turn']}")
        page.wait_for_function("document.getElementById('player').seeking === false")
        now = page.evaluate("document.getElementById('player').currentTime")
        assert abs(now - t["start"]) < 0.05, (now, t)
        expect(page.locator(f"#turn-{t['turn']}")).to_have_class(re.compile(r"\bplaying\b"))


def test_the_highlighted_turn_follows_the_playing_audio(live: Live, reviewer: Page) -> None:
    page = reviewer
    turns = _open_call(page, live.call_id)
    page.click(f"#turn-{turns[0]['turn']}")
    page.evaluate("() => { const a = document.getElementById('player'); a.muted = true; a.playbackRate = 2;"
                  " return a.play(); }")
    # as the audio plays on, the highlight moves to each next turn, and the turn lit is the one playing
    for t in turns[1:3]:
        page.wait_for_function(
            f"document.querySelector('#transcript .turn.playing')?.dataset.turn === '{t['turn']}'", timeout=30_000)
        state = page.evaluate("() => ({t: document.getElementById('player').currentTime,"
                              " lit: document.querySelectorAll('#transcript .turn.playing').length})")
        assert t["start"] <= state["t"] < t["end"] + 0.2, (state, t)
        assert state["lit"] == 1
    page.evaluate("document.getElementById('player').pause()")
    # between turns nobody speaks: nothing is lit
    gap = (turns[1]["end"] + turns[2]["start"]) / 2
    page.evaluate(f"document.getElementById('player').currentTime = {gap}")
    page.wait_for_function("!document.querySelector('#transcript .turn.playing')")
    page.click(f"#turn-{turns[1]['turn']}")
    # the reviewer at work: one item confirmed, one being overridden (not sent: the next tests start clean)
    page.locator("#scorecard tr[data-item='complaint_type'] button.confirm").click()
    _override(page, "script.identity_check", True, "座席已核实楼栋单元")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "conversation.png"))


def _override(page: Page, item: str, value: Any, reason: str) -> None:
    row = page.locator(f"#scorecard tr[data-item='{item}']")
    row.locator("button.override").click()
    control = row.locator("[name=value]")
    if isinstance(value, list):
        control.fill(", ".join(map(str, value)))
    else:
        control.select_option(json.dumps(value, ensure_ascii=False))
    row.locator("[name=reason]").fill(reason)


def test_overriding_a_finding_changes_the_score(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto(f"/conversations/{GOOD_ID}")
    conv = _api(page, f"/api/conversations/{GOOD_ID}")
    before = _score(page)
    assert before == conv["score"]
    # chat: shown as a chat, with the messages' times
    expect(page.locator("#transcript.chat .turn").first).to_contain_text("20:10:00")
    done = next(i for i in conv["items"] if i["item"].startswith("script.") and i["value"] is True)
    _override(page, done["item"], False, "并未完成该话术")
    page.click("#submit-review")
    expect(page.locator("#flash")).to_contain_text("已提交 1 项复核")
    after = _score(page)
    assert after < before
    fresh = _api(page, f"/api/conversations/{GOOD_ID}")
    assert fresh["score"] == after and fresh["version"] == conv["version"] + 1
    row = page.locator(f"#scorecard tr[data-item='{done['item']}']")
    expect(row.locator(".value")).to_contain_text("未做")
    expect(row.locator(".decided")).to_contain_text("qa01")
    expect(page.locator("#audit")).to_contain_text("并未完成该话术")

    # an override without a reason is refused on the page, before anything is sent
    other = next(i for i in fresh["items"] if i["item"] == "dead_air")
    _override(page, "dead_air", not other["value"], "")
    page.click("#submit-review")
    expect(page.locator("#flash")).to_contain_text("须填写原因")
    assert _api(page, f"/api/conversations/{GOOD_ID}")["version"] == fresh["version"]


def test_a_stale_page_gets_the_conflict_message_instead_of_overwriting(live: Live, reviewer: Page) -> None:
    other = _sign_in(live, "qa02")
    try:
        other.goto(f"/conversations/{GOOD_ID}")  # qa02 opens the page …
        stale_version = int(other.locator("#conv").get_attribute("data-version") or 0)
        reviewer.goto(f"/conversations/{GOOD_ID}")  # … qa01 reviews meanwhile
        reviewer.locator("#scorecard tr[data-item='complaint_type'] button.confirm").click()
        reviewer.click("#submit-review")
        expect(reviewer.locator("#flash")).to_contain_text("已提交")
        current = _api(reviewer, f"/api/conversations/{GOOD_ID}")
        assert current["version"] == stale_version + 1

        _override(other, "customer_emotion", "angry", "客户明显愤怒")  # qa02 submits from the stale page
        other.click("#submit-review")
        expect(other.locator("#flash")).to_contain_text("此会话已被他人修改，已重新载入")
        expect(other.locator("#version")).to_have_text(str(current["version"]))
        after = _api(other, f"/api/conversations/{GOOD_ID}")
        assert after["version"] == current["version"]  # nothing was written
        emotion = next(i for i in after["items"] if i["item"] == "customer_emotion")
        assert emotion["value"] == emotion["machine_value"]
    finally:
        other.context.close()


def test_confirm_all_then_take_the_next_one(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto(f"/conversations/{RISK_ID}")
    page.click("#confirm-all")
    expect(page.locator("#staged-count")).to_have_text(f"已选 {page.locator('#scorecard tr[data-item]').count()} 项")
    page.click("#submit-next")
    page.wait_for_url(lambda u: RISK_ID not in u and "/conversations/" in u)
    expect(page.locator("#flash")).to_contain_text("已领取")
    conv = _api(page, f"/api/conversations/{RISK_ID}")
    assert conv["review"]["status"] == "reviewed" and conv["review"]["reviewed_by"] == "qa01"
    assert all(i["value"] == i["machine_value"] and i["source"] == "review" for i in conv["items"])
    taken = page.locator("#conv").get_attribute("data-id")
    assert _api(page, f"/api/conversations/{taken}")["review"]["assigned_to"] == "qa01"


def test_an_agent_appeals_and_a_supervisor_overturns(live: Live) -> None:
    agent = _sign_in(live, "zhangwei")
    supervisor = _sign_in(live, "sup01")
    try:
        # an agent sees only their own conversations: another agent's call is "not found"
        r = agent.goto(f"/conversations/{live.call_id}")
        assert r is not None and r.status == 404
        agent.goto("/search")
        mine = agent.locator("#conv-table tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert sorted(mine) == sorted([LEAK_ID, SLOPPY_ID])

        agent.goto(f"/conversations/{LEAK_ID}")
        conv = _api(agent, f"/api/conversations/{LEAK_ID}")
        item = next(i for i in conv["items"] if i["item"].startswith("script.") and i["value"] is False)
        before = conv["score"]
        row = agent.locator(f"#scorecard tr[data-item='{item['item']}']")
        expect(agent.locator("#submit-review")).to_have_count(0)  # an agent does not review
        row.locator("button.appeal-btn").click()
        row.locator(".appeal-form [name=reason]").fill("开头已经问候过了")
        row.locator("button.appeal-submit").click()
        expect(agent.locator("#flash")).to_contain_text("申诉已提交")
        expect(row).to_contain_text("申诉处理中")
        expect(agent.locator("#appeals")).to_contain_text("开头已经问候过了")

        supervisor.goto("/appeals")
        appeal = supervisor.locator("#appeal-table tr[data-appeal-id]", has_text=LEAK_ID)
        expect(appeal).to_have_count(1)
        appeal.locator("[name=decision]").select_option("overturned")
        appeal.locator("[name=value]").select_option("true")
        appeal.locator("[name=reason]").fill("核实属实，改判")
        appeal.locator("button.rule-submit").click()
        expect(supervisor.locator("#flash")).to_contain_text("已改判")
        supervisor.goto("/appeals?status=overturned")
        expect(supervisor.locator("#appeal-table")).to_contain_text(LEAK_ID)

        agent.goto(f"/conversations/{LEAK_ID}")  # the agent sees the ruling, and the value now in force
        expect(agent.locator("#appeals")).to_contain_text("已改判")
        expect(agent.locator("#appeals")).to_contain_text("核实属实，改判")
        expect(agent.locator(f"#scorecard tr[data-item='{item['item']}'] .value")).to_contain_text("已做")
        after = _api(agent, f"/api/conversations/{LEAK_ID}")
        assert after["score"] >= before
        expect(agent.locator("#audit")).to_contain_text("sup01")
    finally:
        agent.context.close()
        supervisor.context.close()


def test_search_finds_a_conversation_by_two_words(live: Live, reviewer: Page) -> None:
    page = reviewer
    page.goto("/search")
    page.fill("input[name=q]", "厨房 漏水")
    page.click("#search-submit")
    page.wait_for_url("**q=**")
    rows = page.locator("#conv-table tbody tr[data-id]:not(.hits)")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.id)") == [LEAK_ID]
    hits = page.locator(f"tr.hits[data-id='{LEAK_ID}']")
    expect(hits).to_contain_text("我家厨房的水管漏水了")
    assert sorted(hits.locator("mark").all_inner_texts())[:2] == sorted(["厨房", "漏水"])
    page.fill("input[name=q]", "厨房 电梯")  # every word must match
    page.click("#search-submit")
    expect(page.locator("#conv-table")).to_contain_text("没有符合条件的会话")


def test_agreement_page_shows_the_reviewed_items(live: Live) -> None:
    page = _sign_in(live, "sup01")
    try:
        page.goto("/agreement")
        table = page.locator("#agreement-table")
        expect(table.locator("tr[data-item='complaint_type']")).to_be_visible()
        n = int(table.locator("tr[data-item='complaint_type'] td").nth(1).inner_text())
        assert n >= 1  # GOOD_ID's complaint type was confirmed
    finally:
        page.context.close()


def test_screenshots_were_written(live: Live) -> None:
    for name in ("queue.png", "conversation.png"):
        path = SCREENSHOTS / name
        assert path.stat().st_size > 10_000, name
