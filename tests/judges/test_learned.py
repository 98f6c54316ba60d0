"""The learned judge with the shipped weights (``models/judge``) on hand-built conversations it never saw:
paraphrased script lines, implicit rudeness, and the red line that no model may overrule."""

from __future__ import annotations

import re

import pytest

from pipeline import text
from pipeline.config import Settings
from pipeline.judges.base import get_judge
from pipeline.judges.learned import LearnedJudge
from pipeline.schema import ConversationMeta, Finding, Transcript, Turn

PUNCT = re.compile(r"[，。！？、；：,.!?;:“”\"'…]+")


@pytest.fixture(scope="module")
def judge(settings: Settings) -> LearnedJudge:
    j = get_judge("learned", settings)
    assert isinstance(j, LearnedJudge)
    return j


def convo(*turns: tuple[str, str], asr: bool = False) -> Transcript:
    meta = ConversationMeta(id="T-1", channel="call" if asr else "chat", agent_id="A001", source="test")
    out = []
    for i, (role, s) in enumerate(turns):
        said = PUNCT.sub("", s) if asr else s
        out.append(Turn(index=i, role=role, text=said, norm_text=text.normalise(said)))  # type: ignore[arg-type]
    return Transcript(meta=meta, turns=out)


def by_item(findings: list[Finding]) -> dict[str, Finding]:
    return {f.item: f for f in findings if f.item != "courtesy_violation"}


GOOD = [
    ("agent", "您好，翠湖苑物业服务中心，我是管家小陈，工号023，请讲。"),
    ("customer", "你好，我家卫生间天花板在往下滴水，好像是楼上渗下来的。"),
    ("agent", "您先别着急，麻烦告诉我一下您家是几栋几单元几号？"),
    ("customer", "6栋1单元801。"),
    ("agent", "好的，我跟您确认一下：6栋1单元801卫生间顶上渗水，怀疑是楼上901漏的，对吗？"),
    ("customer", "对对，就是这样。"),
    ("agent", "我马上安排维修师傅，30分钟内上门查看，同时联系楼上业主配合。"),
    ("customer", "好的，谢谢。"),
    ("agent", "请问还有其他需要帮您处理的吗？"),
    ("customer", "没有了。"),
    ("agent", "感谢您的来电，祝您生活愉快，再见！"),
]


@pytest.mark.parametrize("asr", [False, True])
def test_a_textbook_call_is_judged_done(judge: LearnedJudge, asr: bool) -> None:
    found = by_item(judge(convo(*GOOD, asr=asr)))
    for item in ("greeting", "identity_check", "restate", "commitment", "ownership", "closing", "farewell"):
        assert found[f"script.{item}"].value is True, item
    assert found["complaint_type"].value in ("repair", "neighbor")
    assert found["escalation_risk"].value is False
    # the evidence is the turn the model fired on
    assert [e.turn for e in found["script.commitment"].evidence] == [6]
    assert [e.turn for e in found["script.greeting"].evidence] == [0]


def test_every_finding_has_a_calibrated_confidence_and_source(judge: LearnedJudge) -> None:
    for f in judge(convo(*GOOD)):
        assert 0.0 <= f.confidence <= 1.0
        assert f.source.startswith("learned:")


def test_an_explicit_forbidden_phrase_is_a_red_line(judge: LearnedJudge) -> None:
    findings = judge(convo(
        ("agent", "您好，物业客服中心。"),
        ("customer", "我想问下停车卡怎么办理？"),
        ("agent", "不好意思，这个我真不知道。"),
    ))
    rude = [f for f in findings if f.item == "courtesy_violation"]
    assert [f.evidence[0].turn for f in rude] == [2]
    assert rude[0].confidence == 1.0 and "rules:forbidden" in rude[0].source


def test_paraphrased_rudeness_and_escalation(judge: LearnedJudge) -> None:
    findings = judge(convo(
        ("agent", "物业。"),
        ("customer", "我家门口的垃圾三天没人收了，都臭了！"),
        ("agent", "那是你们自己乱扔，跟我说有什么用。"),
        ("customer", "你这什么态度！再不处理我就打12345投诉你们！"),
    ))
    found = by_item(findings)
    assert found["escalation_risk"].value is True
    assert [e.turn for e in found["escalation_risk"].evidence] == [3]
    assert found["customer_emotion"].value in ("dissatisfied", "angry")
    assert 2 in [f.evidence[0].turn for f in findings if f.item == "courtesy_violation"]


def test_a_missing_model_folder_fails_fast(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.errors import ConfigError
    from pipeline.learning.model import load

    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert err.value.code == "E073" and "judge.json" in str(err.value)


def test_judging_many_at_once_gives_the_same_findings(judge: LearnedJudge) -> None:
    short = convo(("agent", "物业。"), ("customer", "楼下广场舞太吵了，天天放到十点！"))
    textbook = convo(*GOOD, asr=True)
    empty = convo(("agent", " "))
    assert judge.pipe([short, textbook, empty]) == [judge(short), judge(textbook), []]


def test_a_textbook_threat_is_an_escalation_whatever_the_model_says(judge: LearnedJudge) -> None:
    findings = by_item(judge(convo(
        ("agent", "您好，物业客服中心。"),
        ("customer", "我的快递放在前台被人拿走了"),
        ("agent", "我查一下监控。"),
        ("customer", "这事你们今天不给个说法，我就找律师起诉你们"),
    )))
    assert findings["escalation_risk"].value is True
    assert [e.turn for e in findings["escalation_risk"].evidence] == [3]


def test_rule_evidence_moves_the_conversation_level_heads(judge: LearnedJudge) -> None:
    from pipeline.judges.learned import mix

    model = {"noise": 0.5, "neighbor": 0.5}
    assert mix(model, {"noise": 1.0}, 0.0) == model
    mixed = mix(model, {"noise": 1.0}, 0.8)
    assert mixed["noise"] > 0.6 and abs(sum(mixed.values()) - 1.0) < 1e-9
    assert set(judge.model.meta.rule_weights) == {"complaint_type", "customer_emotion"}


DEFLECTED = [
    ("agent", "您好，翠湖苑物业服务中心，请讲。"),
    ("customer", "我家热水器不出热水了，能派人来看看吗？"),
    ("agent", "热水器是您家自己的电器，您直接打品牌的售后电话400-800-1234就可以了，他们会上门的。"),
    ("customer", "哦，好吧。"),
]


@pytest.mark.parametrize("policy", ["agree", "model", "either"])
def test_the_ownership_backing_follows_the_tuned_policy(judge: LearnedJudge, policy: str) -> None:
    """``JudgeMeta.backing['ownership']``: with "either" a push the rules see is a push whatever the model says,
    with "agree" only a push both see, with "model" the model alone decides."""
    meta = judge.model.meta
    saved = dict(meta.backing)
    try:
        rules = {f.item: f for f in judge.rules(convo(*DEFLECTED))}["script.ownership"]
        meta.backing = {**saved, "ownership": "model"}
        by_model = by_item(judge(convo(*DEFLECTED)))["script.ownership"].value
        meta.backing = {**saved, "ownership": policy}
        got = by_item(judge(convo(*DEFLECTED)))["script.ownership"].value
    finally:
        meta.backing = saved
    want = {"model": by_model, "agree": by_model or rules.value, "either": by_model and rules.value}[policy]
    assert got == want
