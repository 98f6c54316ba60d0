"""A small multi-week store for the report tests: four weeks of generated chats (bench/report_store.py) judged
once per session by the real pipeline (ingest → learned judge → scorecard), saved with ``Store.save_analysis``
into SQLite and into a PostgreSQL schema of its own."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from zhijian_testing import postgres_url

from pipeline.config import Settings
from pipeline.schema import Analysis
from pipeline.store import Store

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import report_store  # noqa: E402

START = dt.date(2026, 10, 5)  # a Monday: four whole ISO weeks
DAYS = 28
END = START + dt.timedelta(days=DAYS - 1)


@dataclass
class Judged:
    analyses: list[Analysis]
    chats: dict[str, dict[str, Any]]  # id -> the generated chat session (inbox JSON)


@pytest.fixture(scope="session")
def judged(settings: Settings) -> Judged:
    """Generate the inbox, read it with the ingest stage, judge it once with the real Analyser."""
    from pipeline.analysis import Analyser
    from pipeline.ingest import discover
    from pipeline.schema import Transcript

    days = report_store.generate(START, DAYS, 1, seed=11)
    inbox = Path(tempfile.mkdtemp(prefix="zhijian-reports-inbox-"))
    try:
        report_store.write_inbox(inbox, days)
        analyser = Analyser(settings)
        analyses: list[Analysis] = []
        for day in days:
            transcripts = [t for t in discover(inbox, day) if isinstance(t, Transcript)]
            for a in analyser.pipe(transcripts, day):
                assert isinstance(a, Analysis), a
                analyses.append(a)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
    return Judged(analyses, {c["id"]: c for chats in days.values() for c in chats})


def _url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'reports.db'}"
    else:
        yield from postgres_url()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, judged: Judged, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The judged weeks saved into a store of each kind (read-only for the tests that use it)."""
    for url in _url(request.param, tmp_path_factory.mktemp(f"reports-{request.param}")):
        s = Store(url)
        for a in judged.analyses:
            s.save_analysis(a, pipeline_version="test")
        yield s
        s.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind, for tests that write."""
    for url in _url(request.param, tmp_path):
        s = Store(url)
        yield s
        s.close()
