"""Rule-based judge (v1): keyword and pattern rules for every text item of the result record.

All keyword lists, weights and thresholds live in ``pipeline/resources/rules.yaml`` (``settings.rules_path``);
this module only knows how to apply them. The file is read and checked once, when the judge is built, and
every pattern is compiled then, so a call costs a few hundred regex searches on short strings.

Text is matched flattened: whitespace and punctuation removed and a small homophone table applied, so the
same rules read chats (exact text) and calls (speech recognition with no or odd punctuation). Only the
emotion rules also look at punctuation (！/？？), when the text has any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.judges.base import register
from pipeline.schema import COMPLAINT_TYPES, Evidence, Finding, Transcript, Turn

VERSION = "1.3"  # 1.3: 12345 and 不会交 as the recogniser writes them
_FRAGMENT = 24  # a turn this short (flattened) may be a piece of a longer utterance split by the recogniser
_CLAUSE = re.compile(r"[，。！？,.!?；;…]+")
# what ``RulesJudge.turn_features`` returns for each turn, in order (the learned judge reads them as inputs)
FEATURE_NAMES: tuple[str, ...] = (
    "greet_hello", "greet_desk", "identity", "restate", "commitment", "push", "closing", "bye", "thanks",
    "rude", "forbidden", "emo_angry", "emo_dissatisfied", "emo_calm", "escalation", "escalation_negated",
    *(f"type_{k}" for k in COMPLAINT_TYPES),
)
PRODUCES: tuple[str, ...] = (
    "complaint_type", "script.greeting", "script.identity_check", "script.restate", "script.commitment",
    "script.ownership", "script.closing", "script.farewell", "courtesy_violation", "customer_emotion",
    "escalation_risk",
)


# --------------------------------------------------------------------------------------------------
# configuration: load, check, compile


@dataclass(frozen=True)
class Weighted:
    pattern: re.Pattern[str]
    weight: float


def _score(rules: Sequence[Weighted], text: str) -> float:
    return sum(r.weight for r in rules if r.pattern.search(text))


def _echo(turn: str, before: str) -> float:
    """Share of the turn's character bigrams (digits aside) that the other side said before it."""
    grams = [turn[i:i + 2] for i in range(len(turn) - 1) if not turn[i:i + 2].isdigit()]
    if not grams or not before:
        return 0.0
    heard = {before[i:i + 2] for i in range(len(before) - 1)}
    return sum(g in heard for g in grams) / len(grams)


