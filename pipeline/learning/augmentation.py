"""What training reads: a conversation as a recogniser might deliver it, and no more of it than the network
reads at once.

Augmentation is what lets a model trained on written text read recognised speech: half the conversations lose
their punctuation (the recogniser rarely writes it), some get character-level noise (dropped, doubled or
swapped characters, as recognition errors do), and half the calls have some turns cut in two at a pause. A
conversation longer than ``MAX_TURNS`` is read through a random window of that many turns each epoch, as
inference reads it in windows (``model.JudgeModel.raw_many``).

Every rendering is segmented into words by the text stage's own function (``text.segment``), so the word bag
reads in training what it reads at inference (``Turn.tokens``); segmentations are cached by text, since most
renderings (as written, without punctuation) recur every epoch.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline import text
from pipeline.learning.corpus import TrainingConversation, TrainingTurn
from pipeline.learning.model import MAX_TURNS

PUNCT = re.compile(r"[\s，。！？、,.!?；;：:…~～\"“”'‘’（）()《》<>【】\[\]—-]+")
_CLAUSE_END = re.compile(r"[，。！？,.!?；;…]")


@dataclass
class Example:
    """A conversation as training reads it: its (normalised, perhaps rendered) texts, and where its turns sit in
    the whole conversation when it is a window of a longer one."""

    conversation: TrainingConversation
    texts: list[str]  # normalised
    start: int = 0  # position of the first turn in the whole conversation
    total: int | None = None  # turns of the whole conversation (None: these are all of it)

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.total if self.total is not None else len(self.texts)


@lru_cache(maxsize=200_000)
def normalised(s: str) -> str:
    return text.normalise(s)


@lru_cache(maxsize=400_000)
def words_of(s: str, lexicon: Path) -> tuple[str, ...]:
    """The text stage's segmentation (``text.segment``), cached by text."""
    return tuple(text.segment(s, lexicon)) if s else ()


def noisy(s: str, rng: random.Random) -> str:
    """Character-level recognition errors: a few characters dropped or doubled, sometimes two swapped."""
    out: list[str] = []
    for c in s:
        r = rng.random()
        if r < 0.015:
            continue
        out.append(c)
        if r > 0.985:
            out.append(c)
    if len(out) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return "".join(out) or s


def split_like_a_recogniser(example: Example, rng: random.Random) -> Example:
    """Cut some turns in two at a clause boundary, as a recogniser does at a pause ("您是说…漏水了" | "是吧").
    The longer piece keeps the turn's tags; the shorter piece's tags are unknown (not trained either way)."""
    turns: list[TrainingTurn] = []
    texts: list[str] = []
    for t, s in zip(example.conversation.turns, example.texts, strict=True):
        cuts = [m.end() for m in _CLAUSE_END.finditer(s) if 3 <= m.end() <= len(s) - 2]
        if len(s) >= 10 and cuts and rng.random() < 0.35:
            c = rng.choice(cuts)
            first, second = s[:c], s[c:]
            first_keeps = len(first) >= len(second)
            turns += [t.model_copy(update={"tags": t.tags if first_keeps else {}}),
                      t.model_copy(update={"tags": {} if first_keeps else t.tags})]
            texts += [first, second]
        else:
            turns.append(t)
            texts.append(s)
    return Example(example.conversation.model_copy(update={"turns": turns}), texts)


def without_punctuation(s: str) -> str:
    return PUNCT.sub("", s) or s


def augmented(example: Example, rng: random.Random) -> Example:
    """One random rendering of a conversation as a recogniser might deliver it."""
    if example.conversation.channel == "call" and rng.random() < 0.5:
        example = split_like_a_recogniser(example, rng)
    strip = rng.random() < 0.5
    noise = rng.random() < 0.3
    texts = []
    for s in example.texts:
        if strip:
            s = without_punctuation(s)
        if noise:
            s = noisy(s, rng)
        texts.append(s)
    return Example(example.conversation, texts)


def random_window(example: Example, rng: random.Random, size: int = MAX_TURNS) -> Example:
    """At most ``size`` consecutive turns, from a random start: what the network reads of a long conversation
    in one epoch. A window drops the conversation's weak labels (the turn that carries one may be outside it)."""
    n = len(example.texts)
    if n <= size:
        return example
    start = rng.randrange(n - size + 1)
    conv = example.conversation
    cut = conv.model_copy(update={"turns": conv.turns[start:start + size], "weak": {}})
    return Example(cut, example.texts[start:start + size], example.start + start, example.span[1])
