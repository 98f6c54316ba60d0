"""Privacy: residents' phone, ID-card and bank-card numbers are masked before anything is kept.

Masking happens where text enters the pipeline — ``ingest.read_chat`` (every message) and
``asr.transcribe_call`` (every recognised turn) — so the text stage, the judges, the store (turns,
evidence, findings, result JSON, search words), the export and the logs only ever see masked text.
``settings.privacy.mask_personal_numbers = false`` (``ZHIJIAN_PRIVACY__MASK_PERSONAL_NUMBERS=false``)
keeps raw text; nothing else does. The ``zhijian`` logger carries ``PersonalNumberFilter``, so a log line
never shows a raw number either.

The rule: a number said that is a personal number never leaves more than 4 of its digits in a row
readable, however the recogniser spaced it (``382 4 6 15 7 9 3``), whichever way each digit is written
(Arabic, full-width, numerals, 幺 or a near-homophone of it, mixed in one number) and whatever pieces it
was cut into; ``tests/test_privacy.py`` says each of its test numbers in 1,500 such ways.

What counts as a digit
  ASCII and full-width digits, and the spoken numerals 零〇一二三四五六七八九两幺 (as a speech recogniser
  or a resident writes them). The recogniser also writes 幺 (yāo, "one") as a near-homophone —
  要 腰 妖 邀 吆 药 耀 摇 遥 姚 杨 尧 窑 谣 瑶 咬 夭, 么 (幺's variant) and 鸟 (Whisper base, reading back a
  mobile: ``鸟382 4 6 15 7 9 3``) — so these count as a 1 inside a run of digits, and at a run's edge only
  when that completes a number below (``要12345投诉`` stays as it is; ``杨三八二四六一五七九三`` is a mobile).
  An ID card's last character may be X, x, Ｘ, ｘ or 叉.

Groups and separators
  A group is a run of digit characters. Groups join into one number across at most three separator
  characters: spaces, - － ‐ – — _ · . ． , ， 、 。 ( ) （ ）, 杠 and 横杠 — the ways people type
  ``138-1234-5678`` and the way a recogniser writes the pauses in ``幺三八，一二三四，五六七八``. A number is
  whole groups only: ``3栋2单元1502，13812345678`` masks the mobile and keeps the room. Where several
  numbers fit, the personal number that takes the most digits wins (the pieces of an ID card or a card
  may hold a mobile; +86 does not count).
  Groups joined by spaces alone are what a recogniser writes for one digit string it heard in pieces
  (``138 246 11 5793``, ``邀10105 19903 07 2418``): a number found in part of such a string takes all of it
  when the string holds 11 digits or more (``邀10**********2418``, an ID card a 0 short whose last 11
  digits look like a mobile), except +86 before a mobile.

Numbers masked (all digits of the number are looked at; the kept characters stay as written)
  * mobile: 11 digits 1[3-9]…, optionally after 86 / 0086 — first 3 and last 4 kept: ``138****5678``;
  * landline with area code: 0 + area (010, 02x: 3 digits; else 4) + a 7–8 digit number not starting
    0/1 — the area code and all but the first 4 digits of the number kept: ``0571****6666``;
  * ID card: 18 characters (17 digits + digit or X) or the old 15 digits, first digit 1–9, with a real
    birth date (YYYYMMDD / YYMMDD at position 7) — first 3 and last 4 kept: ``110***********2418``;
  * bank card: 16–19 digits starting with 3–9; written in pieces, only when the Luhn check holds
    (however it was cut) or the pieces are 4 digits each (the last may be shorter) — first 4 and last 4
    kept, no spaces: ``6222********4606``;
  * any other run of 11 or more digits, unbroken or in pieces joined by spaces (a card or phone number
    the recogniser mangled, a digit lost or doubled, an unknown long number): first 3 and last 4 kept;
    not a date and what follows it (``20261121 1430``), nor a service number and what follows it;
  * 7 to 10 digits said in 3 or more pieces joined by spaces (``是382 4 6 15 7 9 3``: a mobile whose 幺
    the recogniser lost), unless they are a date (``2026 11 21``), building-unit-room (``12 3 1502``) or a
    count (``1 2 3 4 5 6 7``): only the last 2 kept;
  * 7 or more digits right after a word that announces a personal number (手机, 电话, 联系方式, 座机,
    身份, 证件, 卡号, 银行, 账号/帐号, QQ, then up to 8 characters such as 证号是：; 身份 and 银行 alone because
    the recogniser writes 身份正, 银行坦) even when they fit none of the above (a number the recogniser
    cut short or ran into the next): only the last 2 kept (3 and 4 from 11 digits on); digits after such
    a word that run into a number found are part of it (``身份证幺幺零幺零五，幺九九零三零七，二四幺八``);
  * in a conversation (``mask_transcript``), 5 or more digits in a row of a number masked in another turn
    (or of a raw ``customer_ref``): an agent's read-back the recogniser wrote too broken to be a number
    on its own (``我3824615793``), masked from the first group that says them to the last: last 2 kept.
  Every masked digit becomes one ``*``, separators inside the number are dropped (one compact form for
  every way of writing it, ``6222 0258 9371 4606`` → ``6222********4606``). No masked number leaves more
  than 4 of its own digits in a row.

Never masked
  Room numbers (3-2-1502, 3栋2单元1502, 12 3 1502), times and durations (14:30, 14 30, 20分钟), money
  (3580元, 1,234.50), counts (1 2 3 4 5 6 7),
  dates (2026-11-21, 20261121, 2026 11 21, 11月21日), staff numbers (工号1024), company order and ticket numbers
  under 11 digits, conversation ids (C20261121-0007), 12345, 110/119/120, service lines (400-xxx-xxxx,
  800-xxx-xxxx, 95xxx: never part of a longer number either).
  Digits right next to a ``*`` (at most 7 of them) are the kept part of a masked number and stay as
  they are, which makes masking idempotent: ``mask(mask(x)) == mask(x)``.

Masked text still normalises cleanly (``pipeline.text.normalise``): ``幺三八****五六七八`` → ``138****5678``.
Deterministic: no model, no randomness, the same text always gives the same result.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from pipeline.schema import Transcript, Turn, Word

log = logging.getLogger("zhijian")

# bumped whenever a rule changes what is masked: part of what a stored result was made from
RULES_VERSION = "2"
MASK = "*"
_DIGIT = {c: str(i) for i, c in enumerate("0123456789")}
_DIGIT |= {c: str(i) for i, c in enumerate("０１２３４５６７８９")}
_DIGIT |= {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"〇": "0", "两": "2", "幺": "1"}
_SOFT_ONE = "要腰妖邀吆药耀摇遥姚杨尧窑谣瑶咬夭么鸟"  # how a recogniser writes 幺 (yāo) when it hears it
_X = "XxＸｘ叉"
_HARD = "".join(_DIGIT)
_GROUP = re.compile(
    rf"[{_SOFT_ONE}]*[{_HARD}](?:[{_HARD}{_SOFT_ONE}]*[{_HARD}])?(?:[{_X}]|[{_SOFT_ONE}]*)"
)
_SPACE = re.compile(r"[ \t\u3000]{1,3}")
_SEP = re.compile(r"(?:[ \t\u3000\-－‐‑‒–—_·.．,，、。()（）]|横杠|杠){1,3}")
_KEYWORD = re.compile(
    rf"(?:手机|电话|联系方式|座机|身份|证件|卡号|银行|账号|帐号|QQ|qq)[^{_HARD}{MASK}。！？!?\n]{{0,8}}$"
)
# numbers everyone may say: 400/800 lines, 95xxx bank and carrier lines, 110 119 120 122 114, 12345 12315 …
_SERVICE = re.compile(r"^(?:[48]00\d{7}|95\d{3,4}|11[0249]|12[02]|12\d{3})$")
_ANY_DIGIT = re.compile(r"\d")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_MOBILE_CC = re.compile(r"^(?:0086|86)1[3-9]\d{9}$")
_CARD_FIRST = "3456789"  # UnionPay 62/60, Visa 4, Mastercard 5, JCB/Amex 3, domestic 9: never 0, 1 or 2
_KEYWORD_LOOKBACK = 40
_MAX_GROUPS = 20  # a number is never said in more pieces than this (a card's 19 digits one by one)
_ECHO = 5  # digits in a row of a number masked elsewhere in the conversation that mask a stretch too


@dataclass(frozen=True)
class _Group:
    """A run of digit characters: positions of its digits (edge ``soft`` ones apart) and what each is."""

    start: int
    end: int
    lead: tuple[int, ...]  # positions of leading soft 1s
    core: tuple[int, ...]  # positions from the first to the last hard digit, X included
    trail: tuple[int, ...]  # positions of trailing soft 1s
    x: bool  # ends with an ID card's X
    blocked: bool = False

    @property
    def size(self) -> int:
        return len(self.core)


@dataclass(frozen=True)
class _Match:
    first: int  # group indices, inclusive
    last: int
    positions: tuple[int, ...]
    keep_first: int
    keep_last: int


def _digits(text: str, positions: Sequence[int]) -> str:
    return "".join(_DIGIT.get(text[p], "1" if text[p] in _SOFT_ONE else "X") for p in positions)


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def _is_date(d: str) -> bool:
    if len(d) != 8 or not d.isdigit():
        return False
    return 1900 <= int(d[:4]) <= 2099 and _valid_date(int(d[:4]), int(d[4:6]), int(d[6:]))


def _groups(text: str) -> list[_Group]:
    out = []
    for m in _GROUP.finditer(text):
        s, e = m.span()
        chars = list(range(s, e))
        lead = tuple(p for p in _leading(text, chars))
        rest = chars[len(lead):]
        trail = tuple(_leading(text, rest[::-1]))[::-1]
        core = tuple(rest[: len(rest) - len(trail)])
        x = text[e - 1] in _X
        before = text[s - 1] if s else ""
        after = text[e] if e < len(text) else ""
        blocked = MASK in (before, after) and len(core) <= 7  # the kept part of a masked number
        out.append(_Group(s, e, lead, core, trail, x, blocked))
    return out


def _leading(text: str, positions: Sequence[int]) -> list[int]:
    out = []
    for p in positions:
        if text[p] not in _SOFT_ONE:
            break
        out.append(p)
    return out


def _chains(text: str, groups: list[_Group]) -> list[list[_Group]]:
    """Groups that are one number as far as the separators go."""
    chains: list[list[_Group]] = []
    for g in groups:
        if g.blocked:
            continue
        prev = chains[-1][-1] if chains else None
        if (prev is not None and not prev.x and len(chains[-1]) < _MAX_GROUPS
                and _SEP.fullmatch(text, prev.end, g.start)):
            chains[-1].append(g)
        else:
            chains.append([g])
    return chains


def _classify(d: str, sizes: Sequence[int]) -> tuple[float, int, int] | None:
    """(weight, kept first, kept last) of a digit string that is a personal number, (1, -1, -1) for a
    service number, else None."""
    n, x = len(d), d.endswith("X")
    if "X" in d[:-1] or (x and n != 18):
        return None
    if n == 11 and _MOBILE.match(d):
        return 4.0, 3, 4
    if n in (13, 15) and _MOBILE_CC.match(d):
        return 3.5, n - 8, 4
    if n == 18 and d[0] != "0" and _is_date(d[6:14]):
        return 4.0, 3, 4
    if x:
        return None
    if n == 15 and d[0] != "0" and _valid_date(1900 + int(d[6:8]), int(d[8:10]), int(d[10:12])):
        return 3.0, 3, 4
    if 11 <= n <= 12 and d[0] == "0" and d[1] != "0":
        area = 3 if d[1] in "12" else 4
        number = d[area:]
        if len(number) in (7, 8) and number[0] not in "01" and not (area == 3 and len(number) == 7):
            return 3.0, area, len(number) - 4
    if 16 <= n <= 19 and d[0] in _CARD_FIRST:
        if len(sizes) == 1:
            return (3.0 if _luhn(d) else 2.0), 4, 4
        # written in pieces: a real card (Luhn), however it was cut, or the way cards are printed, 4 by 4
        if _luhn(d) or (min(sizes) >= 3 and all(s == 4 for s in sizes[:-1])):
            return 3.0, 4, 4
    if _SERVICE.match(d):
        return 1.0, -1, -1  # kept whole, and never part of a longer number
    return None


def _luhn(d: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(d)):
        v = int(c) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def _candidates(text: str, chain: list[_Group]) -> list[tuple[tuple[bool, int, int, float, int], _Match]]:
    out = []
    for i in range(len(chain)):
        for j in range(i, len(chain)):
            inner = [p for g in chain[i + 1 : j] for p in (*g.lead, *g.core, *g.trail)]
            first, last = chain[i], chain[j]
            leads = [first.lead, ()] if first.lead else [()]
            trails = [last.trail, ()] if last.trail and not last.x else [()]
            for lead in leads:
                for trail in trails:
                    if i == j:
                        positions = (*lead, *first.core, *trail)
                    else:
                        positions = (*lead, *first.core, *first.trail, *inner, *last.lead, *last.core, *trail)
                    sizes = [first.size, *(g.size for g in chain[i + 1 : j]), last.size][: j - i + 1]
                    d = _digits(text, positions)
                    kind = _classify(d, sizes)
                    if kind is None:
                        continue
                    weight, kf, kl = kind
                    soft = len(lead) + len(trail)
                    # the personal number that takes the most digits wins: a mobile the pieces of an ID
                    # card or a card happen to hold is no reason to leave the rest readable (+86 is no part
                    # of a number's length)
                    length = len(positions) - (len(d) - 11 if _MOBILE_CC.match(d) else 0)
                    rank = (weight > 1, length, -soft, weight, -i)
                    out.append((rank, _Match(i, j, positions, kf, kl)))
    return out


def _spaced_runs(text: str, chain: list[_Group]) -> list[tuple[int, int]]:
    """(first, last) group indices of the chain's stretches joined by spaces alone: how a recogniser writes
    the pauses inside one digit string it heard."""
    runs: list[tuple[int, int]] = []
    start = 0
    for k in range(1, len(chain) + 1):
        if k == len(chain) or not _SPACE.fullmatch(text, chain[k - 1].end, chain[k].start):
            runs.append((start, k - 1))
            start = k
    return runs


def _run_positions(chain: list[_Group], first: int, last: int) -> list[int]:
    """The digit positions of groups first..last: a leading soft 1 counts (it follows the word before
    it, ``手机号腰三八``), a trailing one does not (``五七九三要``: "…5793, I want")."""
    positions = [p for g in chain[first : last + 1] for p in (*g.lead, *g.core, *g.trail)]
    return positions[: len(positions) - len(chain[last].trail)]


def _said_in_pieces(text: str, chain: list[_Group], first: int, last: int) -> bool:
    """Whether groups first..last (joined by spaces) read as a digit string said in pieces rather than a
    date, a room (12 3 1502) or a count (1 2 3 4 5 6 7)."""
    groups = chain[first : last + 1]
    if len(groups) < 3:
        return False
    d = _digits(text, _run_positions(chain, first, last))
    if len(d) < 7 or _is_date(d[:8]):
        return False
    sizes = [g.size for g in groups]
    if len(groups) == 3 and max(sizes[:2]) <= 2 and 3 <= sizes[2] <= 4:
        return False  # building, unit, room
    values = [int(d) if d.isdigit() else -1 for d in (_digits(text, g.core) for g in groups)]
    return not (max(sizes) <= 2 and all(b == a + 1 for a, b in pairwise(values)))


def _choose(text: str, chain: list[_Group]) -> list[_Match]:
    """The numbers of one chain, best first; groups of none are not in any."""
    chosen: list[_Match] = []
    used = [False] * len(chain)
    candidates = sorted(_candidates(text, chain), key=lambda c: c[0], reverse=True)
    for _, m in candidates:
        if any(used[m.first : m.last + 1]):
            continue
        used[m.first : m.last + 1] = [True] * (m.last - m.first + 1)
        chosen.append(m)
    for first, last in _spaced_runs(text, chain):
        # however the recogniser spaced it: a digit string of 11 digits or more written with spaces is one
        # number, masked whole, even where a number found inside it would leave the rest readable
        # (邀10105 19903 07 2418: an ID card with a digit lost, whose last 11 look like a mobile)
        mine = [c for c in chosen if c.last >= first and c.first <= last]
        rest = [k for k in range(first, last + 1) if not used[k]]
        if not rest or (mine and all(c.keep_first < 0 for c in mine)) or _country_code(text, chain, rest, mine):
            continue  # nothing left readable, a service number (400 820 8820) in it, or +86 before a mobile
        lo = min([first, *(c.first for c in mine)])
        hi = max([last, *(c.last for c in mine)])
        positions = _run_positions(chain, lo, hi)
        d = _digits(text, positions)
        if not mine and hi > lo and _is_date(d[:8]):
            continue  # a date and what follows it (20261121 1430)
        if len(d) >= 11:
            # a number found that is all of it (the old ID card with its soft 1s) says what to keep
            whole = next((m for _, m in candidates if (m.first, m.last) == (lo, hi) and m.keep_first >= 0),
                         _Match(lo, hi, tuple(positions), 3, 4))
            chosen = [c for c in chosen if c not in mine] + [whole]
            used[lo : hi + 1] = [True] * (hi - lo + 1)
        elif not mine and _said_in_pieces(text, chain, first, last):
            chosen.append(_Match(first, last, tuple(positions), 0, 2))
            used[first : last + 1] = [True] * (last - first + 1)
    run = []  # the chain's opening digits, when a word before them says what they are
    for k in range(len(chain)):
        if used[k]:
            break
        run.append(k)
    if run and _KEYWORD.search(text, max(0, chain[0].start - _KEYWORD_LOOKBACK), chain[0].start):
        after = [c for c in chosen if c.first == run[-1] + 1 and c.keep_first >= 0]
        if after:  # the number the word announces starts here: 身份证幺幺零幺零五，幺九九零三零七，二四幺八
            chosen.remove(after[0])
            run.append(after[0].last)
        positions = _run_positions(chain, run[0], run[-1])
        d = _digits(text, positions)
        if after or (len(d) >= 7 and not _is_date(d)):
            chosen.append(_Match(run[0], run[-1], tuple(positions), 3 if len(d) >= 11 else 0,
                                 4 if len(d) >= 11 else 2))
    return chosen


def _country_code(text: str, chain: list[_Group], rest: list[int], mine: list[_Match]) -> bool:
    """Whether the only group left is 86 / 0086 right before a mobile (``+86 138 1234 5678``)."""
    if len(rest) != 1 or not mine or _digits(text, chain[rest[0]].core) not in ("86", "0086"):
        return False
    return any(c.first == rest[0] + 1 and _MOBILE.match(_digits(text, c.positions)) for c in mine)


def _echoes(text: str, chain: list[_Group], used: list[bool], known: Sequence[str]) -> list[_Match]:
    """The groups, among those no number took, that say 5 digits in a row of a number masked elsewhere in
    the conversation (an agent reading back a mobile the recogniser wrote too broken to be one), from the
    first such group to the last."""
    windows = {n[k : k + _ECHO] for n in known for k in range(len(n) - _ECHO + 1)}
    out: list[_Match] = []
    k = 0
    while k < len(chain):
        end = k
        while not used[k] and end + 1 < len(chain) and not used[end + 1]:
            end += 1
        if not used[k]:
            d = _digits(text, _run_positions(chain, k, end))
            owner = [g for g in range(k, end + 1) for _ in (*chain[g].lead, *chain[g].core, *chain[g].trail)]
            owner = owner[: len(d)]  # the last group's trailing soft 1s are not digits (_run_positions)
            hits = [g for i in range(len(d) - _ECHO + 1) if d[i : i + _ECHO] in windows
                    for g in owner[i : i + _ECHO]]
            if hits:
                positions = _run_positions(chain, min(hits), max(hits))
                n = len(positions)
                out.append(_Match(min(hits), max(hits), tuple(positions), 3 if n >= 11 else 0, 4 if n >= 11 else 2))
        k = end + 1
    return out


def _plan(text: str, known: Sequence[str] = ()) -> tuple[dict[int, str], list[str]]:
    """What each character of a masked number becomes: itself (kept), ``*`` (masked) or '' (separator);
    and the digits of each personal number masked (what its echoes elsewhere are known by)."""
    plan: dict[int, str] = {}
    numbers: list[str] = []

    def apply(positions: Sequence[int], keep_first: int, keep_last: int) -> None:
        keep_last = min(keep_last, len(positions) - keep_first)
        for p in range(positions[0], positions[-1] + 1):
            plan[p] = ""
        for k, p in enumerate(positions):
            plan[p] = text[p] if k < keep_first or k >= len(positions) - keep_last else MASK

    for chain in _chains(text, _groups(text)):
        chosen = _choose(text, chain)
        if known:
            used = [any(c.first <= k <= c.last for c in chosen) for k in range(len(chain))]
            chosen += _echoes(text, chain, used, known)
        for c in chosen:
            if c.keep_first >= 0:
                apply(c.positions, c.keep_first, c.keep_last)
                numbers.append(_digits(text, c.positions).rstrip("X"))
    return plan, numbers


def mask(text: str, known: Sequence[str] = ()) -> str:
    """``text`` with every personal number masked (rules in the module docstring); ``known``: the digits
    of numbers masked elsewhere in the same conversation, masked here too where 5 in a row are said."""
    if not any(c in _DIGIT for c in text):
        return text
    plan, _ = _plan(text, known)
    if not plan:
        return text
    return "".join(plan.get(i, c) for i, c in enumerate(text))


def numbers_in(text: str) -> list[str]:
    """The digits of each personal number ``mask`` would mask in ``text``."""
    return _plan(text)[1] if any(c in _DIGIT for c in text) else []


def mask_pieces(pieces: Sequence[str], known: Sequence[str] = ()) -> list[str]:
    """Mask text that comes in pieces (recogniser words, segmented tokens) as one text: a number split
    over several pieces is found, and each piece keeps its place (a piece may become '' or ``****``)."""
    joined = "".join(pieces)
    plan = _plan(joined, known)[0] if any(c in _DIGIT for c in joined) else {}
    if not plan:
        return list(pieces)
    out, at = [], 0
    for piece in pieces:
        out.append("".join(plan.get(at + i, c) for i, c in enumerate(piece)))
        at += len(piece)
    return out


def _mask_turn(turn: Turn, known: Sequence[str]) -> Turn:
    update: dict[str, object] = {"text": mask(turn.text, known)}
    if turn.norm_text:
        update["norm_text"] = mask(turn.norm_text, known)
    if turn.tokens:
        update["tokens"] = [t for t in mask_pieces(turn.tokens, known) if t]
    return turn.model_copy(update=update)


def mask_transcript(transcript: Transcript) -> Transcript:
    """Every turn's text (and normalised text and tokens, if the text stage has run) masked, and the
    caller reference and room of the metadata (a sidecar's ``customer_ref`` should come masked already).
    A number masked in one turn (or given raw as the ``customer_ref``) is masked wherever the
    conversation says 5 of its digits in a row again, however broken (an agent's read-back)."""
    meta = transcript.meta
    known = [n for t in transcript.turns for n in numbers_in(t.text) + numbers_in(t.norm_text or "")]
    if meta.customer_ref and MASK not in meta.customer_ref:
        ref = _digits(meta.customer_ref, [i for i, c in enumerate(meta.customer_ref) if c in _DIGIT])
        known += [ref] if len(ref) >= 7 else []
    turns = [_mask_turn(t, known) for t in transcript.turns]
    changed = sum(a.text != b.text for a, b in zip(transcript.turns, turns, strict=True))
    meta_update = {k: mask(v) for k in ("customer_ref", "room") if isinstance(v := getattr(meta, k), str)}
    if changed:
        log.debug("%s: personal numbers masked in %d turn(s)", meta.id, changed)
    return transcript.model_copy(update={"turns": turns, "meta": meta.model_copy(update=meta_update)})


def mask_words(words: Sequence[Word]) -> list[Word]:
    """Recogniser words with their texts masked together (a number is said over several words); times
    and probabilities kept, a word left with no text (a separator inside a number) dropped."""
    texts = mask_pieces([w.text for w in words])
    return [w.model_copy(update={"text": t}) for w, t in zip(words, texts, strict=True) if t]


def enabled() -> bool:
    """Whether masking is on (``settings.privacy.mask_personal_numbers``); on when settings cannot be read."""
    from pipeline.config import get_settings

    try:
        return bool(get_settings().privacy.mask_personal_numbers)
    except Exception:  # settings broken: fail safe, the error itself surfaces where settings are used
        return True


class PersonalNumberFilter(logging.Filter):
    """Masks personal numbers in a log record's message (and traceback) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not enabled():
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it always does
            return True
        try:
            masked = mask(message)
        except Exception:  # never lose a log line to a masking bug; never show it raw either
            masked = _ANY_DIGIT.sub(MASK, message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> PersonalNumberFilter:
    """Put the filter on ``logger`` (default: "zhijian") once; returns the installed filter."""
    target = logger or logging.getLogger("zhijian")
    for f in target.filters:
        if isinstance(f, PersonalNumberFilter):
            return f
    f = PersonalNumberFilter()
    target.addFilter(f)
    return f


install_log_filter()
