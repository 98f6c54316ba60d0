"""A labelled day judged without the night's store: what ``zhijian eval`` measures.

The same stages as the nightly flow (ingest → recognition → text → judges → scorecard), run in order in this
process. Recognised transcripts can be kept in a JSON Lines cache, so judges can be measured again and again
without recognising the audio each time; a cached transcript is used only if it was made by the same
recogniser from the same file (path, size and modification time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.analysis import Analyser
from pipeline.asr import transcribe_job
from pipeline.config import Settings
from pipeline.ingest import CallJob, discover
from pipeline.schema import ConversationMeta, Failure, Transcript

log = logging.getLogger("zhijian")


def _fingerprint(meta: ConversationMeta, settings: Settings) -> str:
    audio = Path(meta.audio_path or "")
    st = audio.stat()
    return f"{settings.asr.model}|{audio.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _read_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["fingerprint"]] = row["transcript"]
    return out


def judge_day(inbox: Path, date: str, settings: Settings, cache: Path | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> tuple[list[dict[str, Any]], list[Failure]]:
    items = list(discover(inbox, date))
    analyser = Analyser(settings)
    cached = _read_cache(cache)
    fresh: list[str] = []  # newly recognised transcripts, appended to the cache at the end
    heard: list[Transcript | Failure] = []
    for n, item in enumerate(items, 1):
        conv_id = item.conversation_id if isinstance(item, Failure) else item.meta.id
        if not isinstance(item, CallJob):
            heard.append(item)
        else:
            key = _fingerprint(item.meta, settings)
            if key in cached:
                heard.append(Transcript.model_validate(cached[key]))
            else:
                recognised = transcribe_job(item, settings)
                heard.append(recognised)
                if isinstance(recognised, Transcript):
                    fresh.append(json.dumps({"fingerprint": key, "transcript": recognised.model_dump(mode="json")},
                                            ensure_ascii=False))
        if progress is not None:
            progress(n, len(items), conv_id)
    failures = [h for h in heard if isinstance(h, Failure)]
    results: list[dict[str, Any]] = []
    for judged in analyser.pipe([h for h in heard if isinstance(h, Transcript)], date):
        if isinstance(judged, Failure):
            failures.append(judged)
        else:
            results.append(judged.result.model_dump(mode="json"))
    if cache is not None and fresh:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in fresh))
    return results, failures