def _any(patterns: Sequence[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


class _Reader:
    """Walks the YAML tree, compiling as it goes; every problem names the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError("E052", self.path, detail=f"{where}: {what}")

    def section(self, data: Any, key: str, where: str) -> dict[str, Any]:
        if not isinstance(data, dict) or key not in data:
            raise self.fail(where, f"missing section {key!r}")
        value = data[key]
        if not isinstance(value, dict):
            raise self.fail(f"{where}.{key}", "must be a mapping")
        return value

    def number(self, data: dict[str, Any], key: str, where: str, lo: float = 0.0, hi: float = 1e9) -> float:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{key}", f"must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(f"{where}.{key}", f"must be between {lo} and {hi}, got {value}")
        return float(value)

    def integer(self, data: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = 1000) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(f"{where}.{key}", f"must be an integer between {lo} and {hi}, got {value!r}")
        return value

    def regex(self, pattern: Any, where: str) -> re.Pattern[str]:
        if not isinstance(pattern, str) or not pattern:
            raise self.fail(where, f"pattern must be a non-empty string, got {pattern!r}")
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise self.fail(where, f"bad regular expression {pattern!r}: {exc}") from exc

    def patterns(self, data: dict[str, Any], key: str, where: str) -> list[re.Pattern[str]]:
        value = data.get(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(f"{where}.{key}", "must be a non-empty list of patterns")
        return [self.regex(p, f"{where}.{key}[{i}]") for i, p in enumerate(value)]

    def weighted(self, data: Any, key: str, where: str) -> list[Weighted]:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, list) or not value:
            raise self.fail(f"{where}.{key}", "must be a non-empty list of [pattern, weight]")
        out = []
        for i, item in enumerate(value):
            at = f"{where}.{key}[{i}]"
            if not (isinstance(item, list) and len(item) == 2):
                raise self.fail(at, f"must be [pattern, weight], got {item!r} (quote patterns with , {{ }})")
            pattern, weight = item
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise self.fail(at, f"weight must be a number, got {weight!r}")
            out.append(Weighted(self.regex(pattern, at), float(weight)))
        return out


@dataclass(frozen=True)
class Rules:
    strip: re.Pattern[str]
    replace: tuple[tuple[str, str], ...]
    # complaint type
    ct_default: str
    ct_default_conf: float
    ct_early: int
    ct_w_early: float
    ct_w_late: float
    ct_w_agent: float
    ct_saturation: float
    ct_min_conf: float
    ct_types: dict[str, list[Weighted]]
    # script
    greet_turns: int
    greet_hello: list[re.Pattern[str]]
    greet_desk: list[re.Pattern[str]]
    identity: list[re.Pattern[str]]
    restate_min: int
    restate_long: int
    restate_echo: float
    restate_echo_openers: list[re.Pattern[str]]
    restate: list[re.Pattern[str]]
    restate_tag: re.Pattern[str]
    restate_weak_tag: re.Pattern[str]
    restate_strong: list[re.Pattern[str]]
    commit_time: list[re.Pattern[str]]
    commit_weak: list[re.Pattern[str]]
    commit_dispatch: list[re.Pattern[str]]
    commit_action: list[re.Pattern[str]]
    commit_exclude: list[re.Pattern[str]]
    commit_deadline: list[re.Pattern[str]]
    own_threshold: float
    own_push: list[Weighted]
    own_suppress: list[Weighted]
    closing: list[re.Pattern[str]]
    bye: list[re.Pattern[str]]
    thanks: list[re.Pattern[str]]
    # courtesy
    rude_threshold: float
    rude: list[Weighted]
    soft: list[Weighted]
    rude_whole: re.Pattern[str]
    forbidden: list[re.Pattern[str]]
    # emotion
    emo_punctuated: re.Pattern[str]
    emo_t_punct: tuple[float, float]  # (angry, dissatisfied) thresholds for punctuated text
    emo_t_plain: tuple[float, float]  # ... and for text without punctuation
    emo_evidence: int
    emo_angry: list[Weighted]
    emo_dis: list[Weighted]
    emo_calm: list[Weighted]
    emo_p_angry: list[Weighted]
    emo_p_dis: list[Weighted]
    # escalation
    esc_threshold: float
    esc: list[Weighted]
    esc_neg: list[re.Pattern[str]]


def load_rules(path: Path) -> Rules:
    """Read, check and compile the rules file; raise ConfigError E052 naming the file on any problem."""
    r = _Reader(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise r.fail("file", f"cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise r.fail("file", f"is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise r.fail("file", "top level must be a mapping")

    norm = r.section(data, "normalize", "rules")
    strip = norm.get("strip", "")
    if not isinstance(strip, str):
        raise r.fail("normalize.strip", "must be a string of characters")
    replace_raw = norm.get("replace", [])
    if not isinstance(replace_raw, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str | int) for x in p) for p in replace_raw
    ):
        raise r.fail("normalize.replace", "must be a list of [from, to] strings")
    replace = tuple((str(a), str(b)) for a, b in replace_raw)

    ct = r.section(data, "complaint_type", "rules")
    default = ct.get("default")
    if default not in COMPLAINT_TYPES:
        known = ", ".join(COMPLAINT_TYPES)
        raise r.fail("complaint_type.default", f"must be one of {known}, not {default!r}")
    weights = r.section(ct, "weights", "complaint_type")
    types_raw = r.section(ct, "types", "complaint_type")
    unknown = sorted(set(types_raw) - set(COMPLAINT_TYPES))
    missing = [t for t in COMPLAINT_TYPES if t not in types_raw]
    if unknown or missing:
        raise r.fail("complaint_type.types", f"unknown type(s): {', '.join(unknown) or '-'}; "
                     f"missing type(s): {', '.join(missing) or '-'}")
    types = {t: r.weighted(types_raw, t, "complaint_type.types") for t in COMPLAINT_TYPES}

    script = r.section(data, "script", "rules")
    greet = r.section(script, "greeting", "script")
    ident = r.section(script, "identity_check", "script")
    rest = r.section(script, "restate", "script")
    com = r.section(script, "commitment", "script")
    own = r.section(script, "ownership", "script")
    clo = r.section(script, "closing", "script")
    far = r.section(script, "farewell", "script")

    cour = r.section(data, "courtesy", "rules")
    whole = r.patterns(cour, "whole_turn", "courtesy")
    whole_re = re.compile("^(?:" + "|".join(f"(?:{p.pattern})" for p in whole) + ")$")

    emo = r.section(data, "emotion", "rules")
    punct = r.section(emo, "punctuation", "emotion")
    emo_th = r.section(emo, "thresholds", "emotion")
    emo_p = r.section(emo_th, "punctuated", "emotion.thresholds")
    emo_u = r.section(emo_th, "unpunctuated", "emotion.thresholds")
    esc = r.section(data, "escalation", "rules")

    return Rules(
        strip=re.compile("[\\s" + re.escape(strip) + "]+") if strip else re.compile(r"\s+"),
        replace=replace,
        ct_default=default,
        ct_default_conf=r.number(ct, "default_confidence", "complaint_type", 0, 1),
        ct_early=r.integer(ct, "early_customer_turns", "complaint_type", 0, 100),
        ct_w_early=r.number(weights, "early", "complaint_type.weights"),
        ct_w_late=r.number(weights, "late", "complaint_type.weights"),
        ct_w_agent=r.number(weights, "agent", "complaint_type.weights"),
        ct_saturation=r.number(ct, "saturation", "complaint_type", 1e-6),
        ct_min_conf=r.number(ct, "min_confidence", "complaint_type", 0, 1),
        ct_types=types,
        greet_turns=r.integer(greet, "max_agent_turns", "script.greeting", 1, 100),
        greet_hello=r.patterns(greet, "hello", "script.greeting"),
        greet_desk=r.patterns(greet, "desk", "script.greeting"),
        identity=r.patterns(ident, "patterns", "script.identity_check"),
        restate_min=r.integer(rest, "min_chars", "script.restate", 0, 1000),
        restate_long=r.integer(rest, "long_chars", "script.restate", 0, 1000),
        restate_echo=r.number(rest, "echo_share", "script.restate", 0, 1),
        restate_echo_openers=r.patterns(rest, "echo_openers", "script.restate"),
        restate=r.patterns(rest, "patterns", "script.restate"),
        restate_tag=r.regex(rest.get("tag"), "script.restate.tag"),
        restate_weak_tag=r.regex(rest.get("weak_tag"), "script.restate.weak_tag"),
        restate_strong=r.patterns(rest, "strong", "script.restate"),
        commit_time=r.patterns(com, "time", "script.commitment"),
        commit_weak=r.patterns(com, "weak_time", "script.commitment"),
        commit_dispatch=r.patterns(com, "dispatch", "script.commitment"),
        commit_action=r.patterns(com, "action", "script.commitment"),
        commit_exclude=r.patterns(com, "exclude", "script.commitment"),
        commit_deadline=r.patterns(com, "deadline", "script.commitment"),
        own_threshold=r.number(own, "threshold", "script.ownership", 1e-6),
        own_push=r.weighted(own, "push", "script.ownership"),
        own_suppress=r.weighted(own, "suppress", "script.ownership"),
        closing=r.patterns(clo, "patterns", "script.closing"),
        bye=r.patterns(far, "goodbye", "script.farewell"),
        thanks=r.patterns(far, "thanks", "script.farewell"),
        rude_threshold=r.number(cour, "threshold", "courtesy", 1e-6),
        rude=r.weighted(cour, "patterns", "courtesy"),
        soft=r.weighted(cour, "softeners", "courtesy"),
        rude_whole=whole_re,
        forbidden=r.patterns(cour, "forbidden", "courtesy"),
        emo_punctuated=r.regex(emo.get("punctuated_if"), "emotion.punctuated_if"),
        emo_t_punct=(r.number(emo_p, "angry", "emotion.thresholds.punctuated", 1e-6),
                     r.number(emo_p, "dissatisfied", "emotion.thresholds.punctuated", 1e-6)),
        emo_t_plain=(r.number(emo_u, "angry", "emotion.thresholds.unpunctuated", 1e-6),
                     r.number(emo_u, "dissatisfied", "emotion.thresholds.unpunctuated", 1e-6)),
        emo_evidence=r.integer(emo, "evidence_turns", "emotion", 1, 100),
        emo_angry=r.weighted(emo, "angry", "emotion"),
        emo_dis=r.weighted(emo, "dissatisfied", "emotion"),
        emo_calm=r.weighted(emo, "calm", "emotion"),
        emo_p_angry=r.weighted(punct, "angry", "emotion.punctuation"),
        emo_p_dis=r.weighted(punct, "dissatisfied", "emotion.punctuation"),
        esc_threshold=r.number(esc, "threshold", "escalation", 1e-6),
        esc=r.weighted(esc, "patterns", "escalation"),
        esc_neg=r.patterns(esc, "negations", "escalation"),
    )


# --------------------------------------------------------------------------------------------------
# the judge


@dataclass(frozen=True)
class _T:
    """A turn prepared for matching, with what every rule says about it on its own (computed once)."""

    turn: Turn
    raw: str  # what the judge reads (norm_text or text), punctuation kept
    flat: str  # raw without whitespace/punctuation, homophones replaced
    hello: bool = False
    desk: bool = False
    identity: bool = False
    restate: bool = False
    commitment: bool = False
    push: float = 0.0
    closing: bool = False
    bye: bool = False
    thanks: bool = False
    rude: float = 0.0
    forbidden: bool = False
    angry: float = 0.0  # before calm words are subtracted
    dissatisfied: float = 0.0
    calm: float = 0.0
    escalation: float = 0.0
    escalation_negated: bool = False
    types: tuple[float, ...] = ()  # evidence per complaint type, in COMPLAINT_TYPES order

    @property
    def index(self) -> int:
        return self.turn.index

    def evidence(self) -> Evidence:
        return Evidence(turn=self.turn.index, text=self.turn.text or self.raw, start=self.turn.start,
                        end=self.turn.end)

    def features(self, r: Rules) -> list[float]:
        values = (
            self.hello, self.desk, self.identity, self.restate, self.commitment, self.push / r.own_threshold,
            self.closing, self.bye, self.thanks, self.rude / r.rude_threshold, self.forbidden, self.angry,
            self.dissatisfied, self.calm, self.escalation / r.esc_threshold, self.escalation_negated, *self.types,
        )
        return [min(1.0, max(0.0, float(v) / 2)) for v in values]


@dataclass(frozen=True)
class Reading:
    """What the rules make of a conversation in one pass: each turn's evidence as model inputs
    (``FEATURE_NAMES``), the keyword evidence per class of the conversation-level items (complaint_type:
    weighted total per type; customer_emotion: the customer's angry and dissatisfied totals), and the findings."""

    features: list[list[float]]
    evidence: dict[str, dict[str, float]]
    findings: list[Finding]


class RulesJudge:
    name = "rules"
    version = VERSION
    produces = PRODUCES

    def __init__(self, settings: Settings) -> None:
        self.rules = load_rules(settings.rules_path)
        self.source = f"{self.name}:{self.version}"

    # -- helpers ---------------------------------------------------------------------------------
    def _flatten(self, raw: str) -> str:
        flat = self.rules.strip.sub("", raw)
        for a, b in self.rules.replace:
            if a in flat:
                flat = flat.replace(a, b)
        return flat

    def _prepare(self, turn: Turn) -> _T:
        r = self.rules
        raw = turn.norm_text or turn.text or ""
        f = self._flatten(raw)
        forbidden = _any(r.forbidden, f)
        return _T(
            turn, raw, f, hello=_any(r.greet_hello, f), desk=_any(r.greet_desk, f), identity=_any(r.identity, f),
            restate=self._is_restate(raw, f), commitment=self._is_commitment(f), push=self._push_score(f),
            closing=_any(r.closing, f), bye=_any(r.bye, f), thanks=_any(r.thanks, f),
            rude=self._rude_score(f, forbidden), forbidden=forbidden,
            angry=_score(r.emo_angry, f) + _score(r.emo_p_angry, raw),
            dissatisfied=_score(r.emo_dis, f) + _score(r.emo_p_dis, raw), calm=_score(r.emo_calm, f),
            escalation=_score(r.esc, f), escalation_negated=_any(r.esc_neg, f),
            types=tuple(_score(r.ct_types[k], f) for k in COMPLAINT_TYPES),
        )

    def _finding(self, item: str, value: bool | str, confidence: float, turns: Iterable[_T] = ()) -> Finding:
        return Finding(item=item, value=value, confidence=round(min(1.0, max(0.0, confidence)), 3),
                       evidence=[t.evidence() for t in turns], source=self.source)

    # -- entry points ----------------------------------------------------------------------------
    def __call__(self, transcript: Transcript) -> list[Finding]:
        return self.read(transcript.turns).findings

    def read(self, turns: Sequence[Turn]) -> Reading:
        prepared = [self._prepare(t) for t in turns]
        agent = [t for t in prepared if t.turn.role == "agent"]
        customer = [t for t in prepared if t.turn.role == "customer"]
        totals, complaint = self._complaint(agent, customer)
        findings = [complaint]
        restates = self._restates(agent)
        findings += self._script(agent, restates, self._echoed(agent, customer, restates))
        # a restatement may quote what someone else said ("她还说'谁知道你在家'，是吗？"): not rude
        findings += self._courtesy([t for t in agent if t.index not in restates])
        feeling, emotion = self._emotion(customer)
        findings.append(emotion)
        findings.append(self._escalation(customer))
        evidence = {"complaint_type": totals, "customer_emotion": feeling}
        return Reading([t.features(self.rules) for t in prepared], evidence, findings)

    def turn_features(self, turns: Sequence[Turn]) -> list[list[float]]:
        """Each turn's rule evidence as numbers in [0, 1] (``FEATURE_NAMES``): what the rules would say,
        for a model to weigh against the words."""
        return [self._prepare(t).features(self.rules) for t in turns]

    # -- complaint type --------------------------------------------------------------------------
    def _complaint(self, agent: list[_T], customer: list[_T]) -> tuple[dict[str, float], Finding]:
        r = self.rules
        totals = dict.fromkeys(COMPLAINT_TYPES, 0.0)
        per_turn: dict[str, dict[int, float]] = {k: {} for k in COMPLAINT_TYPES}
        for pos, t in enumerate(customer):
            w = r.ct_w_early if pos < r.ct_early else r.ct_w_late
            for key, s in zip(COMPLAINT_TYPES, t.types, strict=True):
                if s:
                    totals[key] += w * s
                    per_turn[key][pos] = s
        if r.ct_w_agent:
            for t in agent:
                for key, s in zip(COMPLAINT_TYPES, t.types, strict=True):
                    totals[key] += r.ct_w_agent * s
        ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
        if not ranked or ranked[0][1] <= 0:
            return totals, self._finding("complaint_type", r.ct_default, r.ct_default_conf)
        (best, top), second = ranked[0], (ranked[1][1] if len(ranked) > 1 else 0.0)
        margin = (top - second) / top
        conf = max(r.ct_min_conf, top / (top + r.ct_saturation) * (0.5 + 0.5 * margin))
        hits = sorted(per_turn[best].items(), key=lambda kv: kv[1], reverse=True)[:2]
        evidence = [customer[pos] for pos, _ in sorted(hits)]
        return totals, self._finding("complaint_type", best, conf, evidence)

    # -- script items ----------------------------------------------------------------------------
    def _script(self, agent: list[_T], restates: set[int], echoed: set[int]) -> list[Finding]:
        r = self.rules
        out: list[Finding] = []

        out.append(self._greeting(agent[: r.greet_turns]))

        ident = next((t for t in agent if t.identity), None)
        out.append(self._item("identity_check", ident))

        out.append(self._item("restate", next((t for t in agent if t.index in restates | echoed), None)))
        # a restatement repeats the customer's times ("今天上午…是吧？"); it is not a promise
        out.append(self._item("commitment", next(
            (t for t in agent if t.index not in restates and t.commitment), None)))

        push = next((t for t in agent if t.push >= r.own_threshold), None)
        if push is not None:
            out.append(self._finding("script.ownership", False, 0.8, [push]))
        else:
            out.append(self._finding("script.ownership", True, 0.7))

        out.append(self._item("closing", next((t for t in agent if t.closing), None)))
        bye = next((t for t in reversed(agent) if t.bye and t.thanks), None)
        out.append(self._item("farewell", bye))
        return out

    def _greeting(self, opening: list[_T]) -> Finding:
        # Short consecutive agent turns are read together: a recogniser may cut "您好，|阳光花园物业…".
        r = self.rules
        runs: list[list[_T]] = []
        for t in opening:
            prev = runs[-1][-1] if runs else None
            if prev and prev.index == t.index - 1 and max(len(prev.flat), len(t.flat)) <= _FRAGMENT:
                runs[-1].append(t)
            else:
                runs.append([t])
        for run in runs:
            text = "".join(t.flat for t in run)
            if _any(r.greet_hello, text) and _any(r.greet_desk, text):
                used = [t for t in run if t.hello or t.desk]
                return self._finding("script.greeting", True, 0.9, used)
        return self._finding("script.greeting", False, 0.7)

    def _item(self, item: str, turn: _T | None) -> Finding:
        if turn is None:
            return self._finding(f"script.{item}", False, 0.7)
        return self._finding(f"script.{item}", True, 0.9, [turn])

    def _restates(self, agent: list[_T]) -> set[int]:
        """Agent turns that restate the problem. A recogniser may cut one restatement into pieces at its
        pauses ("我跟您确认一下" | "还堆了纸箱" | "对吗"), so short agent pieces close together are also read
        as one; the restatement is credited to its first piece."""
        found = {t.index for t in agent if t.restate}
        for i, first in enumerate(agent):
            opens = _any(self.rules.restate, first.flat) or _any(self.rules.restate_strong, first.flat)
            if len(first.flat) > _FRAGMENT or first.index in found or not opens:
                continue
            run = [first]
            for t in agent[i + 1:i + 3]:
                if t.index - run[-1].index > 2:
                    break
                run.append(t)
                if self._is_restate("".join(x.raw for x in run), "".join(x.flat for x in run)):
                    found.add(first.index)
                    break
        return found

    def _echoed(self, agent: list[_T], customer: list[_T], restates: set[int]) -> set[int]:
        """Restatements whose question tag the recogniser lost ("是吧" heard as "失败"): a long agent turn that
        opens as one ("您是说…", "跟您确认一下…") and echoes what the customer said before it. They count for
        the restate item only; unlike tagged restatements they do not exempt the turn from the commitment
        and courtesy checks, since the evidence is weaker."""
        r = self.rules
        found = set()
        for t in agent:
            if (t.index in restates or len(t.flat) < r.restate_long or t.closing or t.forbidden
                    or not _any(r.restate_echo_openers, t.flat)):
                continue
            said = "".join(c.flat for c in customer if c.index < t.index)
            if _echo(t.flat, said) >= r.restate_echo:
                found.add(t.index)
        return found

    def _is_restate(self, raw: str, flat: str) -> bool:
        r = self.rules
        if len(flat) < r.restate_min or _any(r.closing, flat):
            return False
        if _any(r.restate_strong, flat):
            return True
        opener = _any(r.restate, flat)
        if not opener and len(flat) < r.restate_long:
            return False
        # the question tag closes the turn or one of its clauses (when there is punctuation)
        clauses = [flat, *(r.strip.sub("", c) for c in _CLAUSE.split(raw) if c)]
        tags = [r.restate_tag, r.restate_weak_tag] if opener else [r.restate_tag]
        return any(tag.search(c) for c in clauses for tag in tags)

    def _is_commitment(self, flat: str) -> bool:
        r = self.rules
        if not _any(r.commit_action, flat):
            return False
        if _any(r.commit_time, flat):
            # a schedule ("营业时间…") is not a promise, unless the turn also sets a deadline
            return not _any(r.commit_exclude, flat) or _any(r.commit_deadline, flat)
        return _any(r.commit_weak, flat) and _any(r.commit_dispatch, flat)

    def _push_score(self, flat: str) -> float:
        r = self.rules
        s = _score(r.own_push, flat)
        return s - _score(r.own_suppress, flat) if s else 0.0

    # -- courtesy --------------------------------------------------------------------------------
    def _rude_score(self, flat: str, forbidden: bool) -> float:
        r = self.rules
        if forbidden:
            return r.rude_threshold + 3  # a 服务禁语 is a red line: no softener makes it polite
        if r.rude_whole.match(flat):
            return r.rude_threshold
        s = _score(r.rude, flat)
        return s - _score(r.soft, flat) if s else 0.0

    def _courtesy(self, agent: list[_T]) -> list[Finding]:
        r = self.rules
        out = []
        for t in agent:
            s = t.rude
            if s >= r.rude_threshold:
                conf = 0.6 + 0.1 * (s - r.rude_threshold)
                out.append(self._finding("courtesy_violation", True, conf, [t]))
        return out

    # -- customer emotion ------------------------------------------------------------------------
    def _emotion(self, customer: list[_T]) -> tuple[dict[str, float], Finding]:
        """The customer's angry and dissatisfied totals (the evidence the learned judge mixes in) and the
        rules' emotion finding."""
        r = self.rules
        angry = dis = 0.0
        scored: list[tuple[float, _T]] = []
        for t in customer:
            a = max(0.0, t.angry - t.calm)
            d = t.dissatisfied
            angry += a
            dis += d
            if a + d > 0:
                scored.append((2 * a + d, t))
        punctuated = any(r.emo_punctuated.search(t.raw) for t in customer)
        angry_t, dis_t = r.emo_t_punct if punctuated else r.emo_t_plain
        if angry >= angry_t:
            value, conf = "angry", angry / (angry + angry_t)
        elif angry + dis >= dis_t:
            value, conf = "dissatisfied", 0.5 + 0.4 * min(1.0, (angry + dis - dis_t) / angry_t)
        else:
            value, conf = "calm", 1.0 - 0.4 * (angry + dis) / dis_t
        top = sorted(scored, key=lambda st: st[0], reverse=True)[: r.emo_evidence] if value != "calm" else []
        evidence = sorted((t for _, t in top), key=lambda t: t.index)
        return {"calm": 0.0, "dissatisfied": dis, "angry": angry}, self._finding("customer_emotion", value, conf,
                                                                                  evidence)

    # -- escalation ------------------------------------------------------------------------------
    def _escalation(self, customer: list[_T]) -> Finding:
        r = self.rules
        threats = []
        best = 0.0
        for t in customer:
            s = t.escalation
            if s >= r.esc_threshold and not t.escalation_negated:
                threats.append(t)
                best = max(best, s)
        if threats:
            return self._finding("escalation_risk", True, best / (best + r.esc_threshold), threats)
        return self._finding("escalation_risk", False, 0.8)


@register("rules")
def make_rules(settings: Settings) -> RulesJudge:
    return RulesJudge(settings)
