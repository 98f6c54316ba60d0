"""The queue (REVIEW_API.md "Queue"): order, reasons, filters, visibility, cursor pagination, take-next (also
under concurrency)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import CHATS, T1, T2, TODAY, Workbench

from pipeline.decisions import queue_place, sampled


def _all(wb: Workbench, login: str, query: str = "", limit: int = 2) -> list[dict[str, Any]]:
    """Every page of the queue, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        path = f"/api/queue?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        r = wb.get(login, path)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination does not end")


def test_queue_items_carry_the_spec_keys_in_severity_order(workbench: Workbench, stored: Any) -> None:
    body = workbench.get("admin", "/api/queue?limit=500").json()
    items = body["items"]
    assert body["next_cursor"] is None
    assert {it["id"] for it in items} == {c[0] for c in CHATS} | {"C-CALL"}  # sample rate 1: everything queued
    keys = {"id", "date", "channel", "agent_id", "agent_name", "team", "site", "score", "critical", "flags",
            "complaint_type", "reason", "status", "assigned_to"}
    assert all(keys <= set(it) for it in items)
    tiers = []
    for it in items:
        reason, tier = queue_place(it["id"], it["flags"], 1.0)
        assert it["reason"] == reason and it["status"] == "open" and it["assigned_to"] is None
        tiers.append(tier)
    assert [(t, it["score"], it["id"]) for t, it in zip(tiers, items, strict=True)] == sorted(
        (t, it["score"], it["id"]) for t, it in zip(tiers, items, strict=True))
    rude = next(it for it in items if it["id"] == "W-RUDE")
    assert rude["critical"] and "critical" in rude["flags"] and rude["reason"] == "flagged"
    assert items[0]["critical"]  # the most severe first


def test_pagination_never_repeats_or_skips(workbench: Workbench) -> None:
    whole = workbench.get("admin", "/api/queue?limit=500").json()["items"]
    for limit in (1, 2, 3, 4):
        paged = _all(workbench, "admin", limit=limit)
        assert [it["id"] for it in paged] == [it["id"] for it in whole]


def test_pagination_stays_whole_when_items_are_taken_between_pages(workbench: Workbench) -> None:
    first = workbench.get("admin", "/api/queue?limit=3").json()
    workbench.post("qa", "/api/queue/next")  # the head of the queue changes status, not place
    rest = _all(workbench, "admin", query="", limit=3)
    assert [it["id"] for it in rest][:3] == [it["id"] for it in first["items"]]


@pytest.mark.parametrize(("query", "expected"), [
    (f"&team={T2}", {c[0] for c in CHATS if c[2] == T2} | {"C-CALL"}),
    ("&agent=A102", {c[0] for c in CHATS if c[1] == "A102"}),
    (f"&date={TODAY}", {c[0] for c in CHATS if c[3] == TODAY} | {"C-CALL"}),
    (f"&from={TODAY}&to={TODAY}", {c[0] for c in CHATS if c[3] == TODAY} | {"C-CALL"}),
    ("&flag=critical", {"W-RUDE"}),
    ("&status=reviewed", set()),
    ("&site=阳光花园", {c[0] for c in CHATS if c[2] == T2} | {"C-CALL"}),
])
def test_filters(workbench: Workbench, query: str, expected: set[str]) -> None:
    assert {it["id"] for it in _all(workbench, "admin", query=query, limit=3)} == expected


def test_complaint_type_filter(workbench: Workbench) -> None:
    items = _all(workbench, "admin", limit=50)
    kind = next(it["complaint_type"] for it in items if it["id"] == "W-LEAK")
    found = _all(workbench, "admin", query=f"&complaint_type={kind}", limit=50)
    assert "W-LEAK" in {it["id"] for it in found} and all(it["complaint_type"] == kind for it in found)


def test_bad_parameters_are_422(workbench: Workbench) -> None:
    for query in ("status=done", "cursor=garbage", "limit=0", "date=yesterday"):
        assert workbench.get("admin", f"/api/queue?{query}").status_code == 422, query


