"""The learned judge's network, its inputs, and its folder on disk.

Per turn, three readers sit side by side:
- a transformers encoder (BERT architecture) over the turn's characters: trained from scratch on the corpus by
  default, or any pretrained encoder folder (``zhijian train --base bert-base-chinese/``) fine-tuned;
- a bag of character 1–3-grams (punctuation removed, so typed chats and recognised speech read alike): cheap,
  and robust when a paraphrase shares words but not word order;
- a bag of words and word bigrams (``NetConfig.word_dim`` > 0): the jieba/spaCy words of the text stage
  (``Turn.tokens``), so the domain lexicon's words (物业费, 不归我们管) count as one unit each; models trained
  before it have no such bag and read exactly as they did;
- the rules' evidence for the turn (``RulesJudge.turn_features``), dropped at random in training so the model
  learns not to lean on it.
A small transformer then reads the turns in order (greetings open, farewells close; a restatement echoes the
customer's turn before it), and heads answer per
turn (script-item tags, courtesy, escalation) and per conversation (complaint type, customer emotion) by
attention over the turns. The attention weights name the evidence turns.

The folder (``models/judge/`` by default):
    encoder/          save_pretrained() of the encoder and its tokenizer
    judge.safetensors the other weights; an ensemble's further members whole, under ``member1.``, ``member2.``…
    judge.json        sizes, n-gram vocabulary, calibration temperatures, training summary
    CARD.md           the model card

An ensemble (``JudgeMeta.members`` > 1; ``zhijian train`` makes three) is networks of the same shape and inputs
trained from other seeds; ``JudgeModel.forward`` averages their outputs (``averaged``), so everything after it —
windows, temperatures, thresholds — reads one set of logits, as with one network.

Input limits: a conversation is read ``MAX_TURNS`` turns at a time, in training and at inference alike.
Training reads a random window of a longer conversation each epoch (not its head: closings and farewells are at
the end); inference reads a longer one in overlapping windows, takes each turn's tags from the window where the
turn is most central, and averages the conversation-level heads over the windows. Positions are the turns'
positions in the whole conversation, so a window's last turn is not mistaken for the conversation's end.

Where it runs: ``resolve_device`` turns the ``judge_device`` setting (auto | cpu | cuda) into a torch device;
``load`` moves the network there and ``predict_many`` moves each batch after building it on the CPU (the
tokenizer and n-gram lookup are Python). The network stays float32 on either device, so a GPU changes the
speed, not the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.learning.corpus import AGENT_TAGS, CUSTOMER_TAGS, TURN_TAGS
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, Role

log = logging.getLogger("zhijian")

FORMAT_VERSION = 1
# the most turns the network reads at once, in training and at inference (see the module's docstring)
MAX_TURNS = 40
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class NetConfig:
    """Sizes of everything that is not the encoder (the encoder's own config.json has its sizes)."""

    ngram_dim: int = 64
    rule_features: int = 0
    context_dim: int = 128
    context_layers: int = 1
    max_tokens: int = 64  # characters of a turn the encoder reads (a longer turn's n-grams still count)
    dropout: float = 0.1
    # size of the bag of words and word bigrams; 0 = none (every model folder written before it had none)
    word_dim: int = 0


@dataclass
class JudgeMeta:
    """judge.json: what a loaded model needs besides its weights."""

    net: NetConfig
    ngrams: list[str]
    words: list[str] = field(default_factory=list)  # word and word-bigram vocabulary (net.word_dim > 0)
    temperatures: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    # weight of the rules' evidence beside the model's, per head (0 = the model alone); tuned in training
    rule_weights: dict[str, float] = field(default_factory=dict)
    # how the rules' verdict backs the model's, tuned with the thresholds on the tune split (``tuning.backing``):
    # "ownership": "agree" (pushed away only when model and rules agree) | "model" | "either". A folder
    # without it (trained before the policy was tuned) keeps the policy it was shipped with.
    backing: dict[str, str] = field(default_factory=dict)
    # networks whose outputs are averaged (``JudgeModel.others`` beside ``net``); 1 = one network, as every
    # folder written before ensembles
    members: int = 1
    version: str = "2"
    format: int = FORMAT_VERSION
    training: dict[str, Any] = field(default_factory=dict)

    def threshold(self, tag: str) -> float:
        return self.thresholds.get(tag, 0.5)

    def ownership_policy(self) -> str:
        return self.backing.get("ownership", "agree")

    def rule_weight(self, head: str) -> float:
        return self.rule_weights.get(head, 0.0)

    def temperature(self, head: str) -> float:
        return self.temperatures.get(head, 1.0)


# --------------------------------------------------------------------------------------------------
# text → inputs


def flatten(text: str) -> str:
    """Letters and digits only, lower case: what the n-gram bag reads."""
    return "".join(c for c in text.lower() if c.isalnum())


def char_ngrams(text: str, sizes: Sequence[int] = (1, 2, 3)) -> list[str]:
    flat = flatten(text)
    return [flat[i:i + n] for n in sizes for i in range(len(flat) - n + 1)]


def build_ngram_vocab(texts: Iterable[str], min_count: int = 2, max_size: int = 60000) -> list[str]:
    counts = Counter(g for t in texts for g in char_ngrams(t))
    kept = [g for g, c in counts.most_common(max_size) if c >= min_count]
    return sorted(kept, key=lambda g: (len(g), -counts[g], g))


def word_grams(words: Sequence[str]) -> list[str]:
    """The word bag's entries for a turn's segmented words: each word (flattened as the n-grams are; a word that
    is only punctuation is dropped) and each pair of neighbouring words ("不归 我们")."""
    flat = [f for f in (flatten(w) for w in words) if f]
    return flat + [f"{a} {b}" for a, b in pairwise(flat)]


def build_word_vocab(turn_words: Iterable[Sequence[str]], min_count: int = 2, max_size: int = 40000) -> list[str]:
    counts = Counter(g for words in turn_words for g in word_grams(words))
    kept = [g for g, c in counts.most_common(max_size) if c >= min_count]
    return sorted(kept, key=lambda g: (" " in g, -counts[g], g))


def spaced(text: str) -> str:
    """One character per 'word', so a character-level WordPiece vocabulary never needs '##' pieces."""
    s = unicodedata.normalize("NFKC", text)
    return " ".join(c for c in s if not c.isspace())


def write_char_vocab(texts: Iterable[str], folder: Path, min_count: int = 2) -> Path:
    counts = Counter(c for t in texts for c in unicodedata.normalize("NFKC", t).lower() if not c.isspace())
    chars = sorted(c for c, n in counts.items() if n >= min_count)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join([*SPECIAL_TOKENS, *chars]) + "\n", encoding="utf-8")
    return path


