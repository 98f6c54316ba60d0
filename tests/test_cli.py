"""The ``zhijian`` command (``pipeline.cli``) through Typer's test runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from zhijian_testing import AUDIO, BAD_CHAT_ID, GOOD_CHAT_ID, NOT_AUDIO_ID, SILENT_ID, Night, refs, sidecar

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
    assert result.exit_code == 1 and result.stdout == ""
    assert "no results stored for 2025-12-31" in result.output


@pytest.mark.parametrize("command", ["export", "agents", "failures"])
def test_nothing_stored_says_so(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = runner.invoke(app, [command, "--date", "2026-01-01", "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 1 and "nothing stored" in result.output
    assert not missing.exists()  # a reader never creates a database


def test_agents_of_an_empty_day(night: Night) -> None:
    result = runner.invoke(app, ["agents", "--date", "2025-12-31", "--db", night.db_url])
    assert result.exit_code == 1 and "no results stored" in result.output


@pytest.mark.parametrize("command", ["run", "export", "agents", "failures"])
@pytest.mark.parametrize("date", ["2026-12-1", "2026-02-30", "20261201", "yesterday"])
def test_bad_date_is_one_line(command: str, date: str, tmp_path: Path) -> None:
    (tmp_path / date).mkdir()
    extra = ["--inbox", str(tmp_path)] if command == "run" else []
    result = runner.invoke(app, [command, *extra, "--date", date, "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"[E042] date {date!r} is not a real date written YYYY-MM-DD"]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("url", ["nonsense", "mysql+nodriver://u@h/db", "postgresql+psycopg://nobody@127.0.0.1:1/x"])
@pytest.mark.parametrize("command", ["run", "export"])
def test_bad_db_is_one_line(command: str, url: str, tmp_path: Path) -> None:
    (tmp_path / "2026-01-01").mkdir()
    extra = ["--inbox", str(tmp_path)] if command == "run" else []
    result = runner.invoke(app, [command, *extra, "--date", "2026-01-01", "--db", url])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("[E043] ") and url in line


def test_run_without_the_day_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--inbox", str(tmp_path), "--date", "2026-01-01",
                                 "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2 and "[E040]" in result.output and not (tmp_path / "x.db").exists()


def test_failures(night: Night) -> None:
    result = runner.invoke(app, ["failures", "--date", night.date, "--db", night.db_url])
    assert result.exit_code == 0, result.output
    for code in ("E006", "E002", "E020"):
        assert code in result.stdout
    assert "A103" in result.stdout  # a failed call stays on its agent's record
    as_json = runner.invoke(app, ["failures", "--date", night.date, "--db", night.db_url, "--json"])
    got = {r["conversation_id"]: r["code"] for r in lines(as_json.stdout)}
    assert got == {SILENT_ID: "E006", NOT_AUDIO_ID: "E002", BAD_CHAT_ID: "E020"}
    assert all(str(night.inbox) in r["source"] for r in lines(as_json.stdout))


def test_db_upgrade_and_info(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'new.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--db", db])
    assert result.exit_code == 0, result.output
    from pipeline.store.repository import head_revision

    assert f"revision {head_revision()}" in result.stdout
    again = runner.invoke(app, ["db", "upgrade", "--db", db])
    assert again.exit_code == 0
    info = runner.invoke(app, ["db", "info", "--data-dir"])
    from pipeline.config import get_settings

    assert info.stdout.strip() == str(get_settings().data_dir)
    # a database upgraded: readers open it; an empty day says so
    assert runner.invoke(app, ["failures", "--date", "2026-01-01", "--db", db]).exit_code == 1


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


def test_transcribe_reads_the_sidecar(tmp_path: Path) -> None:
    """With no --layout, the sidecar beside the file gives the layout (stereo, agent on the right) and site."""
    audio = tmp_path / "call.flac"
    shutil.copyfile(AUDIO / "stereo_right_short.flac", audio)
    (tmp_path / "call.json").write_text(json.dumps(sidecar("stereo_right_short"), ensure_ascii=False),
                                        encoding="utf-8")
    result = runner.invoke(app, ["transcribe", str(audio)])
    assert result.exit_code == 0, result.output
    [record] = lines(result.stdout)
    assert {t["role"] for t in record["turns"]} == {"agent", "customer"}
    ref = refs()[sidecar("stereo_right_short")["id"]]
    assert record["turns"][0]["role"] == ref[0]["role"]


def test_transcribe_with_a_broken_sidecar(tmp_path: Path) -> None:
    audio = tmp_path / "call.wav"
    shutil.copyfile(AUDIO / "mono_short.wav", audio)
    (tmp_path / "call.json").write_text("{broken", encoding="utf-8")
    result = runner.invoke(app, ["transcribe", str(audio)])
    assert result.exit_code == 1
    [record] = lines(result.stdout)
    assert record["error"] == "E011"


def test_transcribe_unknown_layout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["transcribe", str(AUDIO / "mono_short.wav"), "--layout", "quad"])
    assert result.exit_code == 2
    assert "quad" in result.output


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"], ["transcribe", "--help"], ["train", "--help"],
                                  ["correct", "--help"], ["eval", "--help"], ["run", "--help"],
                                  ["failures", "--help"], ["db", "--help"], ["db", "upgrade", "--help"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "Usage" in result.output


# -- learning: correct → train, and eval ----------------------------------------------------------------

TINY = Path(__file__).parent / "fixtures" / "corpus" / "tiny.jsonl"


def _night_copy(night: Night, tmp_path: Path) -> str:
    src = Path(night.db_url.removeprefix("sqlite:///"))
    dst = tmp_path / "night.db"
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


def test_correct_records_machine_and_human_values(night: Night, tmp_path: Path) -> None:
    db = _night_copy(night, tmp_path)
    result = runner.invoke(app, ["correct", GOOD_CHAT_ID, "complaint_type", "noise", "--reason", "楼上装修噪音",
                                 "--reviewer", "qa01", "--db", db])
    assert result.exit_code == 0, result.output
    assert "noise" in result.output
    from pipeline.store import Store

    with Store(db) as store:
        [c] = store.corrections()
    assert (c.conversation_id, c.item, c.human_value, c.reviewer) == (GOOD_CHAT_ID, "complaint_type", "noise", "qa01")
    assert isinstance(c.machine_value, str)  # what the machine had said


@pytest.mark.parametrize(("args", "message"), [
    (["W-nope", "complaint_type", "noise"], "no analysed conversation"),
    ([GOOD_CHAT_ID, "complaint_type", "weather"], "E072"),
    ([GOOD_CHAT_ID, "script.smile", "true"], "E072"),
])
def test_correct_rejects_bad_input(night: Night, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["correct", *args, "--db", _night_copy(night, tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_train_includes_corrections(night: Night, tmp_path: Path) -> None:
    db = _night_copy(night, tmp_path)
    assert runner.invoke(app, ["correct", GOOD_CHAT_ID, "script.restate", "false", "--db", db]).exit_code == 0
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--corpus", str(TINY), "--out", str(out), "--epochs", "1", "--db", db])
    assert result.exit_code == 0, result.output
    assert "16 corpus conversations and 1 corrected" in result.output
    assert (out / "CARD.md").is_file() and (out / "judge.json").is_file()


def test_train_with_a_bad_corpus(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--corpus", str(bad), "--out", str(tmp_path / "m"), "--no-corrections"])
    assert result.exit_code == 2 and "E070" in result.output and "bad.jsonl:1" in result.output


def test_eval_prints_agreement_per_label(night: Night, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    good = {"id": GOOD_CHAT_ID, "complaint_type": "noise",
            "script": {"greeting": True, "identity_check": True, "restate": False, "commitment": True,
                       "ownership": True, "closing": True, "farewell": True},
            "courtesy_violation_turns": [], "customer_emotion": "dissatisfied", "escalation_risk": False,
            "dead_air": False}
    labels.write_text(json.dumps(good, ensure_ascii=False) + "\n", encoding="utf-8")
    cache = tmp_path / "cache.jsonl"
    args = ["eval", "--inbox", str(night.inbox), "--date", night.date, "--labels", str(labels), "--cache", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for heading in ("script items", "kappa", "complaint type confusion", "customer emotion", "courtesy_violation"):
        assert heading in result.output
    assert cache.is_file() and len(cache.read_text(encoding="utf-8").splitlines()) == 2  # the two real calls
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["headline"]["coverage"] == 1.0
    assert set(report["script_kappa"]) == {"greeting", "identity_check", "restate", "commitment", "ownership",
                                           "closing", "farewell"}


def test_eval_with_bad_labels(night: Night, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "W1"}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", "--inbox", str(night.inbox), "--date", night.date, "--labels", str(labels)])
    assert result.exit_code == 2 and "E076" in result.output
