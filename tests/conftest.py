"""Shared fixtures: one data dir (and one assembled Whisper model) per session, each audio fixture
transcribed at most once, and one tiny nightly run whose database the flow and CLI tests share."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings when it is first imported (by flows.nightly, in a test module), so these
# go in before any test module is collected: a private, throw-away Prefect home (ephemeral API,
# its own SQLite database), quiet logs and nothing phoned home.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="zhijian-tests-prefect-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# a fresh checkout's first start of the ephemeral API compiles and migrates; 20 s (Prefect's default) is too short
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.pop("PREFECT_API_URL", None)

from zhijian_testing import (  # noqa: E402
    AUDIO,
    BAD_CHAT_ID,
    DAY,
    GOOD_CHAT_ID,
    NOT_AUDIO_ID,
    SILENT_ID,
    Night,
    copy_call,
    write_chat,
    write_wav,
)

from pipeline.config import Settings, get_settings  # noqa: E402
from pipeline.ingest import read_call  # noqa: E402
from pipeline.schema import Transcript  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def zhijian_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ZHIJIAN_DATA_DIR for the whole session, set before the first ``get_settings()``."""
    data = tmp_path_factory.mktemp("zhijian-data")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZHIJIAN_DATA_DIR", str(data))
    for var in ("ZHIJIAN_DB_URL", "ZHIJIAN_ASR__MODEL", "ZHIJIAN_JUDGES"):
        mp.delenv(var, raising=False)
    get_settings.cache_clear()
    yield data
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(zhijian_data_dir: Path) -> Settings:
    s = get_settings()
    assert s.data_dir == zhijian_data_dir
    return s


def _transcribe(stem: str, settings: Settings) -> Transcript:
    from pipeline.asr import transcribe_call

    audio = next(p for p in AUDIO.glob(f"{stem}.*") if p.suffix != ".json")
    job = read_call(AUDIO / f"{stem}.json", {stem: [audio]})
    return transcribe_call(job.meta, settings)


@pytest.fixture(scope="session")
def stereo_transcript(settings: Settings) -> Transcript:
    return _transcribe("stereo_short", settings)


@pytest.fixture(scope="session")
def stereo_right_transcript(settings: Settings) -> Transcript:
    return _transcribe("stereo_right_short", settings)


@pytest.fixture(scope="session")
def mono_transcript(settings: Settings) -> Transcript:
    return _transcribe("mono_short", settings)


# -- one tiny night through the Prefect flow --------------------------------------------------------


@pytest.fixture(scope="session")
def night(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Night:
    """``inbox/<DAY>/`` with two real calls, a silent call, a non-audio "call", a good and a broken
    chat; the flow run once over it into a fresh SQLite database."""
    from flows.nightly import nightly

    root = tmp_path_factory.mktemp("night")
    inbox = root / "inbox"
    day = inbox / DAY
    call_ids = [copy_call("stereo_short", day / "calls"), copy_call("mono_short", day / "calls")]

    sidecar = json.loads((AUDIO / "stereo_short.json").read_text(encoding="utf-8"))
    write_wav(day / "calls" / f"{SILENT_ID}.wav", seconds=3.0, channels=2)
    (day / "calls" / f"{SILENT_ID}.json").write_text(
        json.dumps({**sidecar, "id": SILENT_ID, "agent_id": "A103"}, ensure_ascii=False), encoding="utf-8")
    (day / "calls" / f"{NOT_AUDIO_ID}.wav").write_text("这不是录音，只是改了扩展名的文本。\n" * 20, encoding="utf-8")
    (day / "calls" / f"{NOT_AUDIO_ID}.json").write_text(
        json.dumps({**sidecar, "id": NOT_AUDIO_ID}, ensure_ascii=False), encoding="utf-8")

    write_chat(day / "chats" / f"{GOOD_CHAT_ID}.json", GOOD_CHAT_ID)
    (day / "chats" / f"{BAD_CHAT_ID}.json").write_text('{"id": "W20260101-0002", "messages": [', encoding="utf-8")

    db_url = f"sqlite:///{root / 'night.db'}"
    summary = nightly(str(inbox), DAY, db_url)
    return Night(inbox=inbox, date=DAY, db_url=db_url, summary=summary, call_ids=call_ids)
