"""The Analyser: batched judging gives what one-by-one judging gives, and one bad conversation fails alone."""

from __future__ import annotations

import pytest

from pipeline.analysis import Analyser
from pipeline.config import Settings
from pipeline.judges import register
from pipeline.schema import Analysis, ConversationMeta, Failure, Finding, Transcript, Turn


def chat(conv_id: str, *lines: tuple[str, str]) -> Transcript:
    meta = ConversationMeta(id=conv_id, channel="chat", agent_id="A001", source=f"{conv_id}.json")
    return Transcript(meta=meta, turns=[Turn(index=i, role=r, text=s) for i, (r, s) in enumerate(lines)])  # type: ignore[arg-type]


DAY = [
    chat("W1", ("customer", "你好，楼下广场舞太吵了"), ("agent", "您好，物业客服中心，我马上通知保安10分钟内过去。")),
    chat("W2", ("customer", "电梯又坏了，这是第三次了"), ("agent", "抱歉，维保单位一小时内到场。")),
    chat("BOOM", ("customer", "想问下物业费怎么交"), ("agent", "公众号里就能交。")),
    chat("W3", ("customer", "想表扬一下保洁阿姨"), ("agent", "谢谢您的认可，我们会转达。")),
]


class _Explodes:
    """A judge with a bug that only one conversation triggers."""

    name, version, produces = "explodes", "0", ()

    def __call__(self, transcript: Transcript) -> list[Finding]:
        if transcript.meta.id == "BOOM":
            raise RuntimeError("bug")
        return []


register("explodes")(lambda settings: _Explodes())


def test_batched_and_single_judging_agree(settings: Settings) -> None:
    analyser = Analyser(settings)
    batched = list(analyser.pipe(DAY, "2026-11-21", batch=3))
    single = [analyser(t, "2026-11-21") for t in DAY]
    assert all(isinstance(a, Analysis) for a in batched)
    assert [a.result for a in batched] == [a.result for a in single]  # type: ignore[union-attr]


@pytest.mark.parametrize("batch", [1, 4])
def test_one_bad_conversation_fails_alone(settings: Settings, batch: int) -> None:
    analyser = Analyser(settings.model_copy(update={"judges": [*settings.judges, "explodes"]}))
    out = list(analyser.pipe(DAY, "2026-11-21", batch=batch))
    assert [type(o) for o in out] == [Analysis, Analysis, Failure, Analysis]
    failed = out[2]
    assert isinstance(failed, Failure) and failed.code == "E099" and "bug" in failed.message
