"""Ingest: find a day's calls and chats in the inbox and check them (spec section 1).

``discover`` yields one item per conversation, lazily: a ``CallJob`` to transcribe, a ``Transcript``
for a chat (its messages already are the turns), or a ``Failure`` naming the file and the problem.
Nothing here raises for bad input: one broken file never stops the night.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.errors import InputError
from pipeline.schema import ConversationMeta, Failure, Transcript, Turn

log = logging.getLogger("zhijian")

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".amr", ".wma"}
LAYOUTS = ("stereo_agent_left", "stereo_agent_right", "mono")


@dataclass(frozen=True)
class CallJob:
    """A call ready for speech recognition."""

    meta: ConversationMeta

    @property
    def audio_path(self) -> Path:
        assert self.meta.audio_path is not None
        return Path(self.meta.audio_path)


Item = CallJob | Transcript | Failure


def failure(conv_id: str, path: Path, err: InputError, stage: str = "ingest",
            meta: ConversationMeta | None = None) -> Failure:
    """A failed conversation; ``meta`` (when the inbox told who and what it was) puts it on that agent's record."""
    who = ({"channel": meta.channel, "agent_id": meta.agent_id, "agent_name": meta.agent_name, "team": meta.team,
            "site": meta.site, "started_at": meta.started_at} if meta is not None else {})
    return Failure(conversation_id=conv_id, source=str(path), stage=stage, code=err.code, message=str(err), **who)


def _read_json(path: Path, code: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(code, path, detail=f"not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise InputError(code, path, detail=f"{e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise InputError(code, path, detail="the top level must be a JSON object")
    return data


def _meta(data: dict[str, Any], path: Path, channel: str, code: str, **extra: Any) -> ConversationMeta:
    fields = {k: data.get(k) for k in ConversationMeta.model_fields if k in data and k not in ("source", "audio_path")}
    fields.update(channel=channel, source=str(path), **extra)
    for required in ("id", "agent_id"):
        if not isinstance(data.get(required), str) or not data[required].strip():
            raise InputError(code, path, field=required, detail="required, a non-empty string")
    try:
        return ConversationMeta(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(code, path, field=".".join(str(p) for p in err["loc"]), detail=err["msg"]) from None


def read_call(sidecar: Path, audio_files: dict[str, list[Path]]) -> CallJob:
    data = _read_json(sidecar, "E011")
    layout = data.get("audio_layout")
    if layout not in LAYOUTS:
        raise InputError("E041", sidecar, layout=layout)
    conv_id = str(data.get("id", "")).strip()
    candidates = audio_files.get(conv_id) or audio_files.get(sidecar.stem) or []
    if not candidates:
        raise InputError("E013", sidecar, pattern=f"{sidecar.parent}/{conv_id or sidecar.stem}.(wav|flac|mp3…)")
    if len(candidates) > 1:
        raise InputError("E014", sidecar, conv_id=conv_id, names=", ".join(p.name for p in candidates))
    return CallJob(_meta(data, sidecar, "call", "E012", audio_path=str(candidates[0])))


def read_chat(path: Path) -> Transcript:
    data = _read_json(path, "E020")
    meta = _meta(data, path, "chat", "E021")
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise InputError("E021", path, field="messages", detail="required, a list of messages")
    if not messages:
        raise InputError("E023", path)
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("text"), str):
            raise InputError("E021", path, field=f"messages[{i}].text", detail="each message needs a text string")
        if m.get("role") not in ("agent", "customer"):
            raise InputError("E022", path, index=i, role=m.get("role"))
        try:
            turns.append(Turn(index=i, role=m["role"], text=m["text"], at=m.get("at")))
        except ValidationError as e:
            raise InputError("E021", path, field=f"messages[{i}].at", detail=e.errors()[0]["msg"]) from None
    return Transcript(meta=meta, turns=turns)


def discover(inbox: Path, date: str) -> Iterator[Item]:
    """Every conversation of ``inbox/<date>/``, in a stable order; failures are items too."""
    day = inbox / date
    if not day.is_dir():
        raise InputError("E040", day)
    seen: dict[str, str] = {}

    def unique(item: Item, path: Path) -> Item:
        conv_id = item.conversation_id if isinstance(item, Failure) else item.meta.id
        if conv_id in seen:
            # the id is taken: the duplicate is recorded under a name of its own so it is kept, not lost
            err = InputError("E030", path, conv_id=conv_id, other=seen[conv_id])
            return failure(f"{conv_id}~{path.name}", path, err)
        seen[conv_id] = str(path)
        return item

    calls = day / "calls"
    audio_files: dict[str, list[Path]] = {}
    sidecars: list[Path] = []
    if calls.is_dir():
        for p in sorted(calls.iterdir()):
            if p.suffix.lower() == ".json":
                sidecars.append(p)
            elif p.is_file() and not p.name.startswith("."):
                audio_files.setdefault(p.stem, []).append(p)
    claimed: set[str] = set()
    for sidecar in sidecars:
        try:
            job = read_call(sidecar, audio_files)
            claimed.add(Path(job.meta.audio_path or "").stem)
            yield unique(job, sidecar)
        except InputError as e:
            claimed.add(sidecar.stem)
            yield unique(failure(sidecar.stem, sidecar, e), sidecar)
    for stem, paths in sorted(audio_files.items()):
        if stem not in claimed:
            for p in paths:
                err = InputError("E010", p, expected=str(p.with_suffix(".json")))
                yield unique(failure(stem, p, err), p)
    chats = day / "chats"
    if chats.is_dir():
        for p in sorted(chats.glob("*.json")):
            try:
                yield unique(read_chat(p), p)
            except InputError as e:
                yield unique(failure(p.stem, p, e), p)
