"""``zhijian train``: the learned judge from the project's corpus (and reviewers' corrections).

Deterministic for a given corpus, seed and thread count, and on any x86-64 machine with AVX2 when the CPU
arithmetic is pinned (``numerics``; the ``zhijian train`` command pins it): conversations fall in three splits by
a hash of their id (``split_of``); each of the ensemble's ``members`` networks is trained from its own seed
(``seed + k``: torch and the one generator its shuffling, windows and augmentation draw from). The splits:
- *train*: what the network learns from (reviewers' corrections are always here: they are few, and each one is
  a lesson);
- *tune*: never trained on; the temperatures, decision thresholds and rule weights are fitted on it
  (``tuning``);
- *report*: neither trained nor tuned on; its scores are the model card's, measured by the same code as
  ``zhijian eval`` (``evaluation.metrics``) on the result records the nightly run would export.

What training reads of each conversation is in ``augmentation`` (recogniser-like renderings, a random window of
a long conversation); the rules' evidence is dropped from a quarter of the turns so the model learns the words
as well as the rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.evaluation.metrics import evaluate
from pipeline.judges.learned import LearnedJudge, turn_inputs
from pipeline.judges.rules import FEATURE_NAMES, RulesJudge
from pipeline.learning import numerics, tuning
from pipeline.learning.augmentation import Example, augmented, normalised, random_window, without_punctuation, words_of
from pipeline.learning.corpus import AGENT_TAGS, TURN_TAGS, TrainingConversation, tags_for
from pipeline.learning.model import (
    JudgeMeta,
    JudgeModel,
    JudgeNet,
    NetConfig,
    TurnInput,
    build_ngram_vocab,
    build_word_vocab,
    encoder_dim,
    new_encoder,
    pretrained_encoder,
    save,
    write_char_vocab,
)
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS, ConversationMeta, Transcript, Turn
from pipeline.scorecard import Scorecard, Verdict, assemble, score

log = logging.getLogger("zhijian")

# rare tags weigh more when present: a pushed-away or insulted customer is the finding that matters most
_POSITIVE_WEIGHT = {"ownership_violation": 3.0, "courtesy_violation": 3.0, "escalation": 2.0}

Split = Literal["train", "tune", "report"]


@dataclass
class TrainOptions:
    """What ``zhijian train`` can change. The defaults make the shipped model."""

    out: Path
    base: Path | None = field(default=None, metadata={"help": "pretrained encoder folder to fine-tune"})
    epochs: int = 12
    batch_conversations: int = 8
    learning_rate: float = 2e-3
    encoder_learning_rate: float | None = None  # default: learning_rate from scratch, 3e-5 for a --base
    weight_decay: float = 0.01
    average_last: int = 4  # epochs whose weights are averaged into the saved model
    seed: int = 13
    members: int = 3  # networks trained from seeds seed, seed + 1, ...; the judge averages their outputs
    tune_share: float = 0.1  # conversations the decision settings are tuned on (never trained on)
    report_share: float = 0.1  # conversations the card's scores come from (never trained or tuned on)
    hidden: int = 128  # scratch encoder only
    layers: int = 2
    rule_features: bool = True
    word_features: bool = True  # a bag of the text stage's words and word bigrams beside the character n-grams
    augment: bool = True
    threads: int = 2


def split_of(conv_id: str, tune_share: float, report_share: float) -> Split:
    """The split a conversation falls in, by a hash of its id: the same id always falls in the same one, and a
    new batch of the corpus does not move the old conversations between splits."""
    digest = hashlib.sha256(conv_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:4], "big") / 2**32
    if u < report_share:
        return "report"
    if u < report_share + tune_share:
        return "tune"
    return "train"


@dataclass
class Reader:
    """How training turns an example into the network's inputs: the rules (when the model reads their evidence)
    and the lexicon of the text stage's segmentation (when it reads words)."""

    rules: RulesJudge | None
    lexicon: Path | None

    def turns(self, example: Example) -> list[Turn]:
        """The example's turns as the text stage leaves them: normalised text, and its words."""
        return [Turn(index=i, role=t.role, text=s, norm_text=s, tokens=self.words(s)) for i, (t, s) in
                enumerate(zip(example.conversation.turns, example.texts, strict=True))]

    def words(self, s: str) -> list[str]:
        return list(words_of(s, self.lexicon)) if self.lexicon is not None else []

    def inputs(self, example: Example, rng: random.Random | None) -> list[TurnInput]:
        """The network's inputs; with ``rng``, a quarter of the turns lose the rules' evidence."""
        turns = self.turns(example)
        features = self.rules.turn_features(turns) if self.rules is not None else [[] for _ in turns]
        if rng is not None and self.rules is not None:
            features = [[0.0] * len(f) if rng.random() < 0.25 else f for f in features]
        return turn_inputs(turns, features)


