"""Before/after: each skill's change and its two-proportion z-test, checked against the records and against
scipy's chi-square test (without continuity correction the pooled z-test's p is the same number); the score
against scipy's Welch t-test."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from conftest import START
from scipy import stats
from test_report_agent import exported

from pipeline.reports.compare import compare_report, two_proportion
from pipeline.reports.queries import ITEMS, Period
from pipeline.store import Store

BEFORE = Period(START, START + dt.timedelta(days=13))
AFTER = Period(START + dt.timedelta(days=14), START + dt.timedelta(days=27))


def test_two_proportion_z_test() -> None:
    z, p = two_proportion(30, 100, 50, 100)
    assert z is not None and p is not None
    pooled = 80 / 200
    assert z == pytest.approx((0.5 - 0.3) / math.sqrt(pooled * (1 - pooled) * (2 / 100)))
    chi2, p_chi, _, _ = stats.chi2_contingency([[30, 70], [50, 50]], correction=False)
    assert p == pytest.approx(p_chi)
    assert z * z == pytest.approx(chi2)
    assert two_proportion(0, 0, 5, 10) == (None, None)
    assert two_proportion(10, 10, 20, 20) == (0.0, 1.0)


def test_course_that_worked(store: Store) -> None:
    """吴婷 (A206) stopped skipping the restatement halfway through: larger than noise; the rest is not."""
    report = compare_report(store.engine, "agent", "A206", BEFORE, AFTER)
    assert (report["scope"], report["agent"], report["agent_name"]) == ("agent", "A206", "吴婷")
    before = [r for r in exported(store, BEFORE) if r["agent_id"] == "A206"]
    after = [r for r in exported(store, AFTER) if r["agent_id"] == "A206"]
    assert (report["before"]["conversations"], report["after"]["conversations"]) == (len(before), len(after))
    rows = {r["item"]: r for r in report["items"]}
    assert list(rows) == [*ITEMS, "courtesy"]
    for item in ITEMS:
        name = item.removeprefix("script.")
        x1, x2 = sum(r["script"][name] for r in before), sum(r["script"][name] for r in after)
        n1, n2 = len(before), len(after)
        row = rows[item]
        assert (row["before_n"], row["after_n"]) == (n1, n2)
        assert row["before_rate"] == round(x1 / n1, 4) and row["after_rate"] == round(x2 / n2, 4)
        assert row["change"] == round(x2 / n2 - x1 / n1, 4)
        if 0 < x1 + x2 < n1 + n2:
            _, p, _, _ = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
            assert row["p"] == pytest.approx(p, rel=1e-3)
        else:
            assert row["p"] == 1.0
        assert row["verdict"] == ("larger than noise" if row["p"] < 0.05 else "within noise")
    assert rows["script.restate"]["verdict"] == "larger than noise"
    assert rows["script.restate"]["direction"] == "better"
    clean = [sum(not r["courtesy_violation_turns"] for r in side) for side in (before, after)]
    assert (rows["courtesy"]["before_rate"], rows["courtesy"]["after_rate"]) == (
        round(clean[0] / len(before), 4), round(clean[1] / len(after), 4))
    t = stats.ttest_ind([r["score"] for r in after], [r["score"] for r in before], equal_var=False)
    assert report["score"]["t"] == pytest.approx(t.statistic, abs=1e-3)
    assert report["score"]["p"] == pytest.approx(t.pvalue, rel=1e-3)
    assert "two-proportion z-test" in report["test"]


def test_team_compare_and_empty_side(store: Store) -> None:
    report = compare_report(store.engine, "team", "海棠湾夜班组", BEFORE, AFTER)
    assert report["team"] == "海棠湾夜班组" and report["before"]["conversations"] > 0
    empty = Period(dt.date(2020, 1, 1), dt.date(2020, 1, 31))
    report = compare_report(store.engine, "agent", "A206", empty, AFTER)
    assert {r["verdict"] for r in report["items"]} == {"not enough data"}
    assert report["score"]["verdict"] == "not enough data"
