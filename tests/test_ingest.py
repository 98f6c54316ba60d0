"""Ingest (``pipeline.ingest``): a good inbox, and every kind of bad input as a coded ``Failure`` that
names the file. Problems only the audio shows are caught by the transcribe stage of the flow (its task
function, called directly here: no model is needed to find them)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from zhijian_testing import (
    AUDIO,
    DAY,
    GOOD_MESSAGES,
    copy_call,
    read_wav,
    sidecar,
    write_chat,
    write_json,
    write_wav,
)

from flows.nightly import transcribe
from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.ingest import CallJob, discover
from pipeline.schema import Failure, Transcript


def failures_of(inbox: Path, settings: Settings) -> list[Failure]:
    """What the night would record as failed: ingest failures, then transcribe-stage failures of calls
    whose audio is bad (a call that decodes and has speech would need the model: not allowed here)."""
    out: list[Failure] = []
    for item in discover(inbox, DAY):
        if isinstance(item, Failure):
            out.append(item)
        elif isinstance(item, CallJob):
            [result] = transcribe.fn([item], settings)
            assert isinstance(result, Failure), f"{item.meta.id} was expected to fail"
            out.append(result)
    return out


# -- a good inbox -----------------------------------------------------------------------------------

def test_good_inbox(tmp_path: Path) -> None:
    day = tmp_path / DAY
    ids = [copy_call(stem, day / "calls") for stem in ("stereo_short", "stereo_right_short", "mono_short")]
    write_chat(day / "chats" / "W20260101-0001.json", "W20260101-0001")

    items = list(discover(tmp_path, DAY))

    assert not [i for i in items if isinstance(i, Failure)]
    calls = [i for i in items if isinstance(i, CallJob)]
    assert sorted(c.meta.id for c in calls) == sorted(ids)
    for job in calls:
        assert job.meta.channel == "call"
        assert job.audio_path.is_file() and job.audio_path.stem == job.meta.id
        assert job.meta.source == str(day / "calls" / f"{job.meta.id}.json")
        assert job.meta.date == DAY
    layouts = {c.meta.id: c.meta.audio_layout for c in calls}
    assert layouts == {"C20260101-0001": "stereo_agent_left", "C20260101-0002": "stereo_agent_right",
                       "C20260101-0003": "mono"}
    by_id = {c.meta.id: c.meta for c in calls}
    assert by_id["C20260101-0001"].agent_id == "A101"
    assert by_id["C20260101-0001"].agent_name == "李静"
    assert by_id["C20260101-0001"].site == "阳光花园"

    [chat] = [i for i in items if isinstance(i, Transcript)]
    assert chat.meta.id == "W20260101-0001" and chat.meta.channel == "chat"
    assert [t.index for t in chat.turns] == list(range(len(GOOD_MESSAGES)))
    assert [t.role for t in chat.turns] == [m["role"] for m in GOOD_MESSAGES]
    assert [t.text for t in chat.turns] == [m["text"] for m in GOOD_MESSAGES]
    assert all(t.at is not None for t in chat.turns)
    assert chat.audio is None


def test_sidecar_found_by_its_own_name_when_id_differs(tmp_path: Path) -> None:
    calls = tmp_path / DAY / "calls"
    write_json(calls / "rec-1.json", sidecar("stereo_short"))
    shutil.copyfile(AUDIO / "stereo_short.flac", calls / "rec-1.flac")
    [job] = list(discover(tmp_path, DAY))
    assert isinstance(job, CallJob)
    assert job.meta.id == "C20260101-0001" and job.audio_path.name == "rec-1.flac"


def test_missing_day_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        list(discover(tmp_path, DAY))
    assert e.value.code == "E040" and str(tmp_path / DAY) in str(e.value)


# -- every kind of bad input ------------------------------------------------------------------------
# Each builder writes its bad file into the day folder and returns (conversation id, the file the
# failure must name, the stage that finds it).

Case = tuple[str, Path, str]


def _call(day: Path, conv_id: str, suffix: str = ".wav", **fields: object) -> tuple[Path, Path]:
    audio = day / "calls" / f"{conv_id}{suffix}"
    meta = write_json(day / "calls" / f"{conv_id}.json", sidecar("stereo_short", id=conv_id, **fields))
    return audio, meta


def empty_audio(day: Path) -> Case:
    audio, _ = _call(day, "C-empty")
    audio.write_bytes(b"")
    return "C-empty", audio, "transcribe"


def not_audio(day: Path) -> Case:
    audio, _ = _call(day, "C-text")
    audio.write_text("通话记录导出失败，请联系管理员。\n" * 50, encoding="utf-8")
    return "C-text", audio, "transcribe"


def truncated_wav(day: Path) -> Case:
    audio, _ = _call(day, "C-cut", audio_layout="mono")
    data = (AUDIO / "mono_short.wav").read_bytes()
    audio.write_bytes(data[: len(data) // 2])
    return "C-cut", audio, "transcribe"


def three_channels(day: Path) -> Case:
    audio, _ = _call(day, "C-3ch")
    x, rate = read_wav(AUDIO / "mono_short.wav")
    write_wav(audio, samples=np.vstack([x, x * 0.5, x * 0.25]), rate=rate)
    return "C-3ch", audio, "transcribe"


def rate_too_low(day: Path) -> Case:
    audio, _ = _call(day, "C-2k", audio_layout="mono")
    rng = np.random.default_rng(0)
    write_wav(audio, samples=0.1 * rng.standard_normal(2000 * 3), rate=2000)
    return "C-2k", audio, "transcribe"


def silent(day: Path) -> Case:
    audio, _ = _call(day, "C-silent")
    write_wav(audio, seconds=4.0, channels=2)
    return "C-silent", audio, "transcribe"


def too_short(day: Path) -> Case:
    audio, _ = _call(day, "C-short")
    write_wav(audio, seconds=0.2, channels=2)
    return "C-short", audio, "transcribe"


def stereo_layout_on_mono(day: Path) -> Case:
    audio, _ = _call(day, "C-mono", audio_layout="stereo_agent_left")
    shutil.copyfile(AUDIO / "mono_short.wav", audio)
    return "C-mono", audio, "transcribe"


def missing_sidecar(day: Path) -> Case:
    audio = day / "calls" / "C-nosidecar.flac"
    audio.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(AUDIO / "stereo_short.flac", audio)
    return "C-nosidecar", audio, "ingest"


def broken_sidecar(day: Path) -> Case:
    audio, meta = _call(day, "C-badjson")
    shutil.copyfile(AUDIO / "mono_short.wav", audio)
    meta.write_text('{"id": "C-badjson", "agent_id": "A101",', encoding="utf-8")
    return "C-badjson", meta, "ingest"


def sidecar_without_agent(day: Path) -> Case:
    audio, meta = _call(day, "C-noagent", agent_id=None)
    shutil.copyfile(AUDIO / "stereo_short.flac", audio)
    assert "agent_id" not in json.loads(meta.read_text(encoding="utf-8"))
    return "C-noagent", meta, "ingest"


def sidecar_without_audio(day: Path) -> Case:
    _, meta = _call(day, "C-noaudio")
    return "C-noaudio", meta, "ingest"


def bad_layout(day: Path) -> Case:
    audio, meta = _call(day, "C-layout", audio_layout="quad")
    shutil.copyfile(AUDIO / "stereo_short.flac", audio)
    return "C-layout", meta, "ingest"


def chat_bad_json(day: Path) -> Case:
    path = day / "chats" / "W-bad.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"id": "W-bad", "messages": [{"role": "agent", "text": "您好"', encoding="utf-8")
    return "W-bad", path, "ingest"


def chat_unknown_role(day: Path) -> Case:
    messages = [*GOOD_MESSAGES[:2], {"role": "robot", "at": "2026-01-01T20:03:00+08:00", "text": "自动回复"}]
    path = write_chat(day / "chats" / "W-role.json", "W-role", messages)
    return "W-role", path, "ingest"


def chat_no_messages(day: Path) -> Case:
    path = write_chat(day / "chats" / "W-empty.json", "W-empty", [])
    return "W-empty", path, "ingest"


def duplicate_id(day: Path) -> Case:
    write_chat(day / "chats" / "W-a.json", "W-dup")
    path = write_chat(day / "chats" / "W-b.json", "W-dup")
    return "W-dup~W-b.json", path, "ingest"


BAD_INPUTS: dict[str, tuple[Callable[[Path], Case], str]] = {
    "empty audio file": (empty_audio, "E001"),
    "non-audio file renamed .wav": (not_audio, "E002"),
    "truncated wav": (truncated_wav, "E003"),
    "three channels": (three_channels, "E004"),
    "2000 Hz": (rate_too_low, "E005"),
    "silence only": (silent, "E006"),
    "too short": (too_short, "E007"),
    "stereo layout on a mono file": (stereo_layout_on_mono, "E008"),
    "missing sidecar": (missing_sidecar, "E010"),
    "broken sidecar json": (broken_sidecar, "E011"),
    "sidecar without agent_id": (sidecar_without_agent, "E012"),
    "sidecar whose audio is missing": (sidecar_without_audio, "E013"),
    "bad audio_layout": (bad_layout, "E041"),
    "chat with bad json": (chat_bad_json, "E020"),
    "chat with unknown role": (chat_unknown_role, "E022"),
    "chat with no messages": (chat_no_messages, "E023"),
    "duplicate ids": (duplicate_id, "E030"),
}


@pytest.mark.parametrize(("build", "code"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_a_coded_failure_naming_the_file(
    build: Callable[[Path], Case], code: str, tmp_path: Path, settings: Settings
) -> None:
    conv_id, path, stage = build(tmp_path / DAY)

    failures = failures_of(tmp_path, settings)

    assert [(f.conversation_id, f.code) for f in failures] == [(conv_id, code)]
    [f] = failures
    assert f.stage == stage
    assert f.source == str(path)
    assert f.message.startswith(f"[{code}] ")
    assert str(path) in f.message


def test_one_bad_file_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    day = tmp_path / DAY
    copy_call("stereo_short", day / "calls")
    broken_sidecar(day)
    chat_no_messages(day)
    write_chat(day / "chats" / "W-ok.json", "W-ok")

    items = list(discover(tmp_path, DAY))

    assert sorted(i.meta.id for i in items if isinstance(i, CallJob | Transcript)) == ["C20260101-0001", "W-ok"]
    assert sorted(i.code for i in items if isinstance(i, Failure)) == ["E011", "E023"]


def test_duplicate_names_the_first_file(tmp_path: Path) -> None:
    day = tmp_path / DAY
    duplicate_id(day)
    failures = [i for i in discover(tmp_path, DAY) if isinstance(i, Failure)]
    assert len(failures) == 1
    assert str(day / "chats" / "W-a.json") in failures[0].message


def test_chat_and_call_sharing_an_id(tmp_path: Path) -> None:
    day = tmp_path / DAY
    conv_id = copy_call("stereo_short", day / "calls")
    chat = write_chat(day / "chats" / "W-clash.json", conv_id)
    items = list(discover(tmp_path, DAY))
    [f] = [i for i in items if isinstance(i, Failure)]
    assert (f.conversation_id, f.code, f.source) == (f"{conv_id}~W-clash.json", "E030", str(chat))
    assert [i.meta.id for i in items if isinstance(i, CallJob)] == [conv_id]


# -- the day's folder is the boundary; text the databases cannot hold --------------------------------


def test_symlink_leading_outside_the_day_is_refused(tmp_path: Path) -> None:
    """A chat (or a sidecar, or a recording) that is a symlink to a file outside the day's folder is an E032
    failure naming where it leads; a symlink that stays inside the folder is read."""
    day = tmp_path / "inbox" / DAY
    outside = write_chat(tmp_path / "elsewhere" / "W-out.json", "W-out")
    (day / "chats").mkdir(parents=True)
    (day / "chats" / "W-out.json").symlink_to(outside)
    write_chat(day / "chats" / "real" / "W-in.json", "W-in")
    (day / "chats" / "W-in.json").symlink_to(day / "chats" / "real" / "W-in.json")
    copy_call("stereo_short", day / "calls")
    sidecar_link = day / "calls" / "C-link.json"
    sidecar_link.symlink_to(tmp_path / "elsewhere" / "W-out.json")
    (tmp_path / "elsewhere" / "rec.flac").write_bytes((AUDIO / "mono_short.wav").read_bytes())
    write_json(day / "calls" / "C-audio.json", sidecar("mono_short", id="C-audio"))
    (day / "calls" / "C-audio.wav").symlink_to(tmp_path / "elsewhere" / "rec.flac")

    items = list(discover(tmp_path / "inbox", DAY))

    refused = {i.conversation_id: i for i in items if isinstance(i, Failure)}
    assert set(refused) == {"W-out", "C-link", "C-audio"}
    for f in refused.values():
        assert f.code == "E032" and str(tmp_path / "elsewhere") in f.message
    assert refused["C-audio"].agent_id == sidecar("mono_short")["agent_id"]  # the sidecar was inside: who it was
    assert sorted(i.meta.id for i in items if isinstance(i, Transcript)) == ["W-in"]
    assert [i.meta.id for i in items if isinstance(i, CallJob)] == [sidecar("stereo_short")["id"]]


def test_control_characters_are_removed_at_ingest(tmp_path: Path) -> None:
    day = tmp_path / DAY
    messages = [{"role": "customer", "text": "楼上\x00太吵\x07了\r\n请处理\t谢谢\ud800"},
                {"role": "agent", "text": "您好\x1b[31m，马上处理\x9f"}]
    path = day / "chats" / "W-ctl.json"
    path.parent.mkdir(parents=True)
    # ensure_ascii: the lone surrogate travels as a JSON escape, as a broken exporter would write it
    path.write_text(json.dumps({"id": "W-ctl", "agent_id": "A1\x00", "agent_name": "李\x01静", "messages": messages}),
                    encoding="utf-8")
    write_json(day / "calls" / "C-ctl.json",
               sidecar("stereo_short", id="C-ctl", site="阳光\x00花园", team="客服\x02组"))
    shutil.copyfile(AUDIO / "stereo_short.flac", day / "calls" / "C-ctl.flac")

    items = {i.meta.id: i for i in discover(tmp_path, DAY) if not isinstance(i, Failure)}

    chat = items["W-ctl"]
    assert isinstance(chat, Transcript)
    assert chat.meta.agent_id == "A1" and chat.meta.agent_name == "李静"
    assert chat.turns[0].text.startswith("楼上太吵了\n请处理\t谢谢")
    assert "\x00" not in chat.turns[0].text and "\ud800" not in chat.turns[0].text
    assert chat.turns[1].text.startswith("您好[31m，马上处理")
    call = items["C-ctl"]
    assert call.meta.site == "阳光花园" and call.meta.team == "客服组"


def test_failure_keeps_the_agent_the_sidecar_names(tmp_path: Path) -> None:
    day = tmp_path / DAY
    bad_layout(day)
    chat_unknown_role(day)
    got = {f.conversation_id: f for f in discover(tmp_path, DAY) if isinstance(f, Failure)}
    assert (got["C-layout"].agent_id, got["C-layout"].channel, got["C-layout"].site) == ("A101", "call", "阳光花园")
    assert got["C-layout"].started_at is not None
    assert (got["W-role"].agent_id, got["W-role"].channel) == ("A101", "chat")


@pytest.mark.parametrize("date", ["2026-12-1", "2026-13-01", "2026-02-30", "2026/12/01", " 2026-12-01", ""])
def test_bad_date_is_refused_before_reading(tmp_path: Path, date: str) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        list(discover(tmp_path, date))
    assert e.value.code == "E042"


def test_time_budget_stops_a_recording(tmp_path: Path, settings: Settings) -> None:
    """A recording that takes longer than its budget is stopped and recorded as failed (E009)."""
    day = tmp_path / DAY
    copy_call("mono_short", day / "calls")
    [job] = list(discover(tmp_path, DAY))
    assert isinstance(job, CallJob)
    tight = settings.model_copy(update={"night": settings.night.model_copy(update={"time_budget_seconds": 1e-6})})
    [result] = transcribe.fn([job], tight)
    assert isinstance(result, Failure) and result.code == "E009" and result.stage == "transcribe"
    assert result.agent_id == sidecar("mono_short")["agent_id"]


def test_recording_over_the_length_limit(tmp_path: Path, settings: Settings) -> None:
    """Decoding stops at the length limit (bounded memory): E015, without decoding the rest."""
    day = tmp_path / DAY
    copy_call("mono_short", day / "calls")
    [job] = list(discover(tmp_path, DAY))
    assert isinstance(job, CallJob)
    short = settings.model_copy(update={"night": settings.night.model_copy(update={"max_audio_seconds": 1.0})})
    [result] = transcribe.fn([job], short)
    assert isinstance(result, Failure) and result.code == "E015"
