"""One conversation (REVIEW_API.md "A conversation"): the record in force with version, items, review and
appeals; 404 for what a role may not see; the recording with byte ranges, only from under the inbox."""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import CALL_ID, LEAK_ID, TODAY, Workbench

from pipeline.decisions import REVIEW_ITEMS

ITEM_KEYS = {"item", "machine_value", "value", "confidence", "evidence", "source"}


def test_the_record_in_force_with_version_items_review_and_appeals(workbench: Workbench) -> None:
    conv = workbench.conv("qa", LEAK_ID)
    for key in ("id", "channel", "agent_id", "date", "complaint_type", "script", "courtesy_violation_turns",
                "customer_emotion", "escalation_risk", "dead_air", "score", "critical", "flags", "turns"):
        assert key in conv, key
    assert conv["id"] == LEAK_ID and conv["date"] == TODAY.isoformat() and conv["version"] == 1
    assert [it["item"] for it in conv["items"]] == list(REVIEW_ITEMS)
    assert all(set(it) >= ITEM_KEYS for it in conv["items"])
    assert all(it["source"] == "machine" and it["value"] == it["machine_value"] for it in conv["items"])
    assert conv["review"] == {"status": "open", "assigned_to": None, "reviewed_by": None, "reviewed_at": None}
    assert conv["appeals"] == []
    by_item = {it["item"]: it for it in conv["items"]}
    assert by_item["complaint_type"]["value"] == conv["complaint_type"]
    assert by_item["script.greeting"]["value"] == conv["script"]["greeting"]
    assert conv["turns"][0]["text"].startswith("你好，我家厨房的水管漏水了")
    assert conv["audio_url"] is None  # a chat


@pytest.mark.parametrize(("login", "conv_id"), [
    ("a101", "W-RUDE"),  # another agent's
    ("a102", LEAK_ID),
    ("qa2", LEAK_ID),  # another team's
    ("trainer", "W-LIFT"),
    ("sup2", "W-RUDE"),
])
def test_what_a_role_may_not_see_is_404_like_nothing(workbench: Workbench, login: str, conv_id: str) -> None:
    hidden = workbench.get(login, f"/api/conversations/{conv_id}")
    missing = workbench.get(login, "/api/conversations/NO-SUCH-ID")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert workbench.get(login, f"/api/conversations/{conv_id}/audit").status_code == 404


@pytest.mark.parametrize("login", ["admin", "sup", "qa", "qa1", "trainer", "a101"])
def test_who_may_see_it_reads_it(workbench: Workbench, login: str) -> None:
    assert workbench.get(login, f"/api/conversations/{LEAK_ID}").status_code == 200


# -- the recording -------------------------------------------------------------------------------------

def _wav(workbench: Workbench) -> bytes:
    return (workbench.inbox / TODAY.isoformat() / "calls" / f"{CALL_ID}.wav").read_bytes()


def test_audio_is_served_whole_with_accept_ranges(workbench: Workbench) -> None:
    r = workbench.get("qa2", f"/api/conversations/{CALL_ID}/audio")
    assert r.status_code == 200 and r.content == _wav(workbench)
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"].startswith("audio/")
    conv = workbench.conv("qa2", CALL_ID)
    assert conv["audio_url"] == f"/api/conversations/{CALL_ID}/audio"


@pytest.mark.parametrize(("header", "lo", "hi"), [("bytes=0-99", 0, 99), ("bytes=100-", 100, None),
                                                   ("bytes=-64", -64, None), ("bytes=44-44", 44, 44)])
def test_a_range_request_is_206_with_those_bytes(workbench: Workbench, header: str, lo: int, hi: int | None) -> None:
    data = _wav(workbench)
    r = workbench.get("qa2", f"/api/conversations/{CALL_ID}/audio", headers={"Range": header})
    assert r.status_code == 206
    want = data[lo:] if hi is None else data[lo:hi + 1]
    assert r.content == want
    start = lo if lo >= 0 else len(data) + lo
    assert r.headers["content-range"] == f"bytes {start}-{start + len(want) - 1}/{len(data)}"
    assert int(r.headers["content-length"]) == len(want)


def test_an_unsatisfiable_range_is_416(workbench: Workbench) -> None:
    size = len(_wav(workbench))
    r = workbench.get("qa2", f"/api/conversations/{CALL_ID}/audio", headers={"Range": f"bytes={size + 10}-"})
    assert r.status_code == 416


@pytest.mark.parametrize("login", ["a101", "qa1", "trainer"])
def test_audio_of_a_conversation_one_may_not_see_is_404(workbench: Workbench, login: str) -> None:
    assert workbench.get(login, f"/api/conversations/{CALL_ID}/audio").status_code == 404


def test_a_chat_has_no_audio(workbench: Workbench) -> None:
    assert workbench.get("qa", f"/api/conversations/{LEAK_ID}/audio").status_code == 404


def test_only_files_under_the_inbox_are_served(workbench: Workbench, tmp_path: Any) -> None:
    calls = workbench.inbox / TODAY.isoformat() / "calls"
    wav = calls / f"{CALL_ID}.wav"
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF-not-yours")
    wav.unlink()
    os.symlink(outside, wav)  # a recording that points out of the inbox is not served
    assert workbench.get("qa", f"/api/conversations/{CALL_ID}/audio").status_code == 404
    wav.unlink()
    assert workbench.get("qa", f"/api/conversations/{CALL_ID}/audio").status_code == 404
    for sneaky in ("..%2F..%2Fsecret", "%2E%2E", "C-CALL%00"):
        assert workbench.get("qa", f"/api/conversations/{sneaky}/audio").status_code == 404


def test_without_an_inbox_nothing_is_served(workbench: Workbench) -> None:
    workbench.app.state.inbox = None
    assert workbench.get("qa", f"/api/conversations/{CALL_ID}/audio").status_code == 404
