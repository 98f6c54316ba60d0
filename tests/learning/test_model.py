"""The network's input limits and word bag (``pipeline.learning.model``): a long conversation is read in
windows of ``MAX_TURNS`` turns (training: a random one per epoch; inference: overlapping ones, each turn from
the window where it is most central), the text stage's words are read by a model trained with them, and a
folder written before words existed reads as it did."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from pipeline import text
from pipeline.config import Settings
from pipeline.judges.learned import LearnedJudge, turn_inputs
from pipeline.judges.rules import RulesJudge
from pipeline.learning.augmentation import Example, random_window
from pipeline.learning.corpus import TURN_TAGS, TrainingConversation, load_corpus
from pipeline.learning.model import MAX_TURNS, JudgeModel, TurnInput, load, most_central, windows, word_grams
from pipeline.learning.training import TrainOptions, train
from pipeline.schema import ConversationMeta, Transcript, Turn

TINY = Path(__file__).parent.parent / "fixtures" / "corpus" / "tiny.jsonl"


def _long(convs: list[TrainingConversation], n: int = 60) -> TrainingConversation:
    """One conversation of ``n`` turns, made of the tiny corpus's turns one after another."""
    turns = [t for c in convs for t in c.turns][:n]
    assert len(turns) == n
    return convs[0].model_copy(update={"id": "LONG-60", "turns": turns})


