"""`zhijian report agent|team|site|compare` and `zhijian signals`: the same numbers as the builders, as JSON
or text, and the files they are asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import END, START
from test_report_agent import PERIOD, training
from test_report_compare import AFTER, BEFORE
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.reports.agent import agent_report
from pipeline.reports.compare import compare_report
from pipeline.reports.dashboard import group_report
from pipeline.reports.signals import signals_for
from pipeline.store import Store

runner = CliRunner()
SPAN = ["--from", START.isoformat(), "--to", END.isoformat()]


def url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_report_agent_json_and_text(store: Store) -> None:
    out = invoke("report", "agent", "A104", *SPAN, "--json", "--db", url(store))
    assert json.loads(out) == agent_report(store.engine, "A104", PERIOD, training())
    text = invoke("report", "agent", "A104", *SPAN, "--db", url(store))
    assert "周强" in text and "复述确认" in text and "沟通技巧：复述确认" in text


def test_report_team_and_site(store: Store) -> None:
    out = invoke("report", "team", "海棠湾夜班组", *SPAN, "--json", "--db", url(store))
    assert json.loads(out) == group_report(store.engine, "team", "海棠湾夜班组", PERIOD, 30.0)
    out = invoke("report", "site", "阳光花园", *SPAN, "--json", "--db", url(store))
    assert json.loads(out) == group_report(store.engine, "site", "阳光花园", PERIOD, 30.0)
    assert "agents ranked" in invoke("report", "site", "阳光花园", *SPAN, "--db", url(store))


def test_report_compare_and_signals(store: Store) -> None:
    before = f"{BEFORE.start}..{BEFORE.end}"
    after = f"{AFTER.start}..{AFTER.end}"
    out = invoke("report", "compare", "agent", "A206", "--before", before, "--after", after, "--json",
                 "--db", url(store))
    assert json.loads(out) == compare_report(store.engine, "agent", "A206", BEFORE, AFTER)
    out = invoke("signals", "--date", END.isoformat(), "--json", "--db", url(store))
    assert json.loads(out) == signals_for(store, END)
    assert "spikes" in invoke("signals", "--date", END.isoformat(), "--db", url(store))


def test_files(store: Store, tmp_path: Path) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("files are the same whatever the database")
    invoke("report", "agent", "A104", *SPAN, "--json", "--db", url(store), "--html", str(tmp_path / "a.html"),
           "--pdf", str(tmp_path / "a.pdf"), "--csv", str(tmp_path / "csv"))
    assert "周强" in (tmp_path / "a.html").read_text(encoding="utf-8")
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert {p.name for p in (tmp_path / "csv").iterdir()} == {
        "summary.csv", "items.csv", "weekly.csv", "weakest.csv", "examples.csv"}
    invoke("report", "site", "海棠湾", *SPAN, "--db", url(store), "--html", str(tmp_path / "s.html"),
           "--csv", str(tmp_path / "site"))
    assert "海棠湾" in (tmp_path / "s.html").read_text(encoding="utf-8")
    assert (tmp_path / "site" / "flags_per_day.csv").is_file()
    invoke("signals", "--date", END.isoformat(), "--db", url(store), "--csv", str(tmp_path / "sig"))
    assert (tmp_path / "sig" / "spikes.csv").is_file() and (tmp_path / "sig" / "repeats.csv").is_file()


def test_errors_exit_2(store: Store, tmp_path: Path) -> None:
    for args in (["report", "agent", "A999", *SPAN], ["report", "team", "无此组", *SPAN],
                 ["report", "agent", "A104", "--from", "2026-11-30", "--to", "2026-11-01"],
                 ["report", "agent", "A104", "--from", "yesterday", "--to", "2026-11-01"],
                 ["report", "compare", "site", "x", "--before", "2026-10-01..2026-10-02", "--after", "2026-10-03"],
                 ["signals", "--date", "2026-13-01"]):
        result = runner.invoke(app, [*args, "--db", url(store)])
        assert result.exit_code == 2, (args, result.output)


def test_a_new_store_is_migrated_on_first_report(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'new' / 'z.db'}"
    result = runner.invoke(app, ["report", "agent", "A1", *SPAN, "--db", db])
    assert result.exit_code == 2 and "E090" in result.output
    assert (tmp_path / "new" / "z.db").is_file()