@dataclass
class Targets:
    turn: torch.Tensor  # [B, T, K] 0/1
    turn_known: torch.Tensor  # [B, T, K] bool
    weak: torch.Tensor  # [B, K] bool: some turn of the right role must carry the tag
    role_allows: torch.Tensor  # [B, T, K] bool
    complaint: torch.Tensor  # [B] index or -100
    emotion: torch.Tensor  # [B]


def targets_for(convs: Sequence[TrainingConversation]) -> Targets:
    width, k = max(len(c.turns) for c in convs), len(TURN_TAGS)
    turn = torch.zeros(len(convs), width, k)
    known = torch.zeros(len(convs), width, k, dtype=torch.bool)
    allows = torch.zeros(len(convs), width, k, dtype=torch.bool)
    weak = torch.zeros(len(convs), k, dtype=torch.bool)
    for b, c in enumerate(convs):
        for i, t in enumerate(c.turns):
            for tag in tags_for(t.role):
                j = TURN_TAGS.index(tag)
                allows[b, i, j] = True
                if tag in t.tags:
                    known[b, i, j] = True
                    turn[b, i, j] = float(t.tags[tag])
        for tag, present in c.weak.items():
            if present:
                weak[b, TURN_TAGS.index(tag)] = True
    return Targets(
        turn, known, weak, allows,
        torch.tensor([COMPLAINT_TYPES.index(c.complaint_type) if c.complaint_type else -100 for c in convs]),
        torch.tensor([EMOTIONS.index(c.customer_emotion) if c.customer_emotion else -100 for c in convs]),
    )


def loss_of(out: Any, tg: Targets) -> torch.Tensor:
    logits = out.turn_logits
    weight = torch.tensor([_POSITIVE_WEIGHT.get(tag, 1.0) for tag in TURN_TAGS])
    bce = nn.functional.binary_cross_entropy_with_logits(logits, tg.turn, reduction="none", pos_weight=weight)
    loss = (bce * tg.turn_known).sum() / tg.turn_known.sum().clamp(min=1)
    if tg.weak.any():
        # multiple-instance: the most likely turn of the right role must carry the tag
        best = logits.masked_fill(~tg.role_allows, -1e4).max(dim=1).values  # [B, K]
        mil = nn.functional.binary_cross_entropy_with_logits(best, torch.ones_like(best), reduction="none")
        loss = loss + (mil * tg.weak).sum() / tg.weak.sum()
    if (tg.complaint >= 0).any():
        loss = loss + nn.functional.cross_entropy(out.complaint_logits, tg.complaint, ignore_index=-100)
    if (tg.emotion >= 0).any():
        loss = loss + nn.functional.cross_entropy(out.emotion_logits, tg.emotion, ignore_index=-100)
    return loss


# --------------------------------------------------------------------------------------------------
# the report split's scores


def _labels(conv: TrainingConversation) -> dict[str, Any]:
    """A corpus conversation's labels as ``labels.jsonl`` writes them (spec section 2)."""
    tags = {tag for t in conv.turns for tag, v in t.tags.items() if v}
    return {
        "id": conv.id,
        "complaint_type": conv.complaint_type,
        "script": {it: ("ownership_violation" not in tags) if it == "ownership" else it in tags for it in SCRIPT_ITEMS},
        "courtesy_violation_turns": [i for i, t in enumerate(conv.turns) if t.tags.get("courtesy_violation")],
        "customer_emotion": conv.customer_emotion,
        "escalation_risk": "escalation" in tags,
    }


