"""The pages' own helpers (no browser): search hits marked without letting text become markup, values in
words, the scorecard's weights, chat times read only from the inbox, and the sign-in page's redirect."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Settings
from pipeline.scorecard import Scorecard
from pipeline.web import pages


def test_highlight_marks_every_term_and_escapes_the_rest() -> None:
    out = pages.highlight("我家<b>厨房</b>的水管漏水了", ["厨房", "漏水"])
    assert str(out) == "我家&lt;b&gt;<mark>厨房</mark>&lt;/b&gt;的水管<mark>漏水</mark>了"
    assert str(pages.highlight("<script>", [])) == "&lt;script&gt;"
    # the longer word wins where two overlap
    assert str(pages.highlight("水管漏水", ["漏水", "水"])) == "<mark>水</mark>管<mark>漏水</mark>"


def test_values_in_words() -> None:
    assert pages.plain(True, "script.restate") == "已做"
    assert pages.plain(False, "escalation_risk") == "否"
    assert pages.plain([1, 3], "courtesy_violation_turns") == "#1、#3"
    assert pages.plain([], "courtesy_violation_turns") == "无"
    assert pages.plain("repair", "complaint_type") == "报事报修"
    assert pages.plain(None) == ""
    assert pages.clock(75.4) == "1:15" and pages.clock(None) == ""
    assert pages.hms("2026-11-21T20:01:00+08:00") == "20:01:00"
    assert pages.when("2026-11-21T01:02:00+00:00") == "2026-11-21 09:02"  # shown on the company's clock


def test_weights_come_from_the_scorecard(settings: Settings) -> None:
    card = Scorecard.load(settings.scorecard_path)
    assert pages.weight("script.commitment", card) == f"−{card.script['commitment']:g}"
    assert "红线" in pages.weight("script.ownership", card)
    assert pages.weight("courtesy_violation_turns", card) == f"每处 −{card.courtesy_each:g} · 红线"
    assert pages.weight("complaint_type", card) == "—"


def test_chat_times_come_only_from_the_chat_file_in_the_inbox(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    chats = inbox / "2026-11-21" / "chats"
    chats.mkdir(parents=True)
    messages = [{"role": "customer", "at": "2026-11-21T20:01:00+08:00", "text": "你好"},
                {"role": "agent", "at": "2026-11-21T20:02:10+08:00", "text": "您好"}]
    (chats / "W1.json").write_text(json.dumps({"id": "W1", "messages": messages}), encoding="utf-8")
    conv = {"id": "W1", "date": "2026-11-21", "channel": "chat",
            "turns": [{"turn": 0, "role": "customer", "text": "你好"}, {"turn": 1, "role": "agent", "text": "您好"}]}
    assert pages.chat_times(conv, inbox) == {0: messages[0]["at"], 1: messages[1]["at"]}
    assert pages.chat_times(conv, None) == {}
    # an id that walks out of the inbox reads nothing
    (tmp_path / "secret.json").write_text(json.dumps({"messages": messages}), encoding="utf-8")
    assert pages.chat_times({**conv, "id": "../../../secret"}, inbox) == {}
    # a file that is not the one the record was made from (another number of messages) is not used
    assert pages.chat_times({**conv, "turns": conv["turns"][:1]}, inbox) == {}
