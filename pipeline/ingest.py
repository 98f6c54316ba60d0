"""Ingest: find a day's calls and chats in the inbox and check them (spec section 1).

``discover`` yields one item per conversation, lazily: a ``CallJob`` to transcribe, a ``Transcript``
for a chat (its messages already are the turns), or a ``Failure`` naming the file and the problem.
Nothing here raises for bad input: one broken file never stops the night.

Only files inside the day's folder are read: a symlink that leads outside it is refused (E032). Text the
databases cannot hold — control characters (NUL and the like; tab and newline stay) and lone surrogates
from ``\\ud800``-style JSON escapes or undecodable file names — is removed or replaced here, once, for every
string of a chat or sidecar, so SQLite and PostgreSQL store the same thing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.errors import ConfigError, InputError
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

# C0 controls but tab and newline, DEL, C1 controls; and lone surrogates (never valid UTF-8)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as every database can store it: CR LF and CR become LF, other control characters are
    removed, a lone surrogate becomes U+FFFD."""
    if text.isprintable():
        return text  # the common case, fast
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _clean(value: Any) -> Any:
    """Every string of a parsed JSON document (keys too) through ``clean_text``."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    return value


def check_date(date: str) -> str:
    """``date`` if it is a real day written YYYY-MM-DD (the inbox folder's name), else ConfigError E042."""
    try:
        if len(date) == 10 and dt.date.fromisoformat(date).isoformat() == date:
            return date
    except ValueError:
        pass
    raise ConfigError("E042", date=date)


def failure(conv_id: str, path: Path, err: InputError, stage: str = "ingest",
            meta: ConversationMeta | None = None, who: Mapping[str, Any] | None = None) -> Failure:
    """A failed conversation; ``meta`` (when the inbox told who and what it was) or ``who`` (what could be read
    of a broken sidecar or chat) puts it on that agent's record."""
    known = ({"channel": meta.channel, "agent_id": meta.agent_id, "agent_name": meta.agent_name, "team": meta.team,
              "site": meta.site, "started_at": meta.started_at} if meta is not None else dict(who or {}))
    return Failure(conversation_id=clean_text(conv_id), source=clean_text(str(path)), stage=stage, code=err.code,
                   message=clean_text(str(err)), **known)


def _who(path: Path, channel: str) -> dict[str, Any]:
    """Who a broken sidecar or chat names, as far as it can be read (nothing if it cannot be)."""
    try:
        data = _read_json(path, "E011")
    except InputError:
        return {}
    out: dict[str, Any] = {"channel": channel}
    for key in ("agent_id", "agent_name", "team", "site"):
        if isinstance(data.get(key), str) and data[key].strip():
            out[key] = data[key].strip() if key == "agent_id" else data[key]
    if isinstance(data.get("started_at"), str):
        with contextlib.suppress(ValueError):
            out["started_at"] = dt.datetime.fromisoformat(data["started_at"])
    return out


def _read_json(path: Path, code: str) -> dict[str, Any]:
    try:
        data = _clean(json.loads(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError as e:
        raise InputError(code, path, detail=f"not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise InputError(code, path, detail=f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InputError(code, path, detail="nested too deeply") from None
    except OSError as e:
        raise InputError(code, path, detail=f"cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise InputError(code, path, detail="the top level must be a JSON object")
    return data


def _meta(data: dict[str, Any], path: Path, channel: str, code: str, **extra: Any) -> ConversationMeta:
    fields = {k: data.get(k) for k in ConversationMeta.model_fields if k in data and k not in ("source", "audio_path")}
    fields.update(channel=channel, source=clean_text(str(path)), **extra)
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
    from pipeline import privacy

    # masked as it is read: nothing downstream (text stage, judges, store, export, logs) sees a raw number
    transcript = Transcript(meta=meta, turns=turns)
    return privacy.mask_transcript(transcript) if privacy.enabled() else transcript


def _outside(path: Path, root: Path) -> Path | None:
    """Where ``path`` really leads, if that is outside ``root`` (already resolved); None if inside."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path
    return None if target.is_relative_to(root) else target


def discover(inbox: Path, date: str) -> Iterator[Item]:
    """Every conversation of ``inbox/<date>/``, in a stable order; failures are items too.

    Raises ConfigError E042 for a date that is not a real YYYY-MM-DD day and InputError E040 when the
    day's folder does not exist: both before any file is read."""
    check_date(date)
    day = inbox / date
    if not day.is_dir():
        raise InputError("E040", day)
    root = day.resolve()
    seen: dict[str, str] = {}

    def unique(item: Item, path: Path) -> Item:
        conv_id = item.conversation_id if isinstance(item, Failure) else item.meta.id
        if conv_id in seen:
            # the id is taken: the duplicate is recorded under a name of its own so it is kept, not lost
            err = InputError("E030", path, conv_id=conv_id, other=seen[conv_id])
            return failure(f"{conv_id}~{path.name}", path, err)
        seen[conv_id] = str(path)
        return item

    def refused(conv_id: str, path: Path, target: Path) -> Failure:
        return failure(conv_id, path, InputError("E032", path, target=clean_text(str(target)), day=root))

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
        if (target := _outside(sidecar, root)) is not None:
            claimed.add(sidecar.stem)
            yield unique(refused(sidecar.stem, sidecar, target), sidecar)
            continue
        try:
            job = read_call(sidecar, audio_files)
        except InputError as e:
            claimed.add(sidecar.stem)
            yield unique(failure(sidecar.stem, sidecar, e, who=_who(sidecar, "call")), sidecar)
            continue
        claimed.add(Path(job.meta.audio_path or "").stem)
        if (target := _outside(job.audio_path, root)) is not None:
            yield unique(failure(job.meta.id, job.audio_path, InputError(
                "E032", job.audio_path, target=clean_text(str(target)), day=root), meta=job.meta), sidecar)
            continue
        yield unique(job, sidecar)
    for stem, paths in sorted(audio_files.items()):
        if stem not in claimed:
            for p in paths:
                err = InputError("E010", p, expected=str(p.with_suffix(".json")))
                yield unique(failure(stem, p, err), p)
    chats = day / "chats"
    if chats.is_dir():
        for p in sorted(chats.glob("*.json")):
            if (target := _outside(p, root)) is not None:
                yield unique(refused(p.stem, p, target), p)
                continue
            try:
                yield unique(read_chat(p), p)
            except InputError as e:
                yield unique(failure(p.stem, p, e, who=_who(p, "chat")), p)
