"""``zhijian train``: the learned judge from the project's corpus (and reviewers' corrections).

Deterministic for a given corpus, seed and thread count: conversations are split into training and validation
by a hash of their id, shuffling and augmentation draw from one seeded generator, and torch is seeded. The
validation share is never trained on; it calibrates the confidences (one temperature per head, fitted by
likelihood) and gives the scores in the model card.

Augmentation is what lets a model trained on written text read recognised speech: half the conversations lose
their punctuation (the recogniser rarely writes it), and some get character-level noise (dropped, doubled or
swapped characters, as recognition errors do). The rules' evidence is dropped from a quarter of the turns so the
model learns the words as well as the rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import text
from pipeline.config import Settings
from pipeline.corpus import AGENT_TAGS, TURN_TAGS, TrainingConversation, TrainingTurn, tags_for
from pipeline.errors import ConfigError
from pipeline.evaluation import PRF
from pipeline.judge_model import (
    JudgeMeta,
    JudgeModel,
    JudgeNet,
    NetConfig,
    TurnInput,
    build_ngram_vocab,
    encoder_dim,
    new_encoder,
    pretrained_encoder,
    save,
    write_char_vocab,
)
from pipeline.judges.learned import LearnedJudge, mix, turn_inputs
from pipeline.judges.rules import FEATURE_NAMES, RulesJudge
from pipeline.schema import COMPLAINT_TYPES, EMOTIONS, SCRIPT_ITEMS, Turn

log = logging.getLogger("zhijian")

_PUNCT = re.compile(r"[\s，。！？、,.!?；;：:…~～\"“”'‘’（）()《》<>【】\[\]—-]+")
_MAX_TURNS = 40
# rare tags weigh more when present: a pushed-away or insulted customer is the finding that matters most
_POSITIVE_WEIGHT = {"ownership_violation": 3.0, "courtesy_violation": 3.0, "escalation": 2.0}


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
    validation_share: float = 0.1
    hidden: int = 128  # scratch encoder only
    layers: int = 2
    rule_features: bool = True
    augment: bool = True
    threads: int = 2


@dataclass
class Example:
    conversation: TrainingConversation
    texts: list[str]  # normalised


def in_validation(conv_id: str, share: float) -> bool:
    digest = hashlib.sha256(conv_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


@lru_cache(maxsize=200_000)
def _normalise(s: str) -> str:
    return text.normalise(s)


def _noisy(s: str, rng: random.Random) -> str:
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


_CLAUSE_END = re.compile(r"[，。！？,.!?；;…]")


def _split_like_a_recogniser(example: Example, rng: random.Random) -> Example:
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


def augmented(example: Example, rng: random.Random) -> Example:
    """One random rendering of a conversation as a recogniser might deliver it."""
    if example.conversation.channel == "call" and rng.random() < 0.5:
        example = _split_like_a_recogniser(example, rng)
    strip = rng.random() < 0.5
    noise = rng.random() < 0.3
    texts = []
    for s in example.texts:
        if strip:
            s = _PUNCT.sub("", s) or s
        if noise:
            s = _noisy(s, rng)
        texts.append(s)
    return Example(example.conversation, texts)


def turns_of(example: Example) -> list[Turn]:
    return [Turn(index=i, role=t.role, text=s, norm_text=s) for i, (t, s) in
            enumerate(zip(example.conversation.turns, example.texts, strict=True))]


def inputs_for(example: Example, rules: RulesJudge | None, rng: random.Random | None) -> list[TurnInput]:
    """The network's inputs for a conversation; with ``rng``, a quarter of the turns lose the rules' evidence."""
    turns = turns_of(example)
    features = rules.turn_features(turns) if rules is not None else [[] for _ in turns]
    if rng is not None and rules is not None:
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
# calibration and validation scores


def _bce_at(xs: torch.Tensor, ys: torch.Tensor) -> Callable[[float], float]:
    return lambda temp: float(nn.functional.binary_cross_entropy_with_logits(xs / temp, ys))


def _fit_temperature(nll: Callable[[float], float]) -> float:
    grid = [round(0.5 + 0.05 * i, 2) for i in range(91)]  # 0.5 … 5.0
    return min(grid, key=nll)


def calibrate(logits: list[torch.Tensor], tg: list[Targets]) -> dict[str, float]:
    temps: dict[str, float] = {}
    for j, tag in enumerate(TURN_TAGS):
        xs = torch.cat([lg[..., j][t.turn_known[..., j]] for lg, t in zip(logits, tg, strict=True)])
        ys = torch.cat([t.turn[..., j][t.turn_known[..., j]] for t in tg])
        if len(xs) >= 20 and 0 < ys.sum() < len(ys):
            temps[tag] = _fit_temperature(_bce_at(xs, ys))
    return temps


def _best_threshold(score: Callable[[float], float]) -> float:
    grid = [round(0.2 + 0.05 * i, 2) for i in range(11)]  # 0.20 … 0.70
    return max(grid, key=lambda t: (round(score(t), 4), -abs(t - 0.5)))


_RULE_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)


def tune_decisions(model: JudgeModel, examples: Sequence[Example], rules: RulesJudge | None, backing: RulesJudge,
                   seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-tag decision thresholds that maximise the F1 the product is judged by, and per conversation-level
    head the weight of the rules' evidence beside the model's that maximises its score, on the validation
    conversations as written *and* as a recogniser would deliver them (no punctuation, some turns cut)."""
    rng = random.Random(seed)
    renderings = [*examples]
    for ex in examples:
        cut = _split_like_a_recogniser(ex, rng) if ex.conversation.channel == "call" else ex
        renderings.append(Example(cut.conversation, [_PUNCT.sub("", t) or t for t in cut.texts]))
    conv_max: dict[str, list[tuple[bool, float]]] = {tag: [] for tag in TURN_TAGS}
    rude_turns: list[tuple[bool, float]] = []
    # per conversation-level head: (truth, model's probabilities, rules' evidence)
    heads: dict[str, list[tuple[str, dict[str, float], dict[str, float]]]] = {"complaint_type": [],
                                                                              "customer_emotion": []}
    for ex in renderings:
        turns = turns_of(ex)
        reading = backing.read(turns)  # one rules pass: the model's inputs and the evidence to mix in
        pred = model.predict(turn_inputs(turns, reading.features if rules is not None else None))
        evidence = reading.evidence
        conv = ex.conversation
        if conv.complaint_type is not None:
            heads["complaint_type"].append((conv.complaint_type, pred.complaint, evidence["complaint_type"]))
        if conv.customer_emotion is not None:
            heads["customer_emotion"].append((conv.customer_emotion, pred.emotion, evidence["customer_emotion"]))
        for tag in TURN_TAGS:
            among = [i for i, t in enumerate(ex.conversation.turns) if tag in tags_for(t.role)]
            truth = any(ex.conversation.turns[i].tags.get(tag) for i in among)
            conv_max[tag].append((truth, max((pred.tags[i][tag] for i in among), default=0.0)))
        rude_turns += [(bool(t.tags["courtesy_violation"]), pred.tags[i]["courtesy_violation"])
                       for i, t in enumerate(ex.conversation.turns) if "courtesy_violation" in t.tags]

    def f1_at(pairs: list[tuple[bool, float]], positive_is_absent: bool) -> Callable[[float], float]:
        def score(th: float) -> float:
            counts = PRF()
            for truth, p in pairs:
                counts.add(*((not truth, p < th) if positive_is_absent else (truth, p >= th)))
            return counts.f1
        return score

    out = {}
    for tag in TURN_TAGS:
        if tag == "courtesy_violation":
            pairs, absent = rude_turns, False
        else:
            # a script item is scored on catching it *missed*; a violation or a threat on catching it present
            pairs, absent = conv_max[tag], tag not in ("ownership_violation", "escalation")
        if sum(t for t, _ in pairs) >= 5:
            out[tag] = _best_threshold(f1_at(pairs, absent))

    def head_score(rows: list[tuple[str, dict[str, float], dict[str, float]]], macro: bool) -> Callable[[float], float]:
        # complaint type is scored by accuracy, emotion by macro F1 (as tools/score.py scores them)
        def score(w: float) -> float:
            pairs = []
            for truth, p, evidence in rows:
                mixed = mix(p, evidence, w)
                pairs.append((truth, max(mixed, key=lambda k: mixed[k])))
            if not macro:
                return sum(t == q for t, q in pairs) / max(1, len(pairs))
            classes = sorted({t for t, _ in pairs})
            f1s = []
            for c in classes:
                m = PRF()
                for t, q in pairs:
                    m.add(t == c, q == c)
                f1s.append(m.f1)
            return sum(f1s) / max(1, len(f1s))
        return score

    weights = {}
    for head, rows in heads.items():
        if rows:
            score = head_score(rows, macro=head == "customer_emotion")
            weights[head] = max(_RULE_WEIGHTS, key=lambda w: (round(score(w), 4), -w))
    return out, weights


