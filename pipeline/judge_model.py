"""The learned judge's network, its inputs, and its folder on disk.

Per turn, three readers sit side by side:
- a transformers encoder (BERT architecture) over the turn's characters: trained from scratch on the corpus by
  default, or any pretrained encoder folder (``zhijian train --base bert-base-chinese/``) fine-tuned;
- a bag of character 1–3-grams (punctuation removed, so typed chats and recognised speech read alike): cheap,
  and robust when a paraphrase shares words but not word order;
- the rules' evidence for the turn (``RulesJudge.turn_features``), dropped at random in training so the model
  learns not to lean on it.
A small transformer then reads the turns in order (greetings open, farewells close; a restatement echoes the
customer's turn before it), and heads answer per
turn (script-item tags, courtesy, escalation) and per conversation (complaint type, customer emotion) by
attention over the turns. The attention weights name the evidence turns.

The folder (``models/judge/`` by default):
    encoder/          save_pretrained() of the encoder and its tokenizer
    judge.safetensors the other weights
    judge.json        sizes, n-gram vocabulary, calibration temperatures, training summary
    CARD.md           the model card

Where it runs: ``resolve_device`` turns the ``judge_device`` setting (auto | cpu | cuda) into a torch device;
``load`` moves the network there and ``predict_many`` moves each batch after building it on the CPU (the
tokenizer and n-gram lookup are Python). The network stays float32 on either device, so a GPU changes the
speed, not the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.corpus import AGENT_TAGS, CUSTOMER_TAGS, TURN_TAGS
from pipeline.errors import ConfigError
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, Role

log = logging.getLogger("zhijian")

FORMAT_VERSION = 1
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


@dataclass
class JudgeMeta:
    """judge.json: what a loaded model needs besides its weights."""

    net: NetConfig
    ngrams: list[str]
    temperatures: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    # weight of the rules' evidence beside the model's, per head (0 = the model alone); tuned in training
    rule_weights: dict[str, float] = field(default_factory=dict)
    version: str = "2"
    format: int = FORMAT_VERSION
    training: dict[str, Any] = field(default_factory=dict)

    def threshold(self, tag: str) -> float:
        return self.thresholds.get(tag, 0.5)

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

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (itself when it is already there: the CPU path copies nothing)."""
        if self.layout.device == device:
            return self
        return Batch(encoded={k: v.to(device) for k, v in self.encoded.items()}, bag_ids=self.bag_ids.to(device),
                     bag_offsets=self.bag_offsets.to(device), features=self.features.to(device),
                     roles=self.roles.to(device), layout=self.layout.to(device),
                     topic_ids=self.topic_ids.to(device), topic_offsets=self.topic_offsets.to(device))


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