def report_scores(model: JudgeModel, examples: Sequence[Example], reader: Reader, backing: RulesJudge,
                  settings: Settings) -> dict[str, float]:
    """The headline figures of ``zhijian eval`` (``evaluation.metrics``, as ``tools/score.py``) on the report
    conversations (exact turns), from the result records the nightly run would export for them: the learned
    judge (model, rules' evidence and rules' backing) and the scorecard."""
    judge = LearnedJudge(model, backing, reader.lexicon)
    card = Scorecard.load(settings.scorecard_path)
    def meta(conv: TrainingConversation) -> ConversationMeta:
        return ConversationMeta(id=conv.id, channel="call" if conv.channel == "call" else "chat", agent_id="-",
                                source=conv.source)

    transcripts = [Transcript(meta=meta(ex.conversation), turns=reader.turns(ex)) for ex in examples]
    results = []
    for i in range(0, len(transcripts), 32):  # as the night judges: 32 at a time
        chunk = transcripts[i:i + 32]
        for tr, found in zip(chunk, judge.pipe(chunk), strict=True):
            verdict = Verdict(found)
            results.append(assemble("-", tr, verdict, score(card, verdict, tr)).model_dump(mode="json"))
    report = evaluate(results, {ex.conversation.id: _labels(ex.conversation) for ex in examples})
    return {"conversations": float(len(examples)), **report.headline()}


# --------------------------------------------------------------------------------------------------
# training


def _fit(net: JudgeNet, model: JudgeModel, fit: Sequence[Example], reader: Reader, options: TrainOptions,
         enc_lr: float, rng: random.Random, member: int, progress: Callable[[int, int, float], None] | None) -> None:
    """Train one network on the train split; its saved weights are the average of its last epochs'."""
    enc_params = list(net.encoder.parameters())
    enc_ids = {id(p) for p in enc_params}
    rest = [p for p in net.parameters() if id(p) not in enc_ids]
    optimiser = torch.optim.AdamW([{"params": enc_params, "lr": enc_lr}, {"params": rest, "lr": options.learning_rate}],
                                  weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(fit) / options.batch_conversations)
    total = steps_per_epoch * options.epochs
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))

    averaged: dict[str, torch.Tensor] = {}
    last = max(1, min(options.average_last, options.epochs))
    for epoch in range(options.epochs):
        net.train()
        order = list(fit)
        rng.shuffle(order)
        running = 0.0
        for i in range(0, len(order), options.batch_conversations):
            chunk = order[i:i + options.batch_conversations]
            if options.augment:
                chunk = [augmented(ex, rng) for ex in chunk]
            # the input limit of inference: a long conversation is read through a random window of it
            chunk = [random_window(ex, rng) for ex in chunk]
            batch = model.batch([reader.inputs(ex, rng if options.augment else None) for ex in chunk],
                                [ex.span for ex in chunk])
            loss = loss_of(net(batch), targets_for([ex.conversation for ex in chunk]))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            running += loss.item()
        if epoch >= options.epochs - last:
            # the weights of the last epochs are averaged: one model, less dependent on where the last step fell
            with torch.no_grad():
                for name, value in net.state_dict().items():
                    if value.is_floating_point():
                        averaged[name] = averaged.get(name, torch.zeros_like(value)) + value / last
        log.info("member %d epoch %d/%d loss %.4f", member + 1, epoch + 1, options.epochs, running / steps_per_epoch)
        if progress is not None:
            progress(member * options.epochs + epoch + 1, options.members * options.epochs,
                     running / steps_per_epoch)

    if averaged:
        net.load_state_dict({**net.state_dict(), **averaged})