def validation_scores(model: JudgeModel, examples: Sequence[Example], backing: RulesJudge) -> dict[str, float]:
    """The dev-set metrics of ``tools/score.py`` on the validation conversations (exact turns), judged as the
    nightly run judges: model, rules' evidence and rules' backing together."""
    judge = LearnedJudge(model, backing)
    n = len(examples)
    ct_ok = 0
    missed = {it: PRF() for it in SCRIPT_ITEMS}
    rude, esc = PRF(), PRF()
    emo = {e: PRF() for e in EMOTIONS}
    for ex in examples:
        conv = ex.conversation
        d = judge.decide(turns_of(ex))
        ct_ok += d.values["complaint_type"] == conv.complaint_type
        tags = {tag for t in conv.turns for tag, v in t.tags.items() if v}
        for it in SCRIPT_ITEMS:
            truth_done = ("ownership_violation" not in tags) if it == "ownership" else it in tags
            missed[it].add(not truth_done, not d.values[f"script.{it}"])
        truth_rude = {i for i, t in enumerate(conv.turns) if t.tags.get("courtesy_violation")}
        pred_rude = set(d.courtesy)
        rude.tp += len(truth_rude & pred_rude)
        rude.fp += len(pred_rude - truth_rude)
        rude.fn += len(truth_rude - pred_rude)
        esc.add("escalation" in tags, bool(d.values["escalation_risk"]))
        for e, m in emo.items():
            m.add(conv.customer_emotion == e, d.values["customer_emotion"] == e)
    scores = {"conversations": float(n), "complaint_acc": ct_ok / max(1, n)}
    scores |= {f"missed_{it}_f1": m.f1 for it, m in missed.items()}
    scores["script_missed_macro_f1"] = sum(m.f1 for m in missed.values()) / len(missed)
    scores["courtesy_f1"] = rude.f1
    scores["emotion_macro_f1"] = sum(m.f1 for m in emo.values()) / len(emo)
    scores["escalation_f1"] = esc.f1
    return {k: round(v, 4) for k, v in scores.items()}


