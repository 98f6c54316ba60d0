"""Text: one place for normalisation and Chinese word segmentation.

Normalisation makes recogniser output and typed chat look alike to the judges: NFKC (full-width →
half-width), Traditional → Simplified, and Chinese numerals that are quantities → digits
("一五零二" → 1502, "二十分钟" → 20分钟, "第三次" → 第3次) while words that merely contain a numeral
character (一下, 一直, 十分感谢) stay as they are.

Segmentation is spaCy's ``zh`` language with the jieba segmenter and a property-management user
dictionary (``resources/lexicon.txt``), so 物业费 / 门禁卡 / 报修 come out as single words.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.schema import Transcript

log = logging.getLogger("zhijian")

_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2, "幺": 1}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_NUM = "零一二三四五六七八九〇两幺十百千万"
# A single numeral is a quantity only before a measure word; longer runs are numbers on their own.
_MEASURE = "(?:分钟|小时|单元|[栋幢号楼层室户点天次个位块元周月年岁辆])"
_NUMERAL = re.compile(rf"(?<![{_NUM}])([{_NUM}]{{2,}}|[{_NUM}](?={_MEASURE}))")
_NOT_NUMBER = ("一一", "万一", "千万", "一万")  # idioms where the characters are not a quantity


def numeral_to_digits(run: str) -> str:
    """八百零二 → 802, 一五零二 → 1502, 二十 → 20."""
    if not any(c in _UNITS for c in run):
        return "".join(str(_DIGITS[c]) for c in run)
    total = section = digit = 0
    for c in run:
        if c in _DIGITS:
            digit = _DIGITS[c]
        elif c == "万":
            total += (section + digit) * 10000
            section = digit = 0
        else:
            section += (digit or 1) * _UNITS[c]
            digit = 0
    return str(total + section + digit)


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return str(_t2s().convert(text))


_FIXES = {"妳": "你", "著急": "着急", "祢": "你"}


def normalise(text: str) -> str:
    """Canonical text for the judges (punctuation kept: it carries tone)."""
    s = unicodedata.normalize("NFKC", text)
    s = to_simplified(s)
    for a, b in _FIXES.items():
        s = s.replace(a, b)

    def sub(m: re.Match[str]) -> str:
        run = m.group(1)
        return run if run in _NOT_NUMBER else numeral_to_digits(run)

    s = _NUMERAL.sub(sub, s)
    return re.sub(r"\s+", " ", s).strip()


def lexicon_words(path: Path) -> list[str]:
    """The domain lexicon: one word per line (jieba user-dict format: word [freq] [tag]); # comments."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line.split()[0])
    return words


@lru_cache(maxsize=2)
def load_nlp(lexicon: Path):
    """spaCy's Chinese pipeline with jieba and the domain words; built once per process."""
    import jieba
    import spacy

    jieba.setLogLevel(logging.WARNING)
    for word in lexicon_words(lexicon):
        jieba.add_word(word, freq=20000)
    return spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})


def _words(doc: Any) -> list[str]:
    return [t.text for t in doc if not t.is_space]


def segment(text: str, lexicon: Path) -> list[str]:
    return _words(load_nlp(lexicon)(text))


def prepare(transcript: Transcript, lexicon: Path) -> Transcript:
    """The text stage: every turn gets ``norm_text`` and ``tokens``."""
    norms = [normalise(turn.text) for turn in transcript.turns]
    docs = load_nlp(lexicon).pipe(norms)  # one pass over the conversation: spaCy's per-call cost is paid once
    turns = [turn.model_copy(update={"norm_text": norm, "tokens": _words(doc)})
             for turn, norm, doc in zip(transcript.turns, norms, docs, strict=True)]
    return transcript.model_copy(update={"turns": turns})
