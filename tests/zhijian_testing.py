"""Small helpers for the tests: writing audio, sidecars and chats, reading refs, character error rate."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
import uuid
import wave
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.text import numeral_to_digits

AUDIO = Path(__file__).parent / "fixtures" / "audio"
DAY = "2026-01-01"

# the tiny night of conftest.night
GOOD_CHAT_ID = "W20260101-0001"
BAD_CHAT_ID = "W20260101-0002"
SILENT_ID = "C20260101-0901"
NOT_AUDIO_ID = "C20260101-0902"


@dataclass
class Night:
    inbox: Path
    date: str
    db_url: str
    summary: dict[str, Any]
    call_ids: list[str]  # the calls that should be analysed


def write_wav(path: Path, *, seconds: float = 2.0, channels: int = 1, rate: int = 8000,
              samples: np.ndarray | None = None) -> Path:
    """16-bit PCM WAV. ``samples``: float in [-1, 1], shape (n,) or (channels, n); default silence."""
    if samples is None:
        samples = np.zeros((channels, int(seconds * rate)), np.float32)
    samples = np.atleast_2d(samples)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").T.copy()  # interleaved frames
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(channels × n float samples, rate) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels).T
    return pcm.astype(np.float32) / 32768, rate


def sidecar(stem: str, **overrides: Any) -> dict[str, Any]:
    """A fixture's sidecar as a dict, with fields replaced (a value of None removes the field)."""
    data = json.loads((AUDIO / f"{stem}.json").read_text(encoding="utf-8"))
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def copy_call(stem: str, calls: Path) -> str:
    """Copy a fixture recording into ``calls/`` as ``<id>.<ext>`` with its sidecar ``<id>.json``."""
    meta = sidecar(stem)
    audio = next(p for p in AUDIO.glob(f"{stem}.*") if p.suffix != ".json")
    calls.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(audio, calls / f"{meta['id']}{audio.suffix}")
    write_json(calls / f"{meta['id']}.json", meta)
    return str(meta["id"])


GOOD_MESSAGES = [
    {"role": "customer", "at": "2026-01-01T20:01:00+08:00", "text": "你好，我家楼上装修太吵了，中午都不停。"},
    {"role": "agent", "at": "2026-01-01T20:02:10+08:00",
     "text": "您好，阳光花园物业在线客服，请问您是几栋几单元几号？"},
    {"role": "customer", "at": "2026-01-01T20:03:00+08:00", "text": "3栋2单元1502。"},
    {"role": "agent", "at": "2026-01-01T20:04:00+08:00",
     "text": "好的，我马上通知巡逻保安，20分钟内上门处理。请问还有其他问题吗？"},
    {"role": "customer", "at": "2026-01-01T20:04:30+08:00", "text": "没有了，谢谢。"},
    {"role": "agent", "at": "2026-01-01T20:05:00+08:00", "text": "感谢您的反馈，再见！"},
]


def chat(conv_id: str, messages: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": conv_id, "channel": "chat", "agent_id": "A101", "agent_name": "李静",
        "team": "阳光花园客服组", "site": "阳光花园", "started_at": "2026-01-01T20:01:00+08:00",
        "messages": GOOD_MESSAGES if messages is None else messages,
    }
    data.update(overrides)
    return data


def write_chat(path: Path, conv_id: str, messages: list[dict[str, Any]] | None = None,
               **overrides: Any) -> Path:
    return write_json(path, chat(conv_id, messages, **overrides))


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def refs() -> dict[str, list[dict[str, Any]]]:
    """Reference turns (role, start, end, text) by conversation id, in speaking order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(load_jsonl(AUDIO / "refs.jsonl"), key=lambda r: (r["id"], r["turn"])):
        out[r["id"]].append(r)
    return dict(out)


# -- character error rate, normalised as ../shared/tools/score.py does ------------------------------

_NUMERAL_RUN = re.compile("[零一二三四五六七八九〇两幺十百千万]+")


def norm(s: str) -> str:
    """NFKC, lower case, numerals as digits, no punctuation or spaces."""
    s = unicodedata.normalize("NFKC", s).lower()
    s = _NUMERAL_RUN.sub(lambda m: numeral_to_digits(m.group()), s)
    return "".join(ch for ch in s if ch.isalnum())


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def cer(hyp: str, ref: str) -> float:
    h, r = norm(hyp), norm(ref)
    return edit_distance(h, r) / max(1, len(r))


# -- PostgreSQL: a fresh schema per test -----------------------------------------------------------

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url(prefix: str = "zj_test") -> Iterator[str]:
    """A store URL on a fresh PostgreSQL schema of its own (dropped afterwards). search_path is set on every
    connection, so the store's tables and Alembic's version table all land there. The server must be up;
    ZHIJIAN_SKIP_POSTGRES=1 skips instead."""
    import psycopg
    import pytest
    from sqlalchemy import create_engine, text

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3).close()
    except psycopg.Error as e:
        if os.environ.get("ZHIJIAN_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL not reachable (ZHIJIAN_SKIP_POSTGRES=1): {e}")
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN} is not reachable: {e}\n"
            "Start it (pg_ctlcluster --skip-systemctl-redirect <version> main start) "
            "or set ZHIJIAN_SKIP_POSTGRES=1 to skip the PostgreSQL cases.",
            pytrace=False,
        )
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
