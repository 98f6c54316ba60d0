"""Who is speaking, from the words: agent and resident talk differently (您/请问/给您安排 vs 我家/你们).

A naive-Bayes model over character 1–3-grams of normalised text, trained on the project's own corpus
(``models/corpus``) by ``python -m pipeline.roles train``; the artefact is ``models/role_text/role_nb.json``.
On mono calls it is combined with the voice (pitch) and the turn-taking prior in ``label_atoms``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.text import normalise

log = logging.getLogger("zhijian")

MODEL_VERSION = "role_nb-1"
_NON_WORD = re.compile(r"[^\w]")


def char_grams(text: str) -> list[str]:
    t = _NON_WORD.sub("", normalise(text))
    return [t[i : i + n] for n in (1, 2, 3) for i in range(len(t) - n + 1)]


@dataclass(frozen=True)
class TextRoleModel:
    """log P(gram | agent) − log P(gram | customer), with a default for unseen grams."""

    weights: dict[str, float]
    unseen: float
    version: str = MODEL_VERSION

    def log_odds(self, text: str) -> float:
        """> 0: sounds like the agent; < 0: like the resident."""
        return sum(self.weights.get(g, self.unseen) for g in char_grams(text))

    @classmethod
    def train(cls, turns: Iterable[tuple[str, str]], min_count: int = 2, alpha: float = 0.5) -> TextRoleModel:
        counts = {"agent": Counter[str](), "customer": Counter[str]()}
        for role, text in turns:
            counts[role].update(char_grams(text))
        vocab = {g for c in counts.values() for g, n in c.items() if n >= min_count}
        totals = {r: sum(c.values()) for r, c in counts.items()}
        v = len(vocab) + 1

        def logp(role: str, n: int) -> float:
            return math.log((n + alpha) / (totals[role] + alpha * v))

        weights = {g: round(logp("agent", counts["agent"][g]) - logp("customer", counts["customer"][g]), 4)
                   for g in vocab}
        return cls(weights=weights, unseen=round(logp("agent", 0) - logp("customer", 0), 4))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": self.version, "unseen": self.unseen, "weights": self.weights},
                                   ensure_ascii=False, sort_keys=True), encoding="utf-8")


@lru_cache(maxsize=2)
def load_text_role_model(path: Path) -> TextRoleModel:
    data = json.loads(path.read_text(encoding="utf-8"))
    return TextRoleModel(weights=data["weights"], unseen=data["unseen"], version=data["version"])


def corpus_turns(folder: Path) -> list[tuple[str, str]]:
    turns = []
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                turns += [(t["role"], t["text"]) for t in json.loads(line)["turns"]]
    return turns


@dataclass(frozen=True)
class Atom:
    """A stretch of uninterrupted voice on a mono line: what was said and how the voice sounded."""

    start: float
    end: float
    text: str
    features: np.ndarray | None = None  # standardised voice features (voice.voice_features); NaN = unknown


@dataclass(frozen=True)
class LabelOptions:
    """Weights of the mono speaker labeller (log-odds units; tuned on the project's own rendered calls).

    Attributes:
      stay: log-prior that the next stretch is the same speaker (a turn often has several stretches).
      text_weight, text_clip: how much the words count, and the most one stretch's words may count.
      voice_weight, voice_clip: the same for how the voice sounds, once the words have told which voice
        is whose (confident stretches seed the two voices' centroids).
      seed: text log-odds beyond which a stretch seeds a voice centroid.
      first_is_agent: inbound calls are answered by the desk.
    """

    stay: float = 0.5
    text_weight: float = 0.2
    text_clip: float = 8.0
    voice_weight: float = 4.0
    voice_clip: float = 2.0
    seed: float = 2.0
    first_is_agent: float = 3.0
    rounds: int = 2


def _voice_scores(atoms: Sequence[Atom], agentness: np.ndarray, opts: LabelOptions) -> np.ndarray:
    """Per atom, how much closer its voice is to the agent's than to the resident's (0 when unknown)."""
    feats = np.array([a.features if a.features is not None else np.full(1, np.nan) for a in atoms], dtype=float)
    if feats.ndim != 2:
        return np.zeros(len(atoms))
    known = ~np.isnan(feats).any(axis=1)
    agent, cust = known & (agentness > opts.seed), known & (agentness < -opts.seed)
    if agent.sum() < 2 or cust.sum() < 2:
        return np.zeros(len(atoms))
    ca, cc = feats[agent].mean(axis=0), feats[cust].mean(axis=0)
    out = np.zeros(len(atoms))
    d = np.sum((feats[known] - cc) ** 2, axis=1) - np.sum((feats[known] - ca) ** 2, axis=1)
    out[known] = np.clip(d / feats.shape[1], -opts.voice_clip, opts.voice_clip)
    return out


def _viterbi(emit: np.ndarray, stay: float) -> list[int]:
    """Most likely agent(0)/customer(1) sequence given per-atom agent log-odds ``emit``."""
    keep, switch = math.log(stay), math.log(1 - stay)
    score = np.array([emit[0] / 2, -emit[0] / 2])
    back = []
    for e in emit[1:]:
        to_a = (score[0] + keep, score[1] + switch)
        to_c = (score[0] + switch, score[1] + keep)
        back.append((int(to_a[1] > to_a[0]), int(to_c[1] > to_c[0])))
        score = np.array([max(to_a) + e / 2, max(to_c) - e / 2])
    state = int(score[1] > score[0])
    path = [state]
    for step in reversed(back):
        state = step[state]
        path.append(state)
    return path[::-1]


def label_atoms(atoms: Sequence[Atom], model: TextRoleModel, opts: LabelOptions | None = None) -> list[str]:
    """Agent or customer for each atom: words + voice + turn-taking, by Viterbi."""
    if not atoms:
        return []
    opts = opts or LabelOptions()
    text = np.clip([model.log_odds(a.text) for a in atoms], -opts.text_clip, opts.text_clip)
    emit = opts.text_weight * text
    emit[0] += opts.first_is_agent
    path = _viterbi(emit, opts.stay)
    for _ in range(opts.rounds):
        # seed the voices from what the words (and the previous round) say, then listen again
        agentness = emit + np.where(np.array(path) == 0, opts.seed, -opts.seed)
        voice = _voice_scores(atoms, agentness, opts)
        path = _viterbi(emit + opts.voice_weight * voice, opts.stay)
    return ["agent" if s == 0 else "customer" for s in path]


def main(argv: list[str]) -> int:
    """python -m pipeline.roles train [CORPUS_DIR] [OUT]"""
    if not argv or argv[0] != "train":
        print(main.__doc__)
        return 2
    root = Path(__file__).resolve().parent.parent / "models"
    corpus = Path(argv[1]) if len(argv) > 1 else root / "corpus" / "conversations"
    out = Path(argv[2]) if len(argv) > 2 else root / "role_text" / "role_nb.json"
    turns = corpus_turns(corpus)
    model = TextRoleModel.train(turns)
    model.save(out)
    print(f"trained {MODEL_VERSION} on {len(turns)} turns from {corpus}: {len(model.weights)} grams → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
