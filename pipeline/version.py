"""What a stored result was made from, so a re-run can tell what it may skip.

* ``content_hash`` — sha256 of the conversation's input bytes: a call's sidecar then its recording, or the
  chat file. A re-delivered file with the same bytes has the same hash, an edited one a new hash.
* ``pipeline_version`` — zhijian's own version, the judges and the learned judge model's version, the sha256
  of the scorecard, rules and lexicon files, and the recogniser (model name and the options that change
  its output). Anything that can change a result changes this string.

A conversation stored from the same content hash by the same pipeline version is skipped by the next run
of its day (``zhijian run --force`` redoes it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pipeline import privacy
from pipeline.config import Settings

_CHUNK = 1 << 20  # files are hashed a MiB at a time: bounded memory whatever the recording's size


def file_digest(paths: Iterable[Path]) -> str:
    """sha256 of the files' bytes, one after the other (each prefixed with its length, so two files can
    never hash like one)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            digest.update(path.stat().st_size.to_bytes(8, "big"))
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def content_hash(source: str | Path, audio: str | Path | None = None) -> str | None:
    """The content hash of one conversation: ``source`` (sidecar or chat file) then ``audio`` if any.
    None when a file cannot be read (the conversation then is never skipped)."""
    paths = [Path(source)] + ([Path(audio)] if audio else [])
    try:
        return file_digest(paths)
    except OSError:
        return None


def _zhijian_version() -> str:
    try:
        return metadata.version("zhijian")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _judge_model_version(path: Path) -> str:
    try:
        meta = json.loads((path / "judge.json").read_text(encoding="utf-8"))
        return str(meta.get("version", "unversioned"))
    except (OSError, ValueError):
        return "missing"


def components(settings: Settings) -> dict[str, str]:
    """Every part of the pipeline version, by name (shown by ``zhijian run`` in its summary)."""
    asr = settings.asr
    parts = {
        "zhijian": _zhijian_version(),
        "judges": ",".join(settings.judges),
        "judge_model": _judge_model_version(settings.judge_model_path) if "learned" in settings.judges else "-",
        "scorecard": file_digest([settings.scorecard_path])[:12],
        "rules": file_digest([settings.rules_path])[:12],
        "lexicon": file_digest([settings.lexicon_path])[:12],
        "role_model": file_digest([settings.role_model_path])[:12],
        "asr": (f"{asr.model} beam={asr.beam_size} prompt={int(asr.use_domain_prompt)} pause={asr.max_turn_pause:g} "
                f"vad={settings.audio.vad_threshold:g} crosstalk={settings.audio.crosstalk_db:g} "
                f"dead_air={settings.audio.dead_air_seconds:g}"),
        # masking on or off, and the rules' version: a result kept raw must not be skipped once masking is on
        "privacy": f"{int(settings.privacy.mask_personal_numbers)}/{privacy.RULES_VERSION}",
    }
    return parts


@lru_cache(maxsize=8)
def _version(described: str) -> str:
    parts = json.loads(described)
    return f"{parts['zhijian']}+{hashlib.sha256(described.encode()).hexdigest()[:16]}"


def pipeline_version(settings: Settings) -> str:
    """A short, stable name for everything that makes a result: ``<zhijian version>+<16 hex digits>``."""
    return _version(json.dumps(components(settings), sort_keys=True, ensure_ascii=False))