# --------------------------------------------------------------------------------------------------
# training


def train(conversations: Sequence[TrainingConversation], options: TrainOptions, settings: Settings,
          progress: Callable[[int, int, float], None] | None = None) -> tuple[JudgeModel, dict[str, Any]]:
    """Train, calibrate, score and save a model folder; returns the model and its training summary."""
    if not conversations:
        raise ConfigError("E075", detail="the corpus is empty")
    started = time.monotonic()
    torch.set_flush_denormal(True)  # tiny weights otherwise slow CPU arithmetic several-fold
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads)
    rng = random.Random(options.seed)
    examples = [Example(c, [_normalise(t.text) for t in c.turns[:_MAX_TURNS]])
                for c in conversations]
    for ex in examples:
        if len(ex.conversation.turns) > _MAX_TURNS:
            ex.conversation = ex.conversation.model_copy(update={"turns": ex.conversation.turns[:_MAX_TURNS]})
    # reviewers' corrections are always trained on: they are few, and each one is a lesson
    is_held = [in_validation(ex.conversation.id, options.validation_share) and ex.conversation.source != "corrections"
               for ex in examples]
    held = [ex for ex, h in zip(examples, is_held, strict=True) if h]
    fit = [ex for ex, h in zip(examples, is_held, strict=True) if not h]
    if not fit:
        raise ConfigError("E075", detail="every conversation fell in the validation share")
    backing = RulesJudge(settings)  # the judge backs the model with the rules whether or not it reads them
    rules = backing if options.rule_features else None

    fit_texts = [s for ex in fit for s in ex.texts]
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    if options.base is not None:
        encoder, tokenizer = pretrained_encoder(options.base)
        enc_lr = options.encoder_learning_rate or 3e-5
    else:
        vocab = write_char_vocab(fit_texts + [_PUNCT.sub("", s) for s in fit_texts], out / "encoder")
        encoder, tokenizer = new_encoder(vocab, hidden=options.hidden, layers=options.layers)
        enc_lr = options.encoder_learning_rate or options.learning_rate
    ngrams = build_ngram_vocab(fit_texts)
    net_config = NetConfig(rule_features=len(FEATURE_NAMES) if rules is not None else 0)
    net = JudgeNet(encoder, encoder_dim(encoder), len(ngrams), net_config)
    meta = JudgeMeta(net=net_config, ngrams=ngrams)
    model = JudgeModel(net, tokenizer, {g: i for i, g in enumerate(ngrams)}, meta, out)

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
            batch = model.batch([inputs_for(ex, rules, rng if options.augment else None) for ex in chunk])
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
        log.info("epoch %d/%d loss %.4f", epoch + 1, options.epochs, running / steps_per_epoch)
        if progress is not None:
            progress(epoch + 1, options.epochs, running / steps_per_epoch)

    if averaged:
        net.load_state_dict({**net.state_dict(), **averaged})
    net.eval()
    if held:
        with torch.inference_mode():
            logits, tgs = [], []
            cts, cls_ct, ems, cls_em = [], [], [], []
            for i in range(0, len(held), 16):
                chunk = held[i:i + 16]
                o = net(model.batch([inputs_for(ex, rules, None) for ex in chunk]))
                tg = targets_for([ex.conversation for ex in chunk])
                logits.append(o.turn_logits)
                tgs.append(tg)
                cts.append(o.complaint_logits)
                cls_ct.append(tg.complaint)
                ems.append(o.emotion_logits)
                cls_em.append(tg.emotion)
        meta.temperatures = calibrate(logits, tgs)
        ct_x, ct_y, em_x, em_y = torch.cat(cts), torch.cat(cls_ct), torch.cat(ems), torch.cat(cls_em)
        meta.temperatures["complaint_type"] = _fit_temperature(
            lambda temp: float(nn.functional.cross_entropy(ct_x / temp, ct_y, ignore_index=-100)))
        meta.temperatures["customer_emotion"] = _fit_temperature(
            lambda temp: float(nn.functional.cross_entropy(em_x / temp, em_y, ignore_index=-100)))
        meta.thresholds, meta.rule_weights = tune_decisions(model, held, rules, backing, options.seed + 1)
        scores = validation_scores(model, held, backing)
    else:
        scores = {}

    params = sum(p.numel() for p in net.parameters())
    summary: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "conversations": {"train": len(fit), "validation": len(held),
                          "corrections": sum(ex.conversation.source == "corrections" for ex in examples)},
        "turns": sum(len(ex.texts) for ex in fit),
        "sources": sorted({Path(ex.conversation.source.rsplit(":", 1)[0]).name for ex in examples}),
        "encoder": str(options.base) if options.base else f"scratch BERT {options.layers}x{options.hidden}",
        "parameters": params,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items() if k != "out"},
        "validation": scores,
        "seconds": round(time.monotonic() - started, 1),
        "agent_tags": list(AGENT_TAGS),
    }
    meta.training = summary
    save(model, out)
    return model, summary


