"""Agreement (REVIEW_API.md "Audit and agreement"): per item n, raw agreement and Cohen's kappa between the
machine and the reviewers over a period (null where undefined); `zhijian agreement` prints the same."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from conftest import T2, Workbench
from typer.testing import CliRunner

from pipeline.decisions import REVIEW_ITEMS
from pipeline.store.review import kappa

TODAY = dt.date.today()


def _review(wb: Workbench, login: str, conv_id: str, **values: Any) -> None:
    conv = wb.conv(login, conv_id)
    decisions = [{"item": k.replace("__", "."), "value": v, "reason": "复核"} for k, v in values.items()]
    r = wb.post(login, f"/api/conversations/{conv_id}/review", {"version": conv["version"], "decisions": decisions})
    assert r.status_code == 200, r.text


def _machine(wb: Workbench, conv_id: str, item: str) -> Any:
    return next(it["machine_value"] for it in wb.conv("admin", conv_id)["items"] if it["item"] == item)


def test_kappa_by_hand() -> None:
    assert kappa({}) == (0, None, None)
    assert kappa({(True, True): 3}) == (3, 1.0, None)  # one value only: chance agreement 1, kappa undefined
    n, agree, k = kappa({(True, True): 20, (True, False): 5, (False, True): 10, (False, False): 15})
    # p_o = 35/50 = 0.7; p_e = (25*30 + 25*20)/2500 = 0.5; kappa = 0.4
    assert (n, agree) == (50, 0.7) and k == pytest.approx(0.4)


def test_agreement_per_item_over_the_period(workbench: Workbench) -> None:
    ids = ["W-LEAK", "W-RUDE", "W-FEE", "W-NOISE"]
    escalation = {i: _machine(workbench, i, "escalation_risk") for i in ids}
    # reviewers agree with the machine on the first two, disagree on the others
    for n, conv_id in enumerate(ids):
        value = escalation[conv_id] if n < 2 else not escalation[conv_id]
        _review(workbench, "qa1", conv_id, escalation_risk=value)
    rows = workbench.get("sup", f"/api/agreement?from={TODAY}&to={TODAY}").json()
    assert [r["item"] for r in rows] == list(REVIEW_ITEMS)
    by_item = {r["item"]: r for r in rows}
    esc = by_item["escalation_risk"]
    table: dict[tuple[Any, Any], int] = {}
    for n, conv_id in enumerate(ids):
        pair = (json.dumps(escalation[conv_id]), json.dumps(escalation[conv_id] if n < 2 else not escalation[conv_id]))
        table[pair] = table.get(pair, 0) + 1
    want_n, want_agree, want_kappa = kappa(table)
    assert (esc["n"], esc["agreement"]) == (4, 0.5) == (want_n, want_agree)
    assert esc["kappa"] == (None if want_kappa is None else round(want_kappa, 4))
    assert by_item["complaint_type"] == {"item": "complaint_type", "n": 0, "agreement": None, "kappa": None}
    # the period: nothing reviewed yesterday
    yesterday = TODAY - dt.timedelta(days=1)
    rows = workbench.get("sup", f"/api/agreement?from={yesterday}&to={yesterday}").json()
    assert all(r["n"] == 0 for r in rows)
    # a team's supervisor sees only their team's reviews; the team filter narrows
    assert all(r["n"] == 0 for r in workbench.get("sup2", f"/api/agreement?from={TODAY}&to={TODAY}").json())
    assert all(r["n"] == 0 for r in workbench.get("sup", f"/api/agreement?team={T2}").json())
    # the CLI prints the same
    from pipeline.cli import app

    out = CliRunner().invoke(app, ["agreement", "--from", str(TODAY), "--to", str(TODAY), "--db", workbench.db_url,
                                   "--json"])
    assert out.exit_code == 0, out.output
    cli_rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert cli_rows == workbench.get("admin", f"/api/agreement?from={TODAY}&to={TODAY}").json()
    table_out = CliRunner().invoke(app, ["agreement", "--from", str(TODAY), "--to", str(TODAY),
                                         "--db", workbench.db_url])
    assert table_out.exit_code == 0 and "escalation_risk" in table_out.stdout and "0.500" in table_out.stdout


def test_only_the_latest_review_of_an_item_counts(workbench: Workbench) -> None:
    machine = _machine(workbench, "W-LEAK", "dead_air")
    _review(workbench, "qa", "W-LEAK", dead_air=not machine)
    _review(workbench, "qa", "W-LEAK", dead_air=machine)
    row = next(r for r in workbench.get("sup", "/api/agreement").json() if r["item"] == "dead_air")
    assert (row["n"], row["agreement"]) == (1, 1.0)


@pytest.mark.parametrize(("login", "status"), [("a101", 403), ("trainer", 200), ("qa", 200), ("admin", 200)])
def test_who_sees_agreement(workbench: Workbench, login: str, status: int) -> None:
    assert workbench.get(login, "/api/agreement").status_code == status


def test_bad_periods_are_422(workbench: Workbench) -> None:
    assert workbench.get("sup", f"/api/agreement?from={TODAY}&to={TODAY - dt.timedelta(days=3)}").status_code == 422
    assert workbench.get("sup", "/api/agreement?from=last-week").status_code == 422
