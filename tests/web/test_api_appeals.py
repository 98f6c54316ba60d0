"""Appeals (REVIEW_API.md "Appeals"): filed by the conversation's own agent within the window, one open per
item, ruled by a supervisor or admin (an overturn sets the value in force and rescores), visible to whoever
sees the conversation; and the audit log that records it all, append-only."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import LEAK_ID, Workbench

ITEM = "script.restate"


def _file(wb: Workbench, login: str = "a101", conv_id: str = LEAK_ID, item: str = ITEM) -> Any:
    return wb.post(login, f"/api/conversations/{conv_id}/appeals", {"item": item, "reason": "我复述了地址"})


def _item(conv: dict[str, Any], item: str) -> dict[str, Any]:
    return next(it for it in conv["items"] if it["item"] == item)


def test_the_agent_files_an_appeal_and_a_second_is_409(workbench: Workbench) -> None:
    r = _file(workbench)
    assert r.status_code == 201, r.text
    appeal = r.json()
    assert appeal["status"] == "open" and appeal["item"] == ITEM and appeal["filed_by"] == "a101"
    assert appeal["ruling"] is None and isinstance(appeal["id"], int)
    assert _file(workbench).status_code == 409
    assert _file(workbench, item="dead_air").status_code == 201  # another item is another appeal
    conv = workbench.conv("a101", LEAK_ID)
    assert next(a["id"] for a in conv["appeals"]) == appeal["id"]
    audit = workbench.get("a101", f"/api/conversations/{LEAK_ID}/audit").json()
    assert audit[0]["action"] == "appeal" and audit[0]["item"] == ITEM and audit[0]["by"] == "a101"


@pytest.mark.parametrize(("login", "conv_id", "status"), [
    ("a102", LEAK_ID, 404),  # another agent's conversation
    ("qa", LEAK_ID, 403), ("sup", LEAK_ID, 403), ("trainer", LEAK_ID, 403), ("admin", LEAK_ID, 403),
    ("a101", "NO-SUCH", 404),
])
def test_only_the_own_agent_may_appeal(workbench: Workbench, login: str, conv_id: str, status: int) -> None:
    assert _file(workbench, login, conv_id).status_code == status


def test_the_window_closes_and_bad_items_are_422(workbench: Workbench) -> None:
    closed = _file(workbench, conv_id="W-OLD")
    assert closed.status_code == 422 and "window" in closed.json()["detail"]
    assert _file(workbench, item="script.smile").status_code == 422
    r = workbench.post("a101", f"/api/conversations/{LEAK_ID}/appeals", {"item": ITEM, "reason": ""})
    assert r.status_code == 422


def test_a_reviewer_may_not_rule_and_a_supervisor_overturns(workbench: Workbench) -> None:
    appeal = _file(workbench).json()
    before = workbench.conv("sup", LEAK_ID)
    machine = _item(before, ITEM)["value"]
    ruling = {"decision": "overturned", "value": not machine, "reason": "录音里复述了地址"}
    assert workbench.post("qa", f"/api/appeals/{appeal['id']}/ruling", ruling).status_code == 403
    assert workbench.post("trainer", f"/api/appeals/{appeal['id']}/ruling", ruling).status_code == 403
    assert workbench.post("a101", f"/api/appeals/{appeal['id']}/ruling", ruling).status_code == 403
    assert workbench.post("sup2", f"/api/appeals/{appeal['id']}/ruling", ruling).status_code == 404  # T2 only
    r = workbench.post("sup", f"/api/appeals/{appeal['id']}/ruling", ruling)
    assert r.status_code == 200, r.text
    ruled = r.json()
    assert ruled["status"] == "overturned"
    assert ruled["ruling"]["decision"] == "overturned" and ruled["ruling"]["by"] == "sup"
    assert ruled["ruling"]["value"] is (not machine)
    after = workbench.conv("a101", LEAK_ID)  # the agent sees the ruling and the new value
    assert _item(after, ITEM)["value"] is (not machine) and _item(after, ITEM)["source"] == "ruling"
    assert after["version"] == before["version"] + 1
    weight = _item(after, ITEM)["weight"]
    if not before["critical"] and not after["critical"]:
        assert after["score"] == pytest.approx(before["score"] + (weight if not machine else -weight))
    assert after["appeals"][0]["status"] == "overturned"
    audit = workbench.get("a101", f"/api/conversations/{LEAK_ID}/audit").json()
    assert [e["action"] for e in audit][-2:] == ["appeal", "ruling"]
    assert audit[-1]["by"] == "sup" and audit[-1]["to"] is (not machine)
    assert workbench.post("sup", f"/api/appeals/{appeal['id']}/ruling", ruling).status_code == 409  # ruled
    assert _file(workbench).status_code == 201  # closed: the item may be appealed again


def test_an_admin_upholds(workbench: Workbench) -> None:
    appeal = _file(workbench).json()
    before = workbench.conv("admin", LEAK_ID)
    r = workbench.post("admin", f"/api/appeals/{appeal['id']}/ruling",
                       {"decision": "upheld", "reason": "录音里没有复述"})
    assert r.status_code == 200 and r.json()["status"] == "upheld"
    after = workbench.conv("admin", LEAK_ID)
    assert after["score"] == before["score"] and _item(after, ITEM)["source"] == "machine"
    audit = workbench.get("admin", f"/api/conversations/{LEAK_ID}/audit").json()
    assert audit[-1]["action"] == "ruling" and audit[-1]["reason"].startswith("upheld")


def test_bad_rulings_are_422(workbench: Workbench) -> None:
    appeal = _file(workbench).json()
    path = f"/api/appeals/{appeal['id']}/ruling"
    assert workbench.post("sup", path, {"decision": "maybe", "reason": "x"}).status_code == 422
    assert workbench.post("sup", path, {"decision": "overturned", "value": "x", "reason": "x"}).status_code == 422
    assert workbench.post("sup", path, {"decision": "upheld", "reason": ""}).status_code == 422
    assert workbench.post("sup", "/api/appeals/999999/ruling", {"decision": "upheld", "reason": "x"}).status_code == 404


def test_appeal_lists_show_what_the_caller_may_see(workbench: Workbench) -> None:
    mine = _file(workbench).json()
    other = _file(workbench, "a102", "W-RUDE", "customer_emotion").json()

    def ids(login: str, query: str = "?status=open") -> list[int]:
        r = workbench.get(login, f"/api/appeals{query}")
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids("sup") == [mine["id"], other["id"]]
    assert ids("a101") == [mine["id"]] and ids("a102") == [other["id"]]
    assert ids("sup2") == [] and ids("qa2") == []
    assert ids("trainer") == [mine["id"], other["id"]]  # both T1
    workbench.post("sup", f"/api/appeals/{mine['id']}/ruling", {"decision": "upheld", "reason": "x"})
    assert ids("sup") == [other["id"]] and ids("sup", "?status=upheld") == [mine["id"]]
    assert ids("sup", "") == [mine["id"], other["id"]]
    assert workbench.get("sup", "/api/appeals?status=lost").status_code == 422


def test_the_audit_log_is_append_only(workbench: Workbench) -> None:
    """No route edits or deletes an entry."""
    paths = workbench.app.openapi()["paths"]
    for path, methods in paths.items():
        if "audit" in path:
            assert set(methods) == {"get"}, path
    for method in ("PUT", "PATCH", "DELETE"):
        r = workbench.client("admin").request(method, f"/api/conversations/{LEAK_ID}/audit")
        assert r.status_code == 405
