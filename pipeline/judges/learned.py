"""The learned judge: the trained network (``pipeline.learning.model``) for every text item, with the rules read
alongside it in one pass over the conversation. The rules' per-turn evidence is an input of the network; their
verdict backs it where text is textbook (a script item they see done, a textbook threat); their keyword totals
are mixed into complaint type and emotion with weights tuned in training; and an explicit 服务禁语 is a courtesy
violation whatever the model says, because a red line must be certain.

Per turn the network gives a calibrated probability for each tag; a script item is done when some agent turn
carries it (that turn is the evidence), ownership is broken when some agent turn pushes the customer away, and
escalation is risked when some customer turn threatens it. Complaint type and emotion are read from the whole
conversation; the turns the network attended to most are the evidence. Every finding's confidence is the
calibrated probability of the value reported, so the scorecard's low-confidence flag sends unsure ones to review.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import text
from pipeline.config import Settings
from pipeline.judges.base import register
from pipeline.judges.rules import FEATURE_NAMES, PRODUCES, RulesJudge
from pipeline.learning.model import (
    JudgeMeta,
    JudgeModel,
    Prediction,
    TurnInput,
    flatten,
    load_cached,
    resolve_device,
)
from pipeline.schema import SCRIPT_ITEMS, Evidence, Finding, Role, Transcript, Turn

_FORBIDDEN = FEATURE_NAMES.index("forbidden")
_EVIDENCE_TURNS = 2
MIN_RUDE_CHARS = 8  # a model-only courtesy violation needs a turn at least this long (letters and digits)
# … and at least this probability, for folders whose backing was not tuned (``JudgeMeta.backing``); a folder
# with a tuned backing uses its courtesy threshold, tuned with this backing applied (``tuning.decisions``)
_UNTUNED_MODEL_ONLY_RUDE = 0.7


def model_only_rude(meta: JudgeMeta) -> float:
    """The probability a courtesy violation the rules did not see needs."""
    if "courtesy" in meta.backing:
        return meta.threshold("courtesy_violation")
    return max(meta.threshold("courtesy_violation"), _UNTUNED_MODEL_ONLY_RUDE)


# The rules' backing, one definition for the judge (``LearnedJudge._back_with_rules``) and for tuning
# (``tuning.decisions`` simulates it on the tune split, so what is tuned is what runs).

def pushed_away(model: bool, rules: bool, policy: str) -> bool:
    """Whether the customer was pushed away (ownership false), from the model's and the rules' say and the
    folder's tuned ownership policy (``JudgeMeta.ownership_policy``)."""
    if policy == "agree":
        return model and rules
    if policy == "either":
        return model or rules
    if policy == "model":
        return model
    raise ValueError(f"unknown ownership policy {policy!r}")


def rude(probability: float, chars: int, floor: float, forced: bool) -> bool:
    """Whether an agent turn is a courtesy violation: the rules or an explicit 服务禁语 say so (``forced``), or
    the model does, strongly (``floor``), on a turn long enough to carry it (``MIN_RUDE_CHARS``)."""
    return forced or (chars >= MIN_RUDE_CHARS and probability >= floor)


@dataclass
class Decision:
    """A conversation's verdict from one prediction: values, confidences and evidence turn positions."""

    values: dict[str, bool | str | float] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[int]] = field(default_factory=dict)
    courtesy: dict[int, float] = field(default_factory=dict)  # turn position → confidence
    red_lines: set[int] = field(default_factory=set)  # turn positions with an explicit forbidden phrase
    sources: dict[str, str] = field(default_factory=dict)  # item → judge source, where not the model alone