@dataclass
class TurnInput:
    role: Role
    text: str  # normalised text (text.normalise)
    features: list[float]  # rule features (empty when the model has none)
    words: list[str] = field(default_factory=list)  # segmented words (text.segment / Turn.tokens)


@dataclass
class Batch:
    """A batch of conversations, turns flattened for the encoder and laid out [conversation, turn]."""

    encoded: dict[str, torch.Tensor]
    bag_ids: torch.Tensor
    bag_offsets: torch.Tensor
    features: torch.Tensor
    roles: torch.Tensor  # [N] 0 agent, 1 customer
    layout: torch.Tensor  # [B, T] index into the N turns, -1 = padding
    topic_ids: torch.Tensor  # per conversation: the n-grams of what the customer said (all turns if nothing)
    topic_offsets: torch.Tensor
    position: torch.Tensor  # [B, T] each turn's position in its whole conversation
    from_end: torch.Tensor  # [B, T] turns after it in its whole conversation
    word_ids: torch.Tensor  # the word bag, as bag_ids (empty when the model has none)
    word_offsets: torch.Tensor
    topic_word_ids: torch.Tensor  # per conversation: the words of what the customer said, as topic_ids
    topic_word_offsets: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (itself when it is already there: the CPU path copies nothing)."""
        if self.layout.device == device:
            return self
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "encoded"}
        return Batch(encoded={k: v.to(device) for k, v in self.encoded.items()}, **moved)


def _tokenize(tokenizer: Any, texts: list[str], max_tokens: int) -> dict[str, torch.Tensor]:
    """Token ids, padded to the longest turn. A fast tokenizer's Rust backend is called directly (the Python
    wrapper costs more than the tokenising on short turns); a slow tokenizer goes the documented way."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return dict(tokenizer(texts, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"))
    backend = _padded_backend(backend, max_tokens, tokenizer.pad_token_id, tokenizer.pad_token)
    # one by one: encode_batch wakes a thread pool that fights torch's threads for the same cores
    enc = [backend.encode(t) for t in texts]
    width = max((len(e.ids) for e in enc), default=0)
    ids = torch.full((len(enc), width), int(tokenizer.pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    types = torch.zeros((len(enc), width), dtype=torch.long)
    for i, e in enumerate(enc):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(e.type_ids)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


_BACKENDS: dict[int, Any] = {}


def _padded_backend(backend: Any, max_tokens: int, pad_id: int, pad_token: str) -> Any:
    key = id(backend)
    if key not in _BACKENDS:
        import copy

        own = copy.deepcopy(backend)
        own.enable_truncation(max_length=max_tokens)
        own.no_padding()
        _BACKENDS[key] = (backend, own)  # keeps ``backend`` alive, so its id is not reused
    return _BACKENDS[key][1]


def _bag(per_turn: list[list[int]]) -> tuple[list[int], list[int]]:
    ids: list[int] = []
    offsets: list[int] = []
    for grams in per_turn:
        offsets.append(len(ids))
        ids.extend(grams)
    return ids, offsets


def make_batch(conversations: Sequence[Sequence[TurnInput]], tokenizer: Any, ngram_index: dict[str, int],
               net: NetConfig, word_index: dict[str, int] | None = None,
               spans: Sequence[tuple[int, int]] | None = None) -> Batch:
    """The network's inputs. ``spans`` gives, per conversation, where its turns start in the whole conversation
    and how many turns that has (a window of a longer one); by default each is whole."""
    turns = [t for conv in conversations for t in conv]
    encoded = _tokenize(tokenizer, [spaced(t.text) for t in turns], net.max_tokens)
    turn_grams = [[ngram_index[g] for g in char_ngrams(t.text) if g in ngram_index] for t in turns]
    ids, offsets = _bag(turn_grams)
    words = word_index if net.word_dim else None
    turn_words = [[words[g] for g in word_grams(t.words) if g in words] if words else [] for t in turns]
    word_ids, word_offsets = _bag(turn_words)
    topic: list[list[int]] = []
    topic_words: list[list[int]] = []
    n = 0
    for conv in conversations:
        mine = range(n, n + len(conv))
        said = [i for i in mine if turns[i].role == "customer"] or list(mine)
        topic.append([g for i in said for g in turn_grams[i]])
        topic_words.append([g for i in said for g in turn_words[i]])
        n += len(conv)
    topic_ids, topic_offsets = _bag(topic)
    topic_word_ids, topic_word_offsets = _bag(topic_words)
    width = max(len(conv) for conv in conversations) if conversations else 0
    layout = torch.full((len(conversations), width), -1, dtype=torch.long)
    position = torch.zeros((len(conversations), width), dtype=torch.long)
    from_end = torch.zeros((len(conversations), width), dtype=torch.long)
    n = 0
    for b, conv in enumerate(conversations):
        first, total = spans[b] if spans is not None else (0, len(conv))
        layout[b, : len(conv)] = torch.arange(n, n + len(conv))
        position[b, : len(conv)] = torch.arange(first, first + len(conv))
        from_end[b, : len(conv)] = total - 1 - position[b, : len(conv)]
        n += len(conv)

    def longs(xs: list[int]) -> torch.Tensor:
        return torch.tensor(xs, dtype=torch.long)

    return Batch(
        encoded={k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
        bag_ids=longs(ids),
        bag_offsets=longs(offsets),
        features=torch.tensor([t.features for t in turns], dtype=torch.float32).reshape(len(turns), net.rule_features),
        roles=longs([0 if t.role == "agent" else 1 for t in turns]),
        layout=layout,
        topic_ids=longs(topic_ids),
        topic_offsets=longs(topic_offsets),
        position=position,
        from_end=from_end,
        word_ids=longs(word_ids),
        word_offsets=longs(word_offsets),
        topic_word_ids=longs(topic_word_ids),
        topic_word_offsets=longs(topic_word_offsets),
    )


def windows(n: int, size: int = MAX_TURNS) -> list[tuple[int, int]]:
    """The windows (start, end) a conversation of ``n`` turns is read in: itself when it fits, else windows of
    ``size`` turns overlapping by half, the last one ending at the last turn."""
    if n <= size:
        return [(0, n)]
    starts = list(range(0, n - size + 1, max(1, size // 2)))
    if starts[-1] != n - size:
        starts.append(n - size)
    return [(s, s + size) for s in starts]


def most_central(i: int, spans: Sequence[tuple[int, int]]) -> int:
    """The window (by index in ``spans``) in which turn ``i`` is nearest the middle (the first on a tie)."""
    return min((w for w, (s, e) in enumerate(spans) if s <= i < e),
               key=lambda w: abs(i - (spans[w][0] + spans[w][1] - 1) / 2))


# --------------------------------------------------------------------------------------------------
# the network


@dataclass
class Output:
    turn_logits: torch.Tensor  # [B, T, len(TURN_TAGS)]
    complaint_logits: torch.Tensor  # [B, 13]
    emotion_logits: torch.Tensor  # [B, 3]
    complaint_attention: torch.Tensor  # [B, T]
    emotion_attention: torch.Tensor  # [B, T]
    mask: torch.Tensor  # [B, T] real turns
    customer: torch.Tensor  # [B, T] customer turns


class _Pool(nn.Module):
    """Attention pooling over the turns a mask allows, concatenated with their max."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.score(h).squeeze(-1).masked_fill(~allowed, -1e4)
        w = torch.softmax(s, dim=-1) * allowed
        pooled = torch.einsum("bt,btd->bd", w, h)
        peak = h.masked_fill(~allowed.unsqueeze(-1), -1e4).max(dim=1).values
        peak = torch.where(allowed.any(dim=1, keepdim=True), peak, torch.zeros_like(peak))
        return torch.cat([pooled, peak], dim=-1), w


class JudgeNet(nn.Module):
    def __init__(self, encoder: nn.Module, encoder_dim: int, n_ngrams: int, net: NetConfig, n_words: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.net = net
        d = net.context_dim
        self.bag = nn.EmbeddingBag(max(1, n_ngrams), net.ngram_dim, mode="mean")  # an empty bag reads as zeros
        self.role = nn.Embedding(2, 16)
        self.project = nn.Sequential(
            nn.Linear(encoder_dim + net.ngram_dim + net.word_dim + net.rule_features + 16, d), nn.GELU(),
            nn.Dropout(net.dropout)
        )
        # only when the model has words: a folder written before them has no such weights, and loads as it was
        self.words: nn.EmbeddingBag | None = None
        self.complaint_by_words: nn.EmbeddingBag | None = None
        if net.word_dim:
            self.words = nn.EmbeddingBag(max(1, n_words), net.word_dim, mode="mean")
            self.complaint_by_words = nn.EmbeddingBag(max(1, n_words), len(COMPLAINT_TYPES), mode="mean")
            nn.init.zeros_(self.complaint_by_words.weight)
        self.position = nn.Embedding(32, d)
        self.from_end = nn.Embedding(8, d)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=2 * d, dropout=net.dropout, batch_first=True)
        self.context = nn.TransformerEncoder(layer, net.context_layers, enable_nested_tensor=False)
        self.turn_head = nn.Linear(2 * d, len(TURN_TAGS))
        self.complaint_pool = _Pool(d)
        self.complaint_head = nn.Linear(2 * d, len(COMPLAINT_TYPES))
        # a linear reading of the customer's words: topic is mostly vocabulary, and this path needs little data
        self.complaint_words = nn.EmbeddingBag(max(1, n_ngrams), len(COMPLAINT_TYPES), mode="mean")
        nn.init.zeros_(self.complaint_words.weight)
        self.emotion_pool = _Pool(d)
        self.emotion_head = nn.Linear(2 * d, len(EMOTIONS))

    def _encode(self, encoded: dict[str, torch.Tensor], buckets: int = 4) -> torch.Tensor:
        """Mean of the encoder's last layer per turn. Turns are run in length buckets, each cut to its own
        longest turn, so a batch of mostly short turns does not pay for its longest one."""
        mask = encoded["attention_mask"]
        lengths = mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        out = torch.zeros(mask.shape[0], encoder_dim(self.encoder), device=mask.device)
        # buckets pay only when there are many turns: each encoder call has a fixed Python cost
        for part in torch.tensor_split(order, max(1, min(buckets, len(order) // 32))):
            if len(part) == 0:
                continue
            width = int(lengths[part].max())
            sub = {k: v[part, :width] for k, v in encoded.items()}
            hidden = self.encoder(**sub).last_hidden_state
            m = sub["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out = out.index_copy(0, part, (hidden * m).sum(1) / m.sum(1).clamp(min=1.0))
        return out

    def forward(self, batch: Batch) -> Output:
        text = self._encode(batch.encoded)
        parts = [text, self.bag(batch.bag_ids, batch.bag_offsets)]
        if self.words is not None:
            parts.append(self.words(batch.word_ids, batch.word_offsets))
        local = self.project(torch.cat([*parts, batch.features, self.role(batch.roles)], dim=-1))

        mask = batch.layout >= 0
        idx = batch.layout.clamp(min=0)
        h = local[idx] * mask.unsqueeze(-1)
        from_end = batch.from_end.clamp(min=0, max=7)
        c = self.context(h + self.position(batch.position.clamp(max=31)) + self.from_end(from_end),
                         src_key_padding_mask=~mask)
        turn_logits = self.turn_head(torch.cat([h, c], dim=-1))

        customer = mask & (batch.roles[idx] == 1)
        pooled_ct, w_ct = self.complaint_pool(c, mask)
        has_customer = customer.any(dim=1, keepdim=True)
        pooled_em, w_em = self.emotion_pool(c, torch.where(has_customer, customer, mask))
        complaint = self.complaint_head(pooled_ct) + self.complaint_words(batch.topic_ids, batch.topic_offsets)
        if self.complaint_by_words is not None:
            complaint = complaint + self.complaint_by_words(batch.topic_word_ids, batch.topic_word_offsets)
        return Output(turn_logits, complaint, self.emotion_head(pooled_em), w_ct, w_em, mask, customer)


# --------------------------------------------------------------------------------------------------
# the folder


def averaged(outputs: Sequence[Output]) -> Output:
    """The ensemble's output: each head's logits and each pool's attention averaged over the members (the
    masks are the batch's, the same for all)."""
    if len(outputs) == 1:
        return outputs[0]

    def mean(name: str) -> torch.Tensor:
        return torch.stack([getattr(o, name) for o in outputs]).mean(0)

    first = outputs[0]
    return Output(mean("turn_logits"), mean("complaint_logits"), mean("emotion_logits"), mean("complaint_attention"),
                  mean("emotion_attention"), first.mask, first.customer)


@dataclass
class Raw:
    """One conversation's uncalibrated outputs, windows merged (``JudgeModel.raw_many``)."""

    turn_logits: torch.Tensor  # [n, len(TURN_TAGS)]
    complaint_logits: torch.Tensor  # [13]
    emotion_logits: torch.Tensor  # [3]
    complaint_attention: list[float]
    emotion_attention: list[float]


@dataclass
class JudgeModel:
    """A loaded model: network, tokenizer, n-gram and word indexes and meta, ready to predict. ``others`` are
    the ensemble's further networks (same inputs, other seeds): their outputs are averaged with ``net``'s."""

    net: JudgeNet
    tokenizer: Any
    ngram_index: dict[str, int]
    meta: JudgeMeta
    path: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where ``net`` is
    word_index: dict[str, int] = field(default_factory=dict)
    others: list[JudgeNet] = field(default_factory=list)

    @property
    def members(self) -> list[JudgeNet]:
        return [self.net, *self.others]

    def forward(self, batch: Batch) -> Output:
        """The ensemble's output for a batch (one network's, when there is one)."""
        return averaged([m(batch) for m in self.members])

    def batch(self, conversations: Sequence[Sequence[TurnInput]],
              spans: Sequence[tuple[int, int]] | None = None) -> Batch:
        return make_batch(conversations, self.tokenizer, self.ngram_index, self.meta.net, self.word_index, spans)

    def predict(self, turns: Sequence[TurnInput]) -> Prediction:
        """Calibrated probabilities for one conversation."""
        return self.predict_many([turns])[0]

    @torch.inference_mode()
    def raw_many(self, conversations: Sequence[Sequence[TurnInput]]) -> list[Raw]:
        """Uncalibrated outputs for several conversations in one forward pass (the per-call cost of the encoder
        is paid once), each read in windows of at most ``MAX_TURNS`` turns: a turn's logits come from the window
        where it is most central, the conversation-level logits and attention are averaged over the windows.
        The network must be in eval mode (``load`` leaves it so; training sets it back before predicting)."""
        rows: list[Sequence[TurnInput]] = []
        spans: list[tuple[int, int]] = []
        owner: list[list[int]] = []  # per conversation: its rows
        for conv in conversations:
            mine = []
            for s, e in windows(len(conv)):
                mine.append(len(rows))
                rows.append(conv[s:e])
                spans.append((s, len(conv)))
            owner.append(mine)
        out = self.forward(self.batch(rows, spans).to(self.device))
        turn_logits, complaint, emotion = out.turn_logits.cpu(), out.complaint_logits.cpu(), out.emotion_logits.cpu()
        ct_att, em_att = out.complaint_attention.cpu(), out.emotion_attention.cpu()
        raws = []
        for conv, mine in zip(conversations, owner, strict=True):
            n = len(conv)
            if len(mine) == 1:
                r = mine[0]
                raws.append(Raw(turn_logits[r, :n], complaint[r], emotion[r], ct_att[r, :n].tolist(),
                                em_att[r, :n].tolist()))
                continue
            where = [(spans[r][0], spans[r][0] + len(rows[r])) for r in mine]
            central = [most_central(i, where) for i in range(n)]
            per_turn = torch.stack([turn_logits[mine[w], i - where[w][0]] for i, w in enumerate(central)])
            ct_sum, em_sum = torch.zeros(n), torch.zeros(n)
            for r, (s, e) in zip(mine, where, strict=True):
                ct_sum[s:e] += ct_att[r, : e - s]
                em_sum[s:e] += em_att[r, : e - s]
            k = len(mine)
            raws.append(Raw(per_turn, complaint[mine].mean(0), emotion[mine].mean(0), (ct_sum / k).tolist(),
                            (em_sum / k).tolist()))
        return raws

    @torch.inference_mode()
    def predict_many(self, conversations: Sequence[Sequence[TurnInput]]) -> list[Prediction]:
        """Calibrated probabilities for several conversations (``raw_many``, then each head's temperature)."""
        if not conversations:
            return []
        raws = self.raw_many(conversations)
        temps = torch.tensor([self.meta.temperature(tag) for tag in TURN_TAGS])
        at = {tag: j for j, tag in enumerate(TURN_TAGS)}
        preds = []
        for turns, raw in zip(conversations, raws, strict=True):
            turn_p = torch.sigmoid(raw.turn_logits / temps).tolist()
            complaint = torch.softmax(raw.complaint_logits / self.meta.temperature("complaint_type"), -1).tolist()
            emotion = torch.softmax(raw.emotion_logits / self.meta.temperature("customer_emotion"), -1).tolist()
            preds.append(Prediction(
                tags=[{tag: turn_p[i][at[tag]] for tag in (AGENT_TAGS if t.role == "agent" else CUSTOMER_TAGS)}
                      for i, t in enumerate(turns)],
                complaint=dict(zip(COMPLAINT_TYPES, complaint, strict=True)),
                emotion=dict(zip(EMOTIONS, emotion, strict=True)),
                complaint_attention=raw.complaint_attention,
                emotion_attention=raw.emotion_attention,
            ))
        return preds


@dataclass
class Prediction:
    tags: list[dict[str, float]]  # per turn: tag → calibrated probability
    complaint: dict[str, float]
    emotion: dict[str, float]
    complaint_attention: list[float]
    emotion_attention: list[float]


def new_encoder(vocab_file: Path, hidden: int = 128, layers: int = 2, heads: int = 4) -> tuple[nn.Module, Any]:
    """A small BERT over characters, randomly initialised (no pretrained Chinese encoder is needed)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return BertModel(config, add_pooling_layer=False), tokenizer


def pretrained_encoder(path: Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # a checkpoint's unused pooler is not news to the operator
    try:
        try:
            encoder = AutoModel.from_pretrained(str(path), add_pooling_layer=False)  # BERT-like: no pooler needed
        except TypeError:
            encoder = AutoModel.from_pretrained(str(path))
        return encoder, AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError("E074", path, detail=f"not a transformers encoder folder: {e}") from e


def encoder_dim(encoder: nn.Module) -> int:
    return int(encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]


def save(model: JudgeModel, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.net.encoder.save_pretrained(str(folder / "encoder"))  # type: ignore[operator]
    model.tokenizer.save_pretrained(str(folder / "encoder"))
    rest = {k: v.contiguous() for k, v in model.net.state_dict().items() if not k.startswith("encoder.")}
    # the further members whole (encoder included), each under its own prefix: member1.encoder..., member1.bag...
    for k, other in enumerate(model.others, start=1):
        rest.update({f"member{k}.{name}": v.contiguous() for name, v in other.state_dict().items()})
    model.meta.members = 1 + len(model.others)
    save_file(rest, str(folder / "judge.safetensors"))
    # the version names the weights, so every finding says which model made it
    digest = hashlib.sha256((folder / "judge.safetensors").read_bytes())
    digest.update((folder / "encoder" / "model.safetensors").read_bytes())
    model.meta.version = f"2.{digest.hexdigest()[:8]}"
    meta = asdict(model.meta)
    (folder / "judge.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
            "(no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it)")


def resolve_device(setting: str) -> torch.device:
    """The torch device for the ``judge_device`` setting: 'auto' is the first CUDA device when torch sees
    one and else the CPU; 'cuda' asked for on a machine without one is a start-up error (E077), never a
    silent fall-back to the CPU or a crash mid-night."""
    if setting == "cpu":
        return torch.device("cpu")
    if setting not in ("auto", "cuda"):
        raise ConfigError("E077", device=setting, detail="not one of auto, cpu, cuda")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        raise ConfigError("E077", device=setting, detail=_no_cuda_reason())
    return torch.device("cpu")


def load(folder: Path, device: torch.device | str = "cpu") -> JudgeModel:
    """Load a model folder onto ``device`` (E073 names what is missing; E074 what is broken; E077 a device
    the network cannot be moved to)."""
    missing = [n for n in ("encoder", "judge.safetensors", "judge.json") if not (folder / n).exists()]
    if missing:
        raise ConfigError("E073", folder, missing=", ".join(missing))
    from safetensors.torch import load_file

    try:
        raw = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
        meta = JudgeMeta(**{**raw, "net": NetConfig(**raw["net"])})
        if meta.format != FORMAT_VERSION:
            raise ValueError(f"format {meta.format}, this version reads {FORMAT_VERSION}")
        encoder, tokenizer = pretrained_encoder(folder / "encoder")
        net = JudgeNet(encoder, encoder_dim(encoder), len(meta.ngrams), meta.net, len(meta.words))
        own, further = _by_member(load_file(str(folder / "judge.safetensors")))
        # every member judge.json names must be there, and no other: not a silently smaller ensemble
        if sorted(further) != list(range(1, meta.members)):
            raise ValueError(f"judge.json names {meta.members} members, judge.safetensors holds member weights "
                             f"{sorted(further)} beside the first network's")
        result = net.load_state_dict(own, strict=False)
        unexpected = [k for k in result.missing_keys if not k.startswith("encoder.")] + list(result.unexpected_keys)
        if unexpected:
            raise ValueError(f"weights do not match the network: {unexpected[:5]}")
        others = [_member(net, meta, further[k], k) for k in range(1, meta.members)]
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ConfigError("E074", folder, detail=str(e)) from e
    for m in (net, *others):
        m.eval()
    where = torch.device(device)
    if where.type != "cpu":
        try:
            for m in (net, *others):
                m.to(where)
        except (RuntimeError, AssertionError) as e:  # no driver, out of memory, a torch built without CUDA
            raise ConfigError("E077", device=str(where), detail=str(e).splitlines()[0]) from e
    log.info("loaded judge model %s (%s) on %s", folder, meta.version, where)
    return JudgeModel(net, tokenizer, {g: i for i, g in enumerate(meta.ngrams)}, meta, folder, where,
                      {g: i for i, g in enumerate(meta.words)}, others)


_MEMBER_KEY = re.compile(r"member(\d+)\.")  # a further member's weight name in judge.safetensors (``save``)


def _by_member(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[int, dict[str, torch.Tensor]]]:
    """judge.safetensors split as ``save`` wrote it: the first network's weights, and each further member's
    (``member{k}.name``) under its k with the prefix removed."""
    own: dict[str, torch.Tensor] = {}
    further: dict[int, dict[str, torch.Tensor]] = {}
    for name, v in weights.items():
        m = _MEMBER_KEY.match(name)
        if m is None:
            own[name] = v
        else:
            further.setdefault(int(m.group(1)), {})[name[m.end():]] = v
    return own, further


def _member(first: JudgeNet, meta: JudgeMeta, mine: dict[str, torch.Tensor], k: int) -> JudgeNet:
    """Ensemble member ``k`` (k >= 1): the first member's architecture, its own weights (``mine``)."""
    from transformers import AutoModel

    config = first.encoder.config
    try:
        encoder = AutoModel.from_config(config, add_pooling_layer=False)  # as pretrained_encoder: no pooler
    except TypeError:
        encoder = AutoModel.from_config(config)
    net = JudgeNet(encoder, encoder_dim(encoder), len(meta.ngrams), meta.net, len(meta.words))
    result = net.load_state_dict(mine, strict=False)  # a member is saved whole (an unused pooler aside)
    wrong = [n for n in result.missing_keys if not n.startswith("encoder.pooler.")] + list(result.unexpected_keys)
    if wrong:
        raise ValueError(f"member {k}'s weights do not match the network: {wrong[:5]}")
    return net


@lru_cache(maxsize=2)
def load_cached(folder: Path, device: torch.device | str = "cpu") -> JudgeModel:
    """One copy per process and device, however many judges or runs ask for it."""
    return load(folder, device)