@pytest.mark.parametrize(("login", "expected"), [
    ("qa1", {c[0] for c in CHATS if c[2] == T1}),
    ("qa2", {c[0] for c in CHATS if c[2] == T2} | {"C-CALL"}),
    ("trainer", {c[0] for c in CHATS if c[2] == T1}),
    ("a101", {c[0] for c in CHATS if c[1] == "A101"}),
    ("qa", {c[0] for c in CHATS} | {"C-CALL"}),
])
def test_each_role_sees_only_its_own(workbench: Workbench, login: str, expected: set[str]) -> None:
    assert {it["id"] for it in _all(workbench, login, limit=3)} == expected
    # asking for another team's conversations is no way round it
    assert {it["id"] for it in _all(workbench, login, query=f"&team={T2}", limit=3)} <= expected


def test_sample_draw_is_a_pure_function_of_the_id(workbench: Workbench) -> None:
    assert sampled("W-LEAK", 0.05) == sampled("W-LEAK", 0.05)
    assert sampled("W-LEAK", 1.0) and not sampled("W-LEAK", 0.0)


def test_take_next_assigns_in_queue_order_then_204(workbench: Workbench, stored: Any) -> None:
    order = [it["id"] for it in _all(workbench, "qa1", limit=50)]
    taken = []
    for _ in order:
        r = workbench.post("qa1", "/api/queue/next")
        assert r.status_code == 200, r.text
        item = r.json()
        assert item["status"] == "in_review" and item["assigned_to"] == "qa1"
        taken.append(item["id"])
    assert taken == order
    assert workbench.post("qa1", "/api/queue/next").status_code == 204
    row = stored(taken[0])
    assert (row.review_status, row.assigned_to) == ("in_review", "qa1") and row.assigned_at is not None
    audit = workbench.get("qa1", f"/api/conversations/{taken[0]}/audit").json()
    assert audit[-1]["action"] == "assign" and audit[-1]["to"] == "qa1"
    # the T2 reviewer still has their own team's items
    assert workbench.post("qa2", "/api/queue/next").status_code == 200


@pytest.mark.parametrize("login", ["trainer", "a101"])
def test_take_next_is_for_reviewers_only(workbench: Workbench, login: str) -> None:
    assert workbench.post(login, "/api/queue/next").status_code == 403


def test_two_reviewers_at_once_never_get_the_same_item(workbench: Workbench) -> None:
    logins = ["qa", "admin", "sup"]
    clients = {login: workbench.client(login) for login in logins}  # signed in beforehand
    n = len(CHATS) + 1
    barrier = threading.Barrier(len(logins))

    def work(login: str) -> list[str]:
        barrier.wait()
        got = []
        while True:
            r = clients[login].post("/api/queue/next")
            if r.status_code == 204:
                return got
            assert r.status_code == 200, r.text
            got.append(r.json()["id"])

    with ThreadPoolExecutor(len(logins)) as pool:
        results = list(pool.map(work, logins))
    everything = [i for got in results for i in got]
    assert len(everything) == len(set(everything)) == n


def test_a_supervisor_assigns_and_takes_back(workbench: Workbench, stored: Any) -> None:
    path = "/api/conversations/W-LEAK/assign"
    r = workbench.post("sup", path, {"to": "qa1"})
    assert r.status_code == 200, r.text
    assert (r.json()["assigned_to"], r.json()["status"]) == ("qa1", "in_review")
    assert stored("W-LEAK").assigned_to == "qa1"
    # take-next skips what is assigned
    taken = {workbench.post("qa", "/api/queue/next").json()["id"] for _ in range(len(CHATS))}
    assert "W-LEAK" not in taken
    audit = workbench.get("sup", "/api/conversations/W-LEAK/audit").json()
    assert audit[0]["action"] == "assign" and audit[0]["to"] == "qa1" and audit[0]["by"] == "sup"
    back = workbench.post("admin", path, {"to": None}).json()
    assert (back["assigned_to"], back["status"]) == (None, "open")


@pytest.mark.parametrize(("login", "to", "status"), [
    ("qa", "qa1", 403), ("trainer", "qa1", 403), ("a101", "qa1", 403),
    ("sup2", "qa2", 404),  # W-LEAK is T1: sup2 cannot see it
    ("sup", "qa2", 422),  # qa2 cannot see it
    ("sup", "trainer", 422), ("sup", "nobody", 422),
])
def test_who_may_assign_to_whom(workbench: Workbench, login: str, to: str, status: int) -> None:
    assert workbench.post(login, "/api/conversations/W-LEAK/assign", {"to": to}).status_code == status