def train(conversations: Sequence[TrainingConversation], options: TrainOptions, settings: Settings,
          progress: Callable[[int, int, float], None] | None = None) -> tuple[JudgeModel, dict[str, Any]]:
    """Train on the train split, tune on the tune split, score on the report split, and save a model folder;
    returns the model and its training summary."""
    if not conversations:
        raise ConfigError("E075", detail="the corpus is empty")
    started = time.monotonic()
    torch.set_flush_denormal(True)  # tiny weights otherwise slow CPU arithmetic several-fold
    torch.set_num_threads(options.threads)
    arithmetic = numerics.state()
    if not numerics.pinned(arithmetic):
        # not an error: the model is as good; only another machine's `zhijian train` will not give its bytes
        log.warning("training with %s, not the pinned arithmetic %s: the weights will differ from another "
                    "machine's (`zhijian train` pins it before torch is imported)", arithmetic, numerics.PINNED)
    examples = [Example(c, [normalised(t.text) for t in c.turns]) for c in conversations]
    splits: dict[Split, list[Example]] = {"train": [], "tune": [], "report": []}
    for ex in examples:
        conv = ex.conversation
        # reviewers' corrections are always trained on: they are few, and each one is a lesson
        where = "train" if conv.source == "corrections" else split_of(conv.id, options.tune_share, options.report_share)
        splits[where].append(ex)
    fit, tune, held = splits["train"], splits["tune"], splits["report"]
    if not fit:
        raise ConfigError("E075", detail="every conversation fell in the tune or report split")
    backing = RulesJudge(settings)  # the judge backs the model with the rules whether or not it reads them
    reader = Reader(backing if options.rule_features else None,
                    settings.lexicon_path if options.word_features else None)

    fit_texts = [s for ex in fit for s in ex.texts]
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    if options.base is None:
        vocab = write_char_vocab(fit_texts + [without_punctuation(s) for s in fit_texts], out / "encoder")
    ngrams = build_ngram_vocab(fit_texts)
    words = build_word_vocab(reader.words(s) for s in fit_texts) if options.word_features else []
    net_config = NetConfig(rule_features=len(FEATURE_NAMES) if reader.rules is not None else 0,
                           word_dim=64 if options.word_features else 0)
    meta = JudgeMeta(net=net_config, ngrams=ngrams, words=words)  # save() sets members from the model
    model: JudgeModel | None = None
    for k in range(options.members):
        # each member from its own seed (the first one's is ``seed``): the same inputs, other initial weights and
        # another order of the data. Their average varies less from one training run to the next than any one
        # network (issue 12: one network's figures moved 0.02-0.05 with the seed).
        torch.manual_seed(options.seed + k)
        rng = random.Random(options.seed + k)
        if options.base is not None:
            encoder, tokenizer = pretrained_encoder(options.base)
            enc_lr = options.encoder_learning_rate or 3e-5
        else:
            encoder, tokenizer = new_encoder(vocab, hidden=options.hidden, layers=options.layers)
            enc_lr = options.encoder_learning_rate or options.learning_rate
        net = JudgeNet(encoder, encoder_dim(encoder), len(ngrams), net_config, len(words))
        if model is None:
            model = JudgeModel(net, tokenizer, {g: i for i, g in enumerate(ngrams)}, meta, out,
                               word_index={g: i for i, g in enumerate(words)})
        else:
            model.others.append(net)
        _fit(net, model, fit, reader, options, enc_lr, rng, k, progress)
        net.eval()
    assert model is not None  # members >= 1
    if tune:
        meta.temperatures = tuning.temperatures(model, tune, [reader.inputs(ex, None) for ex in tune])
        meta.thresholds, meta.rule_weights, meta.backing = tuning.decisions(
            model, tune, reader.turns, reader.rules is not None, backing, options.seed + 1)
    scores = report_scores(model, held, reader, backing, settings) if held else {}

    params = sum(p.numel() for m in model.members for p in m.parameters())
    summary: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "conversations": {"train": len(fit), "tune": len(tune), "report": len(held),
                          "corrections": sum(ex.conversation.source == "corrections" for ex in examples)},
        "turns": sum(len(ex.texts) for ex in fit),
        "sources": sorted({Path(ex.conversation.source.rsplit(":", 1)[0]).name for ex in examples}),
        "encoder": str(options.base) if options.base else f"scratch BERT {options.layers}x{options.hidden}",
        "parameters": params,
        "members": options.members,
        "arithmetic": arithmetic,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items() if k != "out"},
        "report": scores,
        "seconds": round(time.monotonic() - started, 1),
        "agent_tags": list(AGENT_TAGS),
    }
    meta.training = summary
    save(model, out)
    return model, summary


# --------------------------------------------------------------------------------------------------
# corrections


def corrections_from_store(url: str) -> list[TrainingConversation]:
    """Every corrected conversation in the store, as training data (empty when there is no store yet)."""
    from sqlalchemy.exc import OperationalError

    from pipeline.learning.corpus import from_corrections
    from pipeline.store import Store

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    store = Store(url)
    try:
        by_conv: dict[str, list[tuple[str, Any]]] = {}
        for c in store.corrections():
            by_conv.setdefault(c.conversation_id, []).append((c.item, c.human_value))
        out = []
        for conv_id, values in by_conv.items():
            result = store.result(conv_id)
            if result is None:
                log.warning("correction for %s ignored: the conversation is no longer stored", conv_id)
                continue
            conv = from_corrections(result, values)
            if conv is not None:
                out.append(conv)
        return out
    except OperationalError as e:
        log.warning("no corrections read from %s: %s", url, e)
        return []
    finally:
        store.close()


