"""Fuzzing the inbox with hypothesis: chat JSON, sidecars, truncated and garbled audio headers, odd Unicode.
Every case is a conversation read cleanly or a coded error that the store keeps as a failed row — never an
exception out of ingest or decoding, never a string the database refuses.

Bounded so the suite stays fast: a few dozen examples per property, no recognition model (decoding only)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from zhijian_testing import AUDIO, DAY, GOOD_MESSAGES, chat, sidecar

from pipeline import audio
from pipeline.budget import Budget
from pipeline.errors import InputError
from pipeline.ingest import CallJob, discover
from pipeline.schema import Failure, Transcript
from pipeline.store import Store

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

# odd Unicode: controls (NUL included), lone surrogates, bidi marks, zero-width joiners, astral emoji, CJK
ODD = st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\x9f", "\r", "\r\n", "\t", "\n", "\ud800",
                       "\udfff", "\u202e", "\u200d", "\ufeff", "\uffff", "😀", "𠮷", "物业", "'", '"', "\\", "%"])
TEXT = st.lists(st.one_of(ODD, st.text(max_size=6)), max_size=8).map("".join)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_subnormal=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    folder = Path(tempfile.mkdtemp(prefix="zhijian-fuzz-"))
    with Store(f"sqlite:///{folder / 'fuzz.db'}") as s:
        yield s
    shutil.rmtree(folder, ignore_errors=True)


def _storable(value: Any) -> None:
    """Every string the pipeline made is one both databases store: no control characters but tab and newline,
    no lone surrogates."""
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
        assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in value), repr(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _storable(k)
            _storable(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _storable(v)


def _check_day(root: Path, store: Store) -> list[Any]:
    """Discover the day: each item a call, a chat or a coded failure; each failure stored as a failed row."""
    items = list(discover(root, DAY))
    for item in items:
        assert isinstance(item, CallJob | Transcript | Failure)
        _storable(item.model_dump(mode="json") if not isinstance(item, CallJob) else item.meta.model_dump(mode="json"))
        if isinstance(item, Failure):
            assert item.code.startswith("E") and item.message.startswith(f"[{item.code}] ")
            store.save_failure(DAY, item)
            [row] = [f for f in store.failures(DAY) if f.conversation_id == item.conversation_id]
            assert (row.code, row.message) == (item.code, item.message)
    return items


def _fresh_day() -> Path:
    root = Path(tempfile.mkdtemp(prefix="zhijian-fuzz-day-"))
    (root / DAY / "chats").mkdir(parents=True)
    (root / DAY / "calls").mkdir(parents=True)
    return root


@FUZZ
@given(doc=JSON_VALUE)
def test_any_json_as_a_chat(doc: Any, store: Store) -> None:
    root = _fresh_day()
    try:
        (root / DAY / "chats" / "W-fuzz.json").write_text(json.dumps(doc), encoding="utf-8")
        [item] = _check_day(root, store)
        assert isinstance(item, Failure)  # no random value is a valid chat: it needs id, agent_id and messages
    finally:
        shutil.rmtree(root)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["id", "agent_id", "agent_name", "team", "site", "started_at",
                                                "channel", "customer_ref", "room"]), JSON_VALUE, max_size=5),
       messages=st.lists(st.fixed_dictionaries({"role": st.sampled_from(["agent", "customer", "robot", ""]),
                                                "text": TEXT}, optional={"at": JSON_VALUE}), max_size=4),
       raw=st.booleans())
def test_chat_fields_and_odd_text(fields: dict[str, Any], messages: list[dict[str, Any]], raw: bool,
                                  store: Store) -> None:
    """A chat with fuzzed header fields and messages of odd Unicode: read (its text storable) or coded."""
    root = _fresh_day()
    try:
        doc = {**chat("W-odd", messages or GOOD_MESSAGES), **fields}
        # raw: odd characters written as they are (not as JSON escapes), lone surrogates as the replacement
        text = json.dumps(doc, ensure_ascii=not raw)
        data = text.encode("utf-8", errors="replace" if raw else "strict")
        (root / DAY / "chats" / "W-odd.json").write_bytes(data)
        [item] = _check_day(root, store)
        if isinstance(item, Transcript):
            assert item.meta.id.strip() and item.turns
    finally:
        shutil.rmtree(root)


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_as_a_chat_or_sidecar(data: bytes, store: Store) -> None:
    root = _fresh_day()
    try:
        (root / DAY / "chats" / "W-bytes.json").write_bytes(data)
        (root / DAY / "calls" / "C-bytes.json").write_bytes(data)
        shutil.copyfile(AUDIO / "mono_short.wav", root / DAY / "calls" / "C-bytes.wav")
        items = _check_day(root, store)
        assert len(items) == 2 and all(isinstance(i, Failure) for i in items)
    finally:
        shutil.rmtree(root)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["id", "agent_id", "audio_layout", "site", "started_at", "team",
                                                "direction", "agent_name"]), JSON_VALUE, max_size=4))
def test_fuzzed_sidecar(fields: dict[str, Any], store: Store) -> None:
    root = _fresh_day()
    try:
        doc = {**sidecar("mono_short"), **fields}
        (root / DAY / "calls" / "C-side.json").write_text(json.dumps(doc), encoding="utf-8")
        shutil.copyfile(AUDIO / "mono_short.wav", root / DAY / "calls" / "C-side.wav")
        items = _check_day(root, store)
        assert items and all(isinstance(i, CallJob | Failure) for i in items)
    finally:
        shutil.rmtree(root)


WAV = (AUDIO / "mono_short.wav").read_bytes()
FLAC = (AUDIO / "stereo_short.flac").read_bytes()


@settings(max_examples=30, deadline=None)
# the fmt chunk's size field overwritten: FFmpeg then knows neither channel count nor layout
@example(source=("wav", WAV), cut=0, garble=[(19, 1)])
# the format tag zeroed: FFmpeg has no decoder for it (no codec context)
@example(source=("wav", WAV), cut=0, garble=[(20, 0)])
@given(source=st.sampled_from([("wav", WAV), ("flac", FLAC)]), cut=st.integers(0, 4096),
       garble=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=6))
def test_truncated_or_garbled_audio_headers(source: tuple[str, bytes], cut: int,
                                            garble: list[tuple[int, int]]) -> None:
    """Cut a recording short and overwrite bytes of its header: decoding gives audio or a coded InputError,
    in bounded time and memory, never another exception."""
    suffix, data = source
    damaged = bytearray(data[: cut + 44 if cut < 4000 else len(data)])
    for at, value in garble:
        if at < len(damaged):
            damaged[at] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"call.{suffix}"
        path.write_bytes(bytes(damaged))
        try:
            decoded = audio.decode(path, max_seconds=120.0, budget=Budget(30.0, path))
        except InputError as e:
            assert e.code in {"E001", "E002", "E003", "E004", "E005", "E007", "E009", "E015"}, e
        else:
            assert decoded.channels in (1, 2) and decoded.duration >= audio.MIN_SECONDS
