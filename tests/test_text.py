"""Text (``pipeline.text``): normalisation and segmentation with the domain lexicon."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.schema import ConversationMeta, Transcript, Turn
from pipeline.text import lexicon_words, normalise, numeral_to_digits, prepare, segment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # full-width → half-width (NFKC)
        ("ＡＢＣ１２３", "ABC123"),
        ("好的！谢谢，", "好的!谢谢,"),
        # numerals that are quantities → digits
        ("我家一五零二的水管漏水了", "我家1502的水管漏水了"),
        ("二十分钟内上门", "20分钟内上门"),
        ("三栋二单元", "3栋2单元"),
        ("第三次打电话了", "第3次打电话了"),
        ("八百零二", "802"),
        ("两个小时", "2个小时"),
        ("幺三八", "138"),
        # words that merely contain a numeral character stay
        ("请稍等一下", "请稍等一下"),
        ("一直没人来", "一直没人来"),
        ("十分感谢", "十分感谢"),
        ("万一漏电怎么办", "万一漏电怎么办"),
        # Traditional → Simplified
        ("這個電話們說", "这个电话们说"),
        ("請問您貴姓", "请问您贵姓"),
        # whitespace collapsed
        ("  您好   物业 ", "您好 物业"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent() -> None:
    s = "您好，這裡是陽光花園物業，二十分鐘內給您回電，房號一五零二。"
    once = normalise(s)
    assert once == "您好,这里是阳光花园物业,20分钟内给您回电,房号1502。"
    assert normalise(once) == once


@pytest.mark.parametrize(("run", "digits"), [("一五零二", "1502"), ("二十", "20"), ("十五", "15"),
                                              ("八百零二", "802"), ("三万五千", "35000"), ("零", "0")])
def test_numeral_to_digits(run: str, digits: str) -> None:
    assert numeral_to_digits(run) == digits


@pytest.mark.parametrize(
    ("text", "word"),
    [("我想问一下物业费怎么交", "物业费"), ("我的门禁卡刷不开单元门了", "门禁卡"),
     ("门禁卡和物业费都在前台办", "物业费"), ("门禁卡和物业费都在前台办", "门禁卡"),
     ("我要报修，厨房漏水", "报修")],
)
def test_segment_keeps_domain_words(text: str, word: str, settings: Settings) -> None:
    tokens = segment(text, settings.lexicon_path)
    assert word in tokens
    assert "".join(tokens) == text.replace(" ", "")


def test_lexicon_words_skips_comments(tmp_path: Path) -> None:
    lex = tmp_path / "lex.txt"
    lex.write_text("# comment\n物业费 2000 n\n\n门禁卡  # inline\n", encoding="utf-8")
    assert lexicon_words(lex) == ["物业费", "门禁卡"]


def test_prepare_fills_norm_text_and_tokens(settings: Settings) -> None:
    meta = ConversationMeta(id="W-1", channel="chat", agent_id="A1", source="test")
    tr = Transcript(meta=meta, turns=[
        Turn(index=0, role="customer", text="物業費二十塊錢一個月？"),
        Turn(index=1, role="agent", text="门禁卡请到前台办理"),
    ])
    out = prepare(tr, settings.lexicon_path)
    assert [t.text for t in out.turns] == [t.text for t in tr.turns]  # the original text is kept
    assert out.turns[0].norm_text == "物业费20块钱1个月?"
    assert "物业费" in out.turns[0].tokens
    assert "门禁卡" in out.turns[1].tokens
    assert tr.turns[0].norm_text == ""  # the input is not changed
