"""The ``zhijian`` command (``pipeline.cli``) through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from zhijian_testing import AUDIO, GOOD_CHAT_ID, Night, refs, sidecar

from pipeline.cli import app

runner = CliRunner()


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_export(night: Night) -> None:
    result = runner.invoke(app, ["export", "--date", night.date, "--db", night.db_url])
    assert result.exit_code == 0, result.output
    records = lines(result.stdout)
    assert [r["id"] for r in records] == sorted([*night.call_ids, GOOD_CHAT_ID])
    for r in records:
        assert {"id", "channel", "agent_id", "date", "score", "critical", "flags", "turns", "evidence"} <= set(r)
        assert r["date"] == night.date
    # Chinese is written as is, not as \\u escapes
    assert "阳光花园" in result.stdout


def test_export_of_an_empty_day(night: Night) -> None:
    result = runner.invoke(app, ["export", "--date", "2025-12-31", "--db", night.db_url])
    assert result.exit_code == 0 and result.stdout == ""


def test_agents(night: Night) -> None:
    result = runner.invoke(app, ["agents", "--date", night.date, "--db", night.db_url])
    assert result.exit_code == 0, result.output
    assert "A101" in result.stdout and "A102" in result.stdout
    assert "A103" not in result.stdout  # its only call failed: no scores to show


def test_transcribe_file(tmp_path: Path) -> None:
    """dead_air.flac is transcribed only here (the audio tests read its silences without the model)."""
    result = runner.invoke(app, ["transcribe", str(AUDIO / "dead_air.flac"), "--layout", "stereo_agent_left",
                                 "--site", "阳光花园"])
    assert result.exit_code == 0, result.output
    [record] = lines(result.stdout)
    assert record["file"] == str(AUDIO / "dead_air.flac")
    turns = record["turns"]
    assert turns and {t["role"] for t in turns} == {"agent", "customer"}
    assert turns[0]["role"] == "agent"
    assert all(t["start"] < t["end"] and t["text"] for t in turns)
    assert [t["start"] for t in turns] == sorted(t["start"] for t in turns)
    # the long wait: nothing is said between the customer's question and the agent's answer
    ref = refs()[sidecar("dead_air")["id"]]
    gap_start, gap_end = ref[1]["end"], ref[2]["start"]
    assert not any(t["start"] < gap_end - 1 and t["end"] > gap_start + 1 for t in turns)


def test_transcribe_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_text("not a recording\n" * 40, encoding="utf-8")
    result = runner.invoke(app, ["transcribe", str(bad), "--layout", "stereo_agent_left"])
    assert result.exit_code == 1
    [record] = lines(result.stdout)
    assert record["file"] == str(bad)
    assert record["error"] == "E002"
    assert str(bad) in record["message"] and "turns" not in record


def test_transcribe_unknown_layout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["transcribe", str(AUDIO / "mono_short.wav"), "--layout", "quad"])
    assert result.exit_code == 2
    assert "quad" in result.output


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"], ["transcribe", "--help"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "Usage" in result.output