def make_batch(conversations: Sequence[Sequence[TurnInput]], tokenizer: Any, ngram_index: dict[str, int],
               net: NetConfig) -> Batch:
    turns = [t for conv in conversations for t in conv]
    encoded = _tokenize(tokenizer, [spaced(t.text) for t in turns], net.max_tokens)
    ids: list[int] = []
    offsets: list[int] = []
    turn_grams = []
    for t in turns:
        offsets.append(len(ids))
        grams = [ngram_index[g] for g in char_ngrams(t.text) if g in ngram_index]
        turn_grams.append(grams)
        ids.extend(grams)
    topic_ids: list[int] = []
    topic_offsets: list[int] = []
    n = 0
    for conv in conversations:
        topic_offsets.append(len(topic_ids))
        mine = range(n, n + len(conv))
        said = [i for i in mine if turns[i].role == "customer"] or list(mine)
        topic_ids.extend(g for i in said for g in turn_grams[i])
        n += len(conv)
    width = max(len(conv) for conv in conversations) if conversations else 0
    layout = torch.full((len(conversations), width), -1, dtype=torch.long)
    n = 0
    for b, conv in enumerate(conversations):
        layout[b, : len(conv)] = torch.arange(n, n + len(conv))
        n += len(conv)
    return Batch(
        encoded={k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
        bag_ids=torch.tensor(ids, dtype=torch.long),
        bag_offsets=torch.tensor(offsets, dtype=torch.long),
        features=torch.tensor([t.features for t in turns], dtype=torch.float32).reshape(len(turns), net.rule_features),
        roles=torch.tensor([0 if t.role == "agent" else 1 for t in turns], dtype=torch.long),
        layout=layout,
        topic_ids=torch.tensor(topic_ids, dtype=torch.long),
        topic_offsets=torch.tensor(topic_offsets, dtype=torch.long),
    )


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
    def __init__(self, encoder: nn.Module, encoder_dim: int, n_ngrams: int, net: NetConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.net = net
        d = net.context_dim
        self.bag = nn.EmbeddingBag(max(1, n_ngrams), net.ngram_dim, mode="mean")  # an empty bag reads as zeros
        self.role = nn.Embedding(2, 16)
        self.project = nn.Sequential(
            nn.Linear(encoder_dim + net.ngram_dim + net.rule_features + 16, d), nn.GELU(), nn.Dropout(net.dropout)
        )
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
        bag = self.bag(batch.bag_ids, batch.bag_offsets)
        local = self.project(torch.cat([text, bag, batch.features, self.role(batch.roles)], dim=-1))

        mask = batch.layout >= 0
        idx = batch.layout.clamp(min=0)
        h = local[idx] * mask.unsqueeze(-1)
        t = batch.layout.shape[1]
        pos = torch.arange(t, device=batch.layout.device).unsqueeze(0).expand_as(batch.layout)
        lengths = mask.sum(1, keepdim=True)
        from_end = (lengths - 1 - pos).clamp(min=0, max=7)
        c = self.context(h + self.position(pos.clamp(max=31)) + self.from_end(from_end), src_key_padding_mask=~mask)
        turn_logits = self.turn_head(torch.cat([h, c], dim=-1))

        customer = mask & (batch.roles[idx] == 1)
        pooled_ct, w_ct = self.complaint_pool(c, mask)
        has_customer = customer.any(dim=1, keepdim=True)
        pooled_em, w_em = self.emotion_pool(c, torch.where(has_customer, customer, mask))
        complaint = self.complaint_head(pooled_ct) + self.complaint_words(batch.topic_ids, batch.topic_offsets)
        return Output(turn_logits, complaint, self.emotion_head(pooled_em), w_ct, w_em, mask, customer)


# --------------------------------------------------------------------------------------------------
# the folder


@dataclass
class JudgeModel:
    """A loaded model: network, tokenizer, n-gram index and meta, ready to predict."""

    net: JudgeNet
    tokenizer: Any
    ngram_index: dict[str, int]
    meta: JudgeMeta
    path: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where ``net`` is

    def batch(self, conversations: Sequence[Sequence[TurnInput]]) -> Batch:
        return make_batch(conversations, self.tokenizer, self.ngram_index, self.meta.net)

    def predict(self, turns: Sequence[TurnInput]) -> Prediction:
        """Calibrated probabilities for one conversation."""
        return self.predict_many([turns])[0]

    @torch.inference_mode()
    def predict_many(self, conversations: Sequence[Sequence[TurnInput]]) -> list[Prediction]:
        """Calibrated probabilities for several conversations in one forward pass (the per-call cost of the
        encoder is paid once). The network must be in eval mode (``load`` leaves it so; training sets it back
        before predicting)."""
        if not conversations:
            return []
        out = self.net(self.batch(conversations).to(self.device))
        temps = torch.tensor([self.meta.temperature(tag) for tag in TURN_TAGS], device=self.device)
        turn_p = torch.sigmoid(out.turn_logits / temps).tolist()
        complaint = torch.softmax(out.complaint_logits / self.meta.temperature("complaint_type"), -1).tolist()
        emotion = torch.softmax(out.emotion_logits / self.meta.temperature("customer_emotion"), -1).tolist()
        ct_att, em_att = out.complaint_attention.tolist(), out.emotion_attention.tolist()
        at = {tag: j for j, tag in enumerate(TURN_TAGS)}
        preds = []
        for b, turns in enumerate(conversations):
            n = len(turns)
            preds.append(Prediction(
                tags=[{tag: turn_p[b][i][at[tag]] for tag in (AGENT_TAGS if t.role == "agent" else CUSTOMER_TAGS)}
                      for i, t in enumerate(turns)],
                complaint=dict(zip(COMPLAINT_TYPES, complaint[b], strict=True)),
                emotion=dict(zip(EMOTIONS, emotion[b], strict=True)),
                complaint_attention=ct_att[b][:n],
                emotion_attention=em_att[b][:n],
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
        net = JudgeNet(encoder, encoder_dim(encoder), len(meta.ngrams), meta.net)
        result = net.load_state_dict(load_file(str(folder / "judge.safetensors")), strict=False)
        unexpected = [k for k in result.missing_keys if not k.startswith("encoder.")] + list(result.unexpected_keys)
        if unexpected:
            raise ValueError(f"weights do not match the network: {unexpected[:5]}")
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ConfigError("E074", folder, detail=str(e)) from e
    net.eval()
    where = torch.device(device)
    if where.type != "cpu":
        try:
            net.to(where)
        except (RuntimeError, AssertionError) as e:  # no driver, out of memory, a torch built without CUDA
            raise ConfigError("E077", device=str(where), detail=str(e).splitlines()[0]) from e
    log.info("loaded judge model %s (%s) on %s", folder, meta.version, where)
    return JudgeModel(net, tokenizer, {g: i for i, g in enumerate(meta.ngrams)}, meta, folder, where)


@lru_cache(maxsize=2)
def load_cached(folder: Path, device: torch.device | str = "cpu") -> JudgeModel:
    """One copy per process and device, however many judges or runs ask for it."""
    return load(folder, device)