def decide(pred: Prediction, roles: Sequence[Role], meta: JudgeMeta, forbidden: Sequence[bool] = (),
           evidence: Mapping[str, Mapping[str, float]] | None = None) -> Decision:
    """The model's verdict. ``evidence`` (the rules' keyword totals per class of a conversation-level head:
    complaint type, customer emotion) is added to the model's log-probabilities with the weight training
    tuned for that head (``meta.rule_weight``): the two read a conversation differently, and their errors
    differ."""
    evidence = evidence or {}
    d = Decision()
    agent = [i for i, r in enumerate(roles) if r == "agent"]
    customer = [i for i, r in enumerate(roles) if r == "customer"]

    def strongest(tag: str, among: list[int]) -> tuple[int | None, float]:
        if not among:
            return None, 0.0
        best = max(among, key=lambda i: pred.tags[i][tag])
        return best, pred.tags[best][tag]

    for item in SCRIPT_ITEMS:
        tag = "ownership_violation" if item == "ownership" else item
        turn, p = strongest(tag, agent)
        present = turn is not None and p >= meta.threshold(tag)
        key = f"script.{item}"
        d.values[key] = (not present) if item == "ownership" else present
        d.confidence[key] = p if present else 1.0 - p
        d.evidence[key] = [turn] if present and turn is not None else []

    restates = {i for i in agent if pred.tags[i]["restate"] >= meta.threshold("restate")}
    for i in agent:
        p = pred.tags[i]["courtesy_violation"]
        # a restatement may quote someone else's words ("她说'不知道'，是吗？"): the red line is for the agent's own
        if i < len(forbidden) and forbidden[i] and i not in restates:
            d.red_lines.add(i)
            d.courtesy[i] = 1.0
        elif p >= meta.threshold("courtesy_violation"):
            d.courtesy[i] = p

    threats = [i for i in customer if pred.tags[i]["escalation"] >= meta.threshold("escalation")]
    top = max((pred.tags[i]["escalation"] for i in customer), default=0.0)
    d.values["escalation_risk"] = bool(threats)
    d.confidence["escalation_risk"] = top if threats else 1.0 - top
    d.evidence["escalation_risk"] = threats

    probs = mix(pred.complaint, evidence.get("complaint_type", {}), meta.rule_weight("complaint_type"))
    complaint = max(probs, key=lambda k: probs[k])
    d.values["complaint_type"] = complaint
    d.confidence["complaint_type"] = probs[complaint]
    d.evidence["complaint_type"] = _top(pred.complaint_attention, customer or agent)

    feeling = mix(pred.emotion, evidence.get("customer_emotion", {}), meta.rule_weight("customer_emotion"))
    emotion = max(feeling, key=lambda k: feeling[k])
    d.values["customer_emotion"] = emotion
    d.confidence["customer_emotion"] = feeling[emotion]
    d.evidence["customer_emotion"] = _top(pred.emotion_attention, customer) if emotion != "calm" else []
    # a continuous score to sort the review queue by (and to rank against satisfaction surveys): 1 - P(calm),
    # the model's probability mixed with the rules' evidence as for the emotion label
    d.values["customer_dissatisfaction"] = round(1.0 - feeling["calm"], 4)
    d.confidence["customer_dissatisfaction"] = 1.0
    d.evidence["customer_dissatisfaction"] = d.evidence["customer_emotion"]
    return d


def mix(model: Mapping[str, float], evidence: Mapping[str, float], weight: float) -> dict[str, float]:
    """Product of experts: p(class) ∝ p_model(class) · exp(weight · rules' evidence for class)."""
    if not weight or not evidence:
        return dict(model)
    logits = {k: math.log(max(p, 1e-9)) + weight * evidence.get(k, 0.0) for k, p in model.items()}
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def _top(weights: Sequence[float], among: list[int]) -> list[int]:
    return sorted(sorted(among, key=lambda i: weights[i], reverse=True)[:_EVIDENCE_TURNS])


def turn_inputs(turns: Sequence[Turn], features: Sequence[Sequence[float]] | None,
                lexicon: Path | None = None) -> list[TurnInput]:
    """The network's inputs for turns. The words are the text stage's (``Turn.tokens``); a turn that did not go
    through it is segmented here when ``lexicon`` is given (the same ``text.segment`` training uses)."""
    feats: Sequence[Sequence[float]] = features if features is not None else [[] for _ in turns]
    out = []
    for t, f in zip(turns, feats, strict=True):
        norm = t.norm_text or text.normalise(t.text)
        words = t.tokens or (text.segment(norm, lexicon) if lexicon is not None and norm else [])
        out.append(TurnInput(role=t.role, text=norm, features=list(f), words=list(words)))
    return out


