"""Judge → score → result for one transcript: the stages after speech recognition, loaded once."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import text
from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.ingest import failure
from pipeline.judges import Judge, get_judge
from pipeline.schema import Analysis, Failure, Transcript
from pipeline.scorecard import Scorecard, Verdict, assemble, score

log = logging.getLogger("zhijian")


class Analyser:
    """Built once per run (judges and scorecard loaded here), then called per conversation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        names = list(dict.fromkeys(["dead_air", *settings.judges]))
        self.judges: list[Judge] = [get_judge(name, settings) for name in names]
        self.card = Scorecard.load(settings.scorecard_path)
        text.load_nlp(settings.lexicon_path)

    def __call__(self, transcript: Transcript, date: str) -> Analysis:
        prepared = text.prepare(transcript, self.settings.lexicon_path)
        findings = [f for judge in self.judges for f in judge(prepared)]
        verdict = Verdict(findings)
        card_score = score(self.card, verdict, prepared)
        result = assemble(date, prepared, verdict, card_score)
        return Analysis(date=date, transcript=prepared, findings=findings, score=card_score, result=result)

    def analyse_or_fail(self, transcript: Transcript, date: str) -> Analysis | Failure:
        """As calling it, but a judge's bug on one conversation becomes a ``Failure`` (E099), not fatal."""
        try:
            return self(transcript, date)
        except Exception as e:
            log.exception("judging %s failed", transcript.meta.id)
            err = InputError("E099", transcript.meta.source, detail=f"{type(e).__name__}: {e}")
            return failure(transcript.meta.id, Path(transcript.meta.source), err, stage="judge")