@pytest.fixture(scope="module")
def with_words(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> JudgeModel:
    """A tiny model trained with the word bag, on the tiny corpus plus a 60-turn conversation."""
    out = tmp_path_factory.mktemp("judge-words")
    corpus = load_corpus([TINY])
    train([*corpus, _long(corpus)], TrainOptions(out=out, epochs=1, hidden=32, layers=1, tune_share=0.25,
                                                 report_share=0.25), settings)
    return load(out)


@pytest.fixture(scope="module")
def without_words(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> JudgeModel:
    """A tiny model trained without the word bag: a folder as written before words existed (``word_dim`` 0;
    the shipped judge has words since 2026-12-02)."""
    out = tmp_path_factory.mktemp("judge-no-words")
    train(load_corpus([TINY]), TrainOptions(out=out, epochs=1, hidden=32, layers=1, tune_share=0.25,
                                            report_share=0.25, word_features=False), settings)
    return load(out)


def test_windows_cover_a_long_conversation() -> None:
    assert MAX_TURNS == 40
    assert windows(12) == [(0, 12)]
    assert windows(40) == [(0, 40)]
    assert windows(60) == [(0, 40), (20, 60)]
    assert windows(45) == [(0, 40), (5, 45)]
    assert windows(100) == [(0, 40), (20, 60), (40, 80), (60, 100)]
    spans = windows(60)
    assert [most_central(i, spans) for i in (0, 29, 30, 59)] == [0, 0, 1, 1]


def test_training_reads_a_random_window_of_a_long_conversation() -> None:
    conv = _long(load_corpus([TINY])).model_copy(update={"weak": {"restate": True}})
    ex = Example(conv, [t.text for t in conv.turns])
    seen = set()
    rng = random.Random(1)
    for _ in range(30):
        w = random_window(ex, rng)
        assert len(w.texts) == len(w.conversation.turns) == MAX_TURNS
        start, total = w.span
        assert total == 60 and w.texts == ex.texts[start:start + MAX_TURNS]
        assert w.conversation.weak == {}  # the weakly labelled turn may lie outside the window
        seen.add(start)
    assert len(seen) > 5 and max(seen) <= 20  # not always the head: the closing is at the end
    short = Example(conv.model_copy(update={"turns": conv.turns[:10]}), ex.texts[:10])
    assert random_window(short, rng) is short


@pytest.mark.parametrize("which", ["shipped", "with_words"])
def test_a_60_turn_conversation_is_judged_in_overlapping_windows(which: str, settings: Settings,
                                                                 with_words: JudgeModel) -> None:
    model = load(settings.judge_model_path) if which == "shipped" else with_words
    conv = _long(load_corpus([TINY]))
    rules = RulesJudge(settings)
    turns = [Turn(index=i, role=t.role, text=t.text, norm_text=text.normalise(t.text)) for i, t in
             enumerate(conv.turns)]
    uses_rules = bool(model.meta.net.rule_features)
    inputs = turn_inputs(turns, rules.turn_features(turns) if uses_rules else None, settings.lexicon_path)
    [raw] = model.raw_many([inputs])
    assert raw.turn_logits.shape == (60, len(TURN_TAGS))
    assert len(raw.complaint_attention) == 60 and sum(raw.complaint_attention) == pytest.approx(1.0, abs=1e-4)
    with torch.inference_mode():  # the two windows by hand, at their places in the whole conversation
        batch = model.batch([inputs[0:40], inputs[20:60]], [(0, 60), (20, 60)])
        assert batch.from_end[0, -1] == 20 and batch.from_end[1, -1] == 0 and batch.position[1, 0] == 20
        out = model.forward(batch)  # the ensemble, as raw_many reads it
    torch.testing.assert_close(raw.turn_logits[:30], out.turn_logits[0, :30])  # turns 0–29: most central in the first
    torch.testing.assert_close(raw.turn_logits[30:], out.turn_logits[1, 10:40])  # turns 30–59: in the second
    torch.testing.assert_close(raw.complaint_logits, out.complaint_logits.mean(0))
    torch.testing.assert_close(raw.emotion_logits, out.emotion_logits.mean(0))
    pred = model.predict(inputs)
    assert len(pred.tags) == 60 and abs(sum(pred.emotion.values()) - 1.0) < 1e-5
    # and the judge gives findings whose evidence may lie anywhere in the conversation
    transcript = Transcript(meta=ConversationMeta(id="LONG-60", channel="chat", agent_id="A1", source="test"),
                            turns=turns)
    findings = LearnedJudge(model, rules, settings.lexicon_path)(transcript)
    assert {f.item for f in findings} >= {"complaint_type", "customer_emotion", "script.farewell"}


def test_a_model_trained_with_words_reads_the_text_stages_words(with_words: JudgeModel, settings: Settings) -> None:
    meta = with_words.meta
    assert meta.net.word_dim > 0 and meta.words and with_words.net.words is not None
    assert any(" " in g for g in meta.words)  # word bigrams beside the words
    assert word_grams(["物业费", "，", "不归", "我们"]) == ["物业费", "不归", "我们", "物业费 不归", "不归 我们"]
    said = "这个不归我们管，你自己找开发商去吧。"
    norm = text.normalise(said)
    meta_ = ConversationMeta(id="W1", channel="chat", agent_id="A1", source="test")
    bare = Transcript(meta=meta_, turns=[Turn(index=0, role="customer", text="我家水管坏了，你们管不管？"),
                                         Turn(index=1, role="agent", text=said)])
    prepared = text.prepare(bare, settings.lexicon_path)
    # the words the judge reads are the text stage's: the same segmentation, whether or not it ran before
    assert prepared.turns[1].tokens == text.segment(norm, settings.lexicon_path)
    judge = LearnedJudge(with_words, RulesJudge(settings), settings.lexicon_path)
    assert judge(bare) == judge(prepared)
    # … and they matter: other words on the same characters change the model's reading
    features = [0.0] * with_words.meta.net.rule_features
    a = with_words.predict([TurnInput("agent", norm, features, prepared.turns[1].tokens)])
    b = with_words.predict([TurnInput("agent", norm, features, [])])
    assert a.tags[0] != b.tags[0]


def test_a_folder_without_words_reads_as_before(without_words: JudgeModel) -> None:
    assert without_words.meta.net.word_dim == 0 and without_words.meta.words == []
    assert without_words.net.words is None and without_words.net.complaint_by_words is None
    assert not any(k.startswith(("words.", "complaint_by_words.")) for k in without_words.net.state_dict())
    none = [0.0] * without_words.meta.net.rule_features
    turns = [TurnInput("agent", "您好，物业服务中心", none, ["您好", "物业"]), TurnInput("customer", "电梯坏了", none)]
    batch = without_words.batch([turns])
    assert batch.word_ids.numel() == 0  # words given are not read by a model without the bag
    assert without_words.predict(turns) == without_words.predict([TurnInput(t.role, t.text, t.features) for t in turns])
