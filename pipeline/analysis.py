"""Judge → score → result for transcripts: the stages after speech recognition, loaded once."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from pipeline import text
from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.ingest import failure
from pipeline.judges import Judge, get_judge, judge_many
from pipeline.schema import Analysis, Failure, Finding, Transcript
from pipeline.scorecard import Scorecard, Verdict, assemble, score

log = logging.getLogger("zhijian")

BATCH = 32  # conversations judged together: a model's forward pass costs much the same for 1 or 32


class Analyser:
    """Built once per run (judges and scorecard loaded here), then called per conversation or, faster, on
    many with ``pipe``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        names = list(dict.fromkeys(["dead_air", *settings.judges]))
        self.judges: list[Judge] = [get_judge(name, settings) for name in names]
        self.card = Scorecard.load(settings.scorecard_path)
        text.load_nlp(settings.lexicon_path)

    def __call__(self, transcript: Transcript, date: str) -> Analysis:
        return self._analyse([transcript], date)[0]

    def _analyse(self, transcripts: list[Transcript], date: str) -> list[Analysis]:
        prepared = [text.prepare(t, self.settings.lexicon_path) for t in transcripts]
        findings: list[list[Finding]] = [[] for _ in prepared]
        for judge in self.judges:
            for mine, found in zip(findings, judge_many(judge, prepared), strict=True):
                mine.extend(found)
        out = []
        for tr, found in zip(prepared, findings, strict=True):
            verdict = Verdict(found)
            card_score = score(self.card, verdict, tr)
            result = assemble(date, tr, verdict, card_score)
            out.append(Analysis(date=date, transcript=tr, findings=found, score=card_score, result=result))
        return out

    def analyse_or_fail(self, transcript: Transcript, date: str) -> Analysis | Failure:
        """As calling it, but a judge's bug on one conversation becomes a ``Failure`` (E099), not fatal."""
        try:
            return self(transcript, date)
        except Exception as e:
            log.exception("judging %s failed", transcript.meta.id)
            err = InputError("E099", transcript.meta.source, detail=f"{type(e).__name__}: {e}")
            return failure(transcript.meta.id, Path(transcript.meta.source), err, stage="judge", meta=transcript.meta)

    def pipe(self, transcripts: Iterable[Transcript], date: str, batch: int = BATCH) -> Iterator[Analysis | Failure]:
        """Each transcript's analysis or failure, in order, judged ``batch`` at a time. If a batch fails, its
        conversations are judged one by one, so only the one that breaks a judge becomes a ``Failure``."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        stream = iter(transcripts)
        while chunk := list(islice(stream, batch)):
            try:
                yield from self._analyse(chunk, date)
            except Exception:
                log.warning("judging a batch of %d failed; judging them one by one", len(chunk), exc_info=True)
                yield from (self.analyse_or_fail(t, date) for t in chunk)
