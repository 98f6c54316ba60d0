"""The learned judge (v2): the trained network (``pipeline.judge_model``) for every text item, with the rules
kept only where a red line must be certain: an explicit 服务禁语 is a courtesy violation whatever the model says.

Per turn the network gives a calibrated probability for each tag; a script item is done when some agent turn
carries it (that turn is the evidence), ownership is broken when some agent turn pushes the customer away, and
escalation is risked when some customer turn threatens it. Complaint type and emotion are read from the whole
conversation; the turns the network attended to most are the evidence. Every finding's confidence is the
calibrated probability of the value reported, so the scorecard's low-confidence flag sends unsure ones to review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline import text
from pipeline.config import Settings
from pipeline.judge_model import JudgeMeta, JudgeModel, Prediction, TurnInput, flatten, load_cached
from pipeline.judges.base import register
from pipeline.judges.rules import FEATURE_NAMES, PRODUCES, RulesJudge
from pipeline.schema import SCRIPT_ITEMS, Evidence, Finding, Role, Transcript, Turn

_FORBIDDEN = FEATURE_NAMES.index("forbidden")
_EVIDENCE_TURNS = 2
_MIN_RUDE_CHARS = 8  # a model-only courtesy violation needs a turn at least this long (letters and digits)
_MODEL_ONLY_RUDE = 0.7  # … and at least this probability


@dataclass
class Decision:
    """A conversation's verdict from one prediction: values, confidences and evidence turn positions."""

    values: dict[str, bool | str | float] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[int]] = field(default_factory=dict)
    courtesy: dict[int, float] = field(default_factory=dict)  # turn position → confidence
    red_lines: set[int] = field(default_factory=set)  # turn positions with an explicit forbidden phrase
    sources: dict[str, str] = field(default_factory=dict)  # item → judge source, where not the model alone


def decide(pred: Prediction, roles: Sequence[Role], meta: JudgeMeta, forbidden: Sequence[bool] = ()) -> Decision:
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

    complaint = max(pred.complaint, key=lambda k: pred.complaint[k])
    d.values["complaint_type"] = complaint
    d.confidence["complaint_type"] = pred.complaint[complaint]
    d.evidence["complaint_type"] = _top(pred.complaint_attention, customer or agent)

    emotion = max(pred.emotion, key=lambda k: pred.emotion[k])
    d.values["customer_emotion"] = emotion
    d.confidence["customer_emotion"] = pred.emotion[emotion]
    d.evidence["customer_emotion"] = _top(pred.emotion_attention, customer) if emotion != "calm" else []
    # a continuous score to sort the review queue by (and to rank against satisfaction surveys)
    d.values["customer_dissatisfaction"] = round(1.0 - pred.emotion["calm"], 4)
    d.confidence["customer_dissatisfaction"] = 1.0
    d.evidence["customer_dissatisfaction"] = d.evidence["customer_emotion"]
    return d


def _top(weights: Sequence[float], among: list[int]) -> list[int]:
    return sorted(sorted(among, key=lambda i: weights[i], reverse=True)[:_EVIDENCE_TURNS])


def turn_inputs(turns: Sequence[Turn], rules: RulesJudge | None) -> list[TurnInput]:
    features = rules.turn_features(turns) if rules is not None else [[] for _ in turns]
    return [TurnInput(role=t.role, text=t.norm_text or text.normalise(t.text), features=f)
            for t, f in zip(turns, features, strict=True)]


class LearnedJudge:
    name = "learned"
    produces = (*PRODUCES, "customer_dissatisfaction")

    def __init__(self, settings: Settings) -> None:
        self.model: JudgeModel = load_cached(settings.judge_model_path.resolve())
        self.rules = RulesJudge(settings)
        self.version = self.model.meta.version
        self.source = f"{self.name}:{self.version}"

    def __call__(self, transcript: Transcript) -> list[Finding]:
        turns = [t for t in transcript.turns if (t.norm_text or t.text).strip()]
        if not turns:
            return []
        inputs = turn_inputs(turns, self.rules if self.model.meta.net.rule_features else None)
        if not self.model.meta.net.rule_features:
            forbidden = [f[_FORBIDDEN] > 0 for f in self.rules.turn_features(turns)]
        else:
            forbidden = [t.features[_FORBIDDEN] > 0 for t in inputs]
        d = decide(self.model.predict(inputs), [t.role for t in turns], self.model.meta, forbidden)
        position = {t.index: i for i, t in enumerate(turns)}
        backing = self.rules(transcript.model_copy(update={"turns": turns}))
        self._back_with_rules(d, backing, position, turns)

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
        a script item the rules see done is done (the model catches the paraphrases the rules miss), the
        customer is pushed away only when both agree, and a turn the rules find rude stays rude. A model-only
        courtesy violation needs a strong signal on a turn long enough to carry one (recogniser fragments
        like "妇女是" are not evidence of anything)."""
        backed = f"{self.source}+rules:{self.rules.version}"
        for f in backing:
            if not f.item.startswith("script."):
                continue
            at = [position[e.turn] for e in f.evidence if e.turn in position]
            if f.item == "script.ownership":
                if d.values[f.item] is False and f.value is True:
                    d.values[f.item], d.confidence[f.item], d.evidence[f.item] = True, f.confidence, []
                    d.sources[f.item] = backed
            elif f.value is True and d.values[f.item] is False:
                d.values[f.item], d.confidence[f.item], d.evidence[f.item] = True, f.confidence, at
                d.sources[f.item] = backed
        for i in list(d.courtesy):
            if i not in d.red_lines and (len(flatten(turns[i].norm_text or turns[i].text)) < _MIN_RUDE_CHARS
                                         or d.courtesy[i] < _MODEL_ONLY_RUDE):
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
    return LearnedJudge(settings)