# --------------------------------------------------------------------------------------------------
# corrections and the model card


def corrections_from_store(url: str) -> list[TrainingConversation]:
    """Every corrected conversation in the store, as training data (empty when there is no store yet)."""
    from sqlalchemy.exc import OperationalError

    from pipeline.corpus import from_corrections
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


def write_card(folder: Path, summary: dict[str, Any]) -> Path:
    """CARD.md beside the weights: what the model is, what it learnt from, how well it does."""
    v = summary.get("validation", {})
    meta = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
    sizes = {p.name: p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "CARD.md"}
    conv = summary["conversations"]
    lines = [
        "# Learned judge (`learned`)",
        "",
        f"Trained {summary['date']} by `zhijian train` in {summary['seconds']} s. Version "
        f"`{meta['version']}`.",
        "",
        "## What it does",
        "Reads a conversation's turns and predicts, per agent turn, the script items it performs (greeting,",
        "identity_check, restate, commitment, closing, farewell), whether it pushes the customer away",
        "(ownership_violation) and whether it is discourteous; per customer turn, whether it threatens escalation;",
        "and per conversation, the complaint type (13) and the customer's emotion (calm / dissatisfied / angry).",
        "Confidences are calibrated on the validation conversations (one temperature per head). An explicit",
        "服务禁语 is a courtesy violation regardless of the model (the rules' red line).",
        "",
        "## Decision settings (tuned on the validation conversations, as written and as recognised)",
        "- Per-tag thresholds: " + ", ".join(f"{k} {x:.2f}" for k, x in meta.get("thresholds", {}).items()),
        "- Weight of the rules' keyword evidence beside the model's log-probabilities: "
        + (", ".join(f"{k} {x:.2f}" for k, x in meta.get("rule_weights", {}).items()) or "none"),
        "",
        "## Architecture and size",
        f"- Encoder: {summary['encoder']} (transformers `BertModel`, character vocabulary)",
        "- Beside it: a bag of character 1–3-grams, the rules' per-turn evidence, and a role embedding;",
        "  a 1-layer transformer over the turns; attention-pooled conversation heads.",
        f"- Parameters: {summary['parameters']:,}",
        "- Files: " + ", ".join(f"{k} {n / 1e6:.1f} MB" for k, n in sizes.items() if n > 100_000),
        "",
        "## Data",
        f"- Training: {conv['train']} conversations ({summary['turns']} turns) from "
        + ", ".join(f"`{s}`" for s in summary["sources"]) + ".",
        f"- Reviewer corrections included: {conv['corrections']}.",
        f"- Validation (held out by a hash of the id, never trained on): {conv['validation']} conversations.",
        "- The corpus is written by the project (see `models/corpus/FORMAT.md`), not real recordings. The dev set",
        "  (`../shared/data/dev`) and the STC-3 dialogues are never trained on: they are the yardsticks.",
        "",
        "## Training",
        "```",
        json.dumps(summary["options"], ensure_ascii=False, indent=1),
        "```",
        "",
        "## Scores on the validation conversations (written text, exact turns)",
        "Judged as the nightly run judges: the model, the rules' evidence and the rules' backing together.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {x:.4f} |" for k, x in v.items() if k != "conversations"),
        "",
        "Scores through the full nightly path (speech recognition included) on the dev set are in the README.",
        "",
        "## Limits",
        "- Learnt from written conversations; recognised speech is simulated in training by dropping punctuation",
        "  and adding character noise. Dialect-heavy speech and domains far from property service are untested.",
        "- Emotion is one label per conversation; sarcasm and politeness masking anger are the usual errors.",
        "",
    ]
    path = folder / "CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