class LearnedJudge:
    """The model, with the rules read alongside it: their per-turn evidence is the model's input, and their
    verdict backs it (``_back_with_rules``). Built from a loaded model so training can judge with it too."""

    name = "learned"
    produces = (*PRODUCES, "customer_dissatisfaction")

    def __init__(self, model: JudgeModel, rules: RulesJudge, lexicon: Path | None = None) -> None:
        self.model = model
        self.rules = rules
        # where turns come without the text stage's words, a model that reads words segments them itself
        self.lexicon = lexicon if model.meta.net.word_dim else None
        self.version = model.meta.version
        self.source = f"{self.name}:{self.version}"

    def decide(self, turns: Sequence[Turn]) -> Decision:
        """The verdict on non-empty turns; evidence is by position in ``turns``."""
        return self.decide_many([turns])[0]

    def decide_many(self, conversations: Sequence[Sequence[Turn]]) -> list[Decision]:
        """Verdicts on several conversations, the model run once over all of them."""
        if any(not turns for turns in conversations):
            raise ValueError("a conversation to decide has no turns (``pipe`` skips those)")
        uses_rules = bool(self.model.meta.net.rule_features)
        readings = [self.rules.read(turns) for turns in conversations]  # the model's inputs and the backing
        preds = self.model.predict_many([turn_inputs(turns, r.features if uses_rules else None, self.lexicon)
                                         for turns, r in zip(conversations, readings, strict=True)])
        out = []
        for turns, reading, pred in zip(conversations, readings, preds, strict=True):
            forbidden = [f[_FORBIDDEN] > 0 for f in reading.features]
            d = decide(pred, [t.role for t in turns], self.model.meta, forbidden, reading.evidence)
            self._back_with_rules(d, reading.findings, {t.index: i for i, t in enumerate(turns)}, turns)
            out.append(d)
        return out

    def __call__(self, transcript: Transcript) -> list[Finding]:
        return self.pipe([transcript])[0]

    def pipe(self, transcripts: Sequence[Transcript]) -> list[list[Finding]]:
        """Findings for each transcript, judged together (as spaCy's ``pipe``: same results, less overhead)."""
        kept = [[t for t in tr.turns if (t.norm_text or t.text).strip()] for tr in transcripts]
        decisions = iter(self.decide_many([turns for turns in kept if turns]))
        return [self._findings(turns, next(decisions)) if turns else [] for turns in kept]

    def _findings(self, turns: Sequence[Turn], d: Decision) -> list[Finding]:
        def ev(positions: Sequence[int]) -> list[Evidence]:
            return [Evidence(turn=turns[i].index, text=turns[i].text, start=turns[i].start, end=turns[i].end)
                    for i in positions]

        out = [Finding(item=item, value=value, confidence=round(d.confidence[item], 3),
                       evidence=ev(d.evidence.get(item, [])), source=d.sources.get(item, self.source))
               for item, value in d.values.items()]
        for i, conf in sorted(d.courtesy.items()):
            out.append(Finding(item="courtesy_violation", value=True, confidence=round(conf, 3), evidence=ev([i]),
                               source=d.sources.get(f"courtesy:{i}", self.source)))
        return out

    def _back_with_rules(self, d: Decision, backing: list[Finding], position: dict[int, int],
                         turns: Sequence[Turn]) -> None:
        """The rules back the model where text is textbook and the model is unsure of recognised speech:
        a script item the rules see done is done and a textbook threat (12345, 住建委, 曝光, 律师, 不交物业费)
        is a threat, whatever the model says (the model catches the paraphrases the rules miss); the customer
        is pushed away only when both agree; a turn the rules find rude stays rude. A model-only courtesy
        violation needs a strong signal on a turn long enough to carry one (recogniser fragments like
        "妇女是" are not evidence of anything)."""
        backed = f"{self.source}+rules:{self.rules.version}"
        for f in backing:
            at = [position[e.turn] for e in f.evidence if e.turn in position]
            if f.item == "script.ownership":
                model_pushed, rules_pushed = d.values[f.item] is False, f.value is False
                if pushed_away(model_pushed, rules_pushed, self.model.meta.ownership_policy()) != model_pushed:
                    d.values[f.item], d.confidence[f.item] = model_pushed, f.confidence
                    d.evidence[f.item] = at if rules_pushed else []
                    d.sources[f.item] = backed
            elif ((f.item.startswith("script.") or f.item == "escalation_risk")
                  and f.value is True and d.values[f.item] is False):
                d.values[f.item], d.confidence[f.item], d.evidence[f.item] = True, f.confidence, at
                d.sources[f.item] = backed
        floor = model_only_rude(self.model.meta)
        for i in list(d.courtesy):
            if not rude(d.courtesy[i], len(flatten(turns[i].norm_text or turns[i].text)), floor,
                        forced=i in d.red_lines):
                del d.courtesy[i]
        for f in backing:
            if f.item == "courtesy_violation" and f.value and f.evidence and f.evidence[0].turn in position:
                i = position[f.evidence[0].turn]
                d.courtesy[i] = max(d.courtesy.get(i, 0.0), f.confidence)
                d.sources.setdefault(f"courtesy:{i}", backed)
        for i in d.red_lines:
            d.sources[f"courtesy:{i}"] = f"{self.source}+rules:forbidden"


@register("learned")
def make_learned(settings: Settings) -> LearnedJudge:
    # the device is resolved first: 'cuda' without a GPU fails here (E077) before the model is read
    device = resolve_device(settings.judge_device)
    return LearnedJudge(load_cached(settings.judge_model_path.resolve(), device), RulesJudge(settings),
                        settings.lexicon_path)
