"""Dead air: a mid-call silence measured on both voices' activity (``AudioFacts.silences``)."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.judges.base import register
from pipeline.schema import Evidence, Finding, Transcript

VERSION = "1"


class DeadAirJudge:
    name = "dead_air"
    version = VERSION
    produces: tuple[str, ...] = ("dead_air",)

    def __init__(self, settings: Settings) -> None:
        self.min_seconds = settings.audio.dead_air_seconds

    def __call__(self, transcript: Transcript) -> list[Finding]:
        if transcript.audio is None:  # chats have no audio; slow replies are not dead air
            return [Finding(item="dead_air", value=False, source=f"{self.name}:{self.version}")]
        gaps = [s for s in transcript.audio.silences if s.end - s.start >= self.min_seconds]
        evidence = []
        for gap in gaps:
            before = [t for t in transcript.turns if t.end is not None and t.end <= gap.start + 0.5]
            turn = before[-1] if before else transcript.turns[0]
            evidence.append(Evidence(turn=turn.index, text=f"{gap.end - gap.start:.1f} 秒无人说话 "
                                     f"({gap.start:.1f}–{gap.end:.1f} s)", start=gap.start, end=gap.end))
        return [Finding(item="dead_air", value=bool(gaps), evidence=evidence, confidence=1.0,
                        source=f"{self.name}:{self.version}")]


@register("dead_air")
def make_dead_air(settings: Settings) -> DeadAirJudge:
    return DeadAirJudge(settings)
