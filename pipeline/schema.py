"""Typed records: the contract between stages (ingest → asr → text → judges → scorecard → store).

Each stage takes records from the one before and returns new ones; nothing reaches back.
``Result`` is the export record of spec section 4 (`../shared/spec/CONVERSATIONS.md`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

Role = Literal["agent", "customer"]
Channel = Literal["call", "chat"]
Layout = Literal["stereo_agent_left", "stereo_agent_right", "mono"]

SCRIPT_ITEMS: tuple[str, ...] = (
    "greeting", "identity_check", "restate", "commitment", "ownership", "closing", "farewell",
)
COMPLAINT_TYPES: tuple[str, ...] = (
    "repair", "facility", "security", "cleaning", "greening", "parking", "fees", "noise", "neighbor",
    "renovation", "staff_attitude", "inquiry", "praise",
)
EMOTIONS: tuple[str, ...] = ("calm", "dissatisfied", "angry")
# The workbench's roles (REVIEW_API.md, "Roles").
ROLES: tuple[str, ...] = ("admin", "supervisor", "reviewer", "trainer", "agent")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationMeta(Record):
    """What the inbox says about a conversation (call sidecar or chat header)."""

    id: str
    channel: Channel
    agent_id: str
    agent_name: str = ""
    team: str = ""
    site: str = ""
    started_at: datetime | None = None
    direction: str | None = None
    audio_layout: Layout | None = None
    customer_ref: str | None = None
    room: str | None = None
    source: str = Field(description="the sidecar or chat file this came from")
    audio_path: str | None = None

    @property
    def date(self) -> str:
        return self.started_at.date().isoformat() if self.started_at else ""


class Word(Record):
    start: float
    end: float
    text: str
    probability: float = 1.0


class Turn(Record):
    """One turn: a chat message, or a stretch of one speaker's speech in a call."""

    index: int
    role: Role
    text: str
    start: float | None = Field(None, description="seconds from the start of the recording (calls)")
    end: float | None = None
    at: datetime | None = Field(None, description="message time (chats)")
    confidence: float = Field(1.0, ge=0, le=1, description="recogniser word probability, mean")
    tokens: list[str] = Field(default_factory=list, description="segmented words (text stage)")
    norm_text: str = Field("", description="normalised text the judges read (text stage)")


class Span(Record):
    start: float
    end: float


class AudioFacts(Record):
    """What the audio itself tells, independent of the words."""

    duration: float
    sample_rate: int
    channels: int
    speech: dict[Role | Literal["mixed"], list[Span]] = Field(default_factory=dict)
    silences: list[Span] = Field(default_factory=list, description="mid-call stretches with no voice")


class Transcript(Record):
    """A conversation as the judges see it: metadata plus turns (plus audio facts for calls)."""

    meta: ConversationMeta
    turns: list[Turn]
    audio: AudioFacts | None = None
    asr_model: str | None = None


class Evidence(Record):
    turn: int
    text: str
    start: float | None = None
    end: float | None = None


FindingValue = bool | str | float | None


class Finding(Record):
    """One judgement about one item, with the turns that justify it."""

    item: str = Field(description="complaint_type, script.<item>, courtesy_violation, customer_emotion, "
                      "escalation_risk, dead_air")
    value: FindingValue
    confidence: float = Field(1.0, ge=0, le=1)
    evidence: list[Evidence] = Field(default_factory=list)
    source: str = Field(description="judge name and version, e.g. rules:1")


class Score(Record):
    score: float = Field(ge=0, le=100)
    critical: bool
    flags: list[str]
    deductions: list[dict[str, Any]] = Field(default_factory=list)


class Failure(Record):
    """A conversation that could not be analysed, and why (recorded; the night goes on)."""

    conversation_id: str
    source: str
    stage: str
    code: str
    message: str
    # who and what it was, where the inbox said so before it failed (the failure lands on that agent's record)
    channel: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    team: str | None = None
    site: str | None = None
    started_at: datetime | None = None


class ResultTurn(Record):
    turn: int
    role: Role
    start: float | None = None
    end: float | None = None
    text: str
    at: datetime | None = Field(None, description="a chat message's time (absent for calls)")

    @model_serializer(mode="wrap")
    def _without_absent_time(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a call's turns have no message time: the record stays as it was rather than carrying "at": null
        data: dict[str, Any] = handler(self)
        if data.get("at") is None:
            data.pop("at", None)
        return data


class ResultEvidence(Record):
    item: str
    turn: int
    text: str


class Result(Record):
    """Spec section 4: the record exported for every analysed conversation."""

    model_config = ConfigDict(extra="allow")

    id: str
    channel: Channel
    agent_id: str
    date: str
    complaint_type: str
    complaint_confidence: float
    script: dict[str, bool]
    courtesy_violation_turns: list[int]
    customer_emotion: str
    customer_dissatisfaction: float | None = Field(
        None, ge=0, le=1, description="0–1, how unhappy the customer is (higher = worse), for ranking")
    escalation_risk: bool
    dead_air: bool
    score: float
    critical: bool
    flags: list[str]
    turns: list[ResultTurn]
    evidence: list[ResultEvidence]


class Analysis(Record):
    """Everything the night learnt about one conversation: what the store keeps."""

    date: str = Field(description="the inbox day (YYYY-MM-DD) this conversation was processed under")
    transcript: Transcript
    findings: list[Finding]
    score: Score
    result: Result
