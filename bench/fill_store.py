"""Fill a PostgreSQL store with a quarter of a 50-agent property company (≈ 270,000 conversations with their
turns and findings), fast, for the workbench and report benchmarks (bench/web_load.py, bench/report_speed.py).

Every conversation is built as the night builds one: machine findings (complaint type, the seven script
items, rude turns, emotion and dissatisfaction, escalation, dead air) → the real scorecard (``Verdict`` →
``score`` → ``assemble``) → the store's own row builders (``conversation_values``, ``turn_rows``,
``finding_rows``), with each turn's words segmented by the text stage (jieba + the property lexicon). Only the
writing differs: COPY instead of one transaction per conversation (the nightly path would take an hour here).

The agents differ on purpose — each has habits (items they tend to skip, a rudeness rate), each site its own
complaint mix, residents call again about the same thing — so reports and queues have something to show.

    .venv/bin/python bench/fill_store.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dzj_bench
        [--agents 50] [--days 90] [--per-day 60] [--start 2026-09-01] [--seed 7]

The target schema is created (migrated) first; rows already there are removed (``--append`` keeps them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import make_url

from pipeline.config import get_settings
from pipeline.schema import (
    SCRIPT_ITEMS,
    Analysis,
    ConversationMeta,
    Evidence,
    Finding,
    Transcript,
    Turn,
)
from pipeline.scorecard import Scorecard, Verdict, assemble, score
from pipeline.store import Store
from pipeline.store.models import ConversationRow, FindingRow, TurnRow
from pipeline.store.repository import conversation_values, finding_rows, turn_rows
from pipeline.text import segment

TZ = dt.timezone(dt.timedelta(hours=8))
SOURCE = "learned:2.bench"

SITES = ["阳光花园", "海棠湾", "翠湖苑", "金桂园", "锦绣江南",
         "滨江壹号", "御景华庭", "青年汇公寓", "星河湾", "枫林雅居"]
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程苏魏吕丁任沈姚卢"
GIVEN = ["丽", "强", "静", "伟", "芳", "敏", "磊", "洋", "艳", "勇",
         "军", "杰", "娟", "涛", "明", "超", "霞", "平", "刚", "桂英"]

COMPLAINTS: dict[str, list[str]] = {
    "repair": ["我家厨房的水管漏水了，地上全是水", "卫生间马桶堵了，一直冲不下去", "家里突然停电了，跳闸推不上去",
               "阳台的窗户关不严，一下雨就进水", "热水器不出热水，麻烦找人来看看"],
    "facility": ["二号楼的电梯又坏了，停在十二楼不动", "单元门禁刷不开，老人进不去",
                 "楼道的灯坏了好几天了，晚上黑乎乎的"],
    "security": ["小区门口有陌生人发传单，保安也不管", "我家电动车昨晚被偷了", "消防通道被车堵住了"],
    "cleaning": ["垃圾桶满了好几天没人清，味道很大", "楼道里有蟑螂，能不能消杀一下", "地下车库很脏，到处是垃圾"],
    "greening": ["楼下的树枝挡住窗户了，能不能修剪一下", "草坪打农药也不通知，小孩在玩"],
    "parking": ["我的车位被别人占了", "门口停车收费怎么又涨了", "充电桩坏了没法充电"],
    "fees": ["物业费怎么比去年多收了", "公摊水电费算得不对", "我要开物业费发票", "催缴通知写错了，我早就交了"],
    "noise": ["楼上装修太吵了，中午都不停", "广场舞音响声音太大了", "楼下水泵一直嗡嗡响，晚上睡不着"],
    "neighbor": ["邻居家的狗天天叫，还在楼道里大小便", "对门把鞋柜放在公共走廊", "楼上漏水渗到我家天花板了"],
    "renovation": ["隔壁装修的垃圾堆在楼道里", "装修要办什么手续", "楼下装修把承重墙拆了"],
    "staff_attitude": ["你们前台那个小伙子态度太差了", "保安对老人说话很不客气"],
    "inquiry": ["请问物业办公室几点上班", "停水通知是哪天", "快递柜在哪里"],
    "praise": ["上次修水管的师傅很负责，谢谢你们", "保洁阿姨每天打扫得很干净，表扬一下"],
}
MIX = {  # each site's complaint mix (weights), shuffled per site
    "repair": 22, "facility": 12, "security": 6, "cleaning": 9, "greening": 3, "parking": 9, "fees": 12,
    "noise": 8, "neighbor": 5, "renovation": 4, "staff_attitude": 3, "inquiry": 5, "praise": 2,
}
AGENT_LINES = {
    "identity_check": "请问您是几栋几单元几号？方便留个联系电话吗？",
    "commitment": "好的，我马上安排，30分钟内上门处理。",
    "closing": "请问还有其他问题吗？",
    "farewell": "感谢您的来电，再见！",
}
SKIPPED = {"greeting": "喂，说吧。", "identity_check": "嗯。", "restate": "嗯嗯。", "commitment": "我们会处理的。",
           "closing": "", "farewell": ""}
RUDE = ["这个不归我们管，你自己找开发商。", "你急什么，排队等着。", "我都说了没办法，你听不懂吗？", "爱找谁找谁去。"]
DEFLECT = "这个你自己找工程部吧，电话你去前台问。"
THREAT = ["再不处理我就打12345投诉你们。", "我要找住建委反映。", "这个月物业费我不交了。"]
EMOTION_LINE = {"calm": "好的，谢谢。", "dissatisfied": "都说了好几次了，怎么还没弄好。",
                "angry": "你们到底管不管？太气人了！"}


@dataclass
class Agent:
    agent_id: str
    name: str
    team: str
    site: str
    miss: dict[str, float]  # item -> probability the agent skips it
    rude: float  # probability of a rude turn in a conversation
    deflect: float  # probability of pushing the resident elsewhere


def agents(n: int, rng: random.Random) -> list[Agent]:
    out = []
    for i in range(n):
        site = SITES[i % len(SITES)] if n >= len(SITES) else SITES[i % n]
        miss = {item: rng.uniform(0.02, 0.12) for item in SCRIPT_ITEMS if item != "ownership"}
        for weak in rng.sample([k for k in miss], k=rng.choice([0, 1, 1, 2])):
            miss[weak] = rng.uniform(0.35, 0.7)  # this agent's habit
        name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)]
        out.append(Agent(agent_id=f"A{100 + i}", name=name, team=f"{site}客服组", site=site, miss=miss,
                         rude=rng.choice([0.005, 0.01, 0.02, 0.03, 0.08]), deflect=rng.choice([0.01, 0.03, 0.1])))
    return out


@cache
def _segmented(part: str) -> tuple[str, ...]:
    return tuple(segment(part, get_settings().lexicon_path))


def words(*parts: str) -> list[str]:
    """The text stage's words of a line made of ``parts`` (each part segmented once, then cached: a line's
    varying parts — room numbers — would otherwise make every line new to jieba)."""
    return [w for part in parts for w in _segmented(part)]


def site_mix(rng: random.Random) -> dict[str, list[Any]]:
    mixes = {}
    for site in SITES:
        weights = list(MIX.values())
        rng.shuffle(weights)
        mixes[site] = [list(MIX), weights]
    return mixes


def conversation(conv_id: str, day: dt.date, agent: Agent, n: int, rng: random.Random, card: Scorecard,
                 mixes: dict[str, list[Any]], residents: list[str]) -> Analysis:
    """One conversation as the night would have judged it."""
    is_call = rng.random() < 0.3
    types, weights = mixes[agent.site]
    ctype = rng.choices(types, weights)[0]
    complaint = rng.choice(COMPLAINTS[ctype])
    resident = rng.choice(residents)  # a resident calls again about the same thing, sometimes
    room = resident.split("|")[1]
    done = {item: rng.random() >= p for item, p in agent.miss.items()}
    deflects = rng.random() < agent.deflect
    rude = rng.random() < agent.rude
    emotion = rng.choices(["calm", "dissatisfied", "angry"], [70, 22, 8])[0]
    threat = rng.random() < (0.25 if emotion == "angry" else 0.03)
    lines: list[tuple[str, tuple[str, ...], str | None]] = []  # role, the line's parts, tag

    def agent_line(item: str, *parts: str) -> None:
        if done[item]:
            lines.append(("agent", parts or (AGENT_LINES[item],), item))
        elif SKIPPED[item]:
            lines.append(("agent", (SKIPPED[item],), None))

    building, unit, flat = room.split("-")
    agent_line("greeting", "您好，", agent.site, "物业客服中心，工号", agent.agent_id[1:], "，请问有什么可以帮您？")
    lines.append(("customer", (complaint, "，我是", building, "栋", unit, "单元", flat, "号。"), None))
    agent_line("identity_check")
    lines.append(("customer", (room, "，电话就是这个号码。"), None))
    agent_line("restate", "您是说", complaint[:12], "，对吗？")
    if rude:
        lines.append(("agent", (rng.choice(RUDE),), "rude"))
    lines.append(("customer", (EMOTION_LINE[emotion],), None))
    if threat:
        lines.append(("customer", (rng.choice(THREAT),), "threat"))
    if deflects:
        lines.append(("agent", (DEFLECT,), "deflect"))
    agent_line("commitment")
    agent_line("closing")
    lines.append(("customer", ("没有了。",), None))
    agent_line("farewell")

    start = dt.datetime.combine(day, dt.time(8, 0), TZ) + dt.timedelta(seconds=rng.randint(0, 12 * 3600))
    turns, clock = [], 0.5
    for i, (role, parts, _) in enumerate(lines):
        text = "".join(parts)
        seconds = 0.6 + len(text) * 0.22
        if is_call:
            turns.append(Turn(index=i, role=role, text=text, start=round(clock, 2), end=round(clock + seconds, 2),
                              confidence=round(rng.uniform(0.55, 0.97), 3), tokens=words(*parts)))
            clock += seconds + rng.uniform(0.2, 1.5)
        else:
            clock += rng.uniform(5, 300 if role == "agent" else 90)
            turns.append(Turn(index=i, role=role, text=text, at=start + dt.timedelta(seconds=clock),
                              tokens=words(*parts)))

    def ev(tag: str | None) -> list[Evidence]:
        return [Evidence(turn=t.index, text=t.text, start=t.start, end=t.end)
                for t, (_, _, g) in zip(turns, lines, strict=True) if g == tag][:1]

    def conf() -> float:
        return round(rng.uniform(0.45, 0.99) if rng.random() < 0.08 else rng.uniform(0.75, 0.99), 3)

    findings = [Finding(item="complaint_type", value=ctype, confidence=conf(), source=SOURCE, evidence=ev(None)[:1]
                        or [Evidence(turn=1, text=turns[1].text, start=turns[1].start, end=turns[1].end)])]
    for item in SCRIPT_ITEMS:
        if item == "ownership":
            findings.append(Finding(item="script.ownership", value=not deflects, confidence=conf(), source=SOURCE,
                                    evidence=ev("deflect")))
        else:
            findings.append(Finding(item=f"script.{item}", value=done[item], confidence=conf(), source=SOURCE,
                                    evidence=ev(item)))
    for e in ev("rude"):
        findings.append(Finding(item="courtesy_violation", value=True, confidence=conf(), source=SOURCE, evidence=[e]))
    dissatisfaction = {"calm": rng.uniform(0.02, 0.3), "dissatisfied": rng.uniform(0.4, 0.7),
                       "angry": rng.uniform(0.72, 0.99)}[emotion]
    findings += [
        Finding(item="customer_emotion", value=emotion, confidence=conf(), source=SOURCE, evidence=[]),
        Finding(item="customer_dissatisfaction", value=round(dissatisfaction, 4), confidence=1.0, source=SOURCE),
        Finding(item="escalation_risk", value=threat, confidence=conf(), source=SOURCE, evidence=ev("threat")),
        Finding(item="dead_air", value=is_call and rng.random() < 0.03, source="dead_air:1"),
    ]
    kind = "call" if is_call else "chat"
    meta = ConversationMeta(
        id=conv_id, channel=kind, agent_id=agent.agent_id, agent_name=agent.name, team=agent.team, site=agent.site,
        started_at=start, audio_layout="stereo_agent_left" if is_call else None, customer_ref=resident.split("|")[0],
        room=room, source=f"/srv/inbox/{day}/{kind}s/{conv_id}.json",
    )
    transcript = Transcript(meta=meta, turns=turns, asr_model="whisper-base-pypi" if is_call else None)
    verdict = Verdict(findings)
    card_score = score(card, verdict, transcript)
    result = assemble(day.isoformat(), transcript, verdict, card_score)
    return Analysis(date=day.isoformat(), transcript=transcript, findings=findings, score=card_score, result=result)


def generate(args: argparse.Namespace) -> Iterator[Analysis]:
    rng = random.Random(args.seed)
    card = Scorecard.load(get_settings().scorecard_path)
    staff = agents(args.agents, rng)
    mixes = site_mix(rng)
    residents = {site: [f"1{rng.randint(30, 89)}****{rng.randint(1000, 9999)}|{rng.randint(1, 30)}-{rng.randint(1, 4)}-"
                        f"{rng.randint(1, 33)}{rng.randint(1, 4):02d}" for _ in range(900)] for site in SITES}
    first = dt.date.fromisoformat(args.start)
    for d in range(args.days):
        day = first + dt.timedelta(days=d)
        n = 0
        for agent in staff:
            for _ in range(args.per_day):
                n += 1
                prefix = "C" if rng.random() < 0.3 else "W"
                yield conversation(f"{prefix}{day:%Y%m%d}-{n:04d}", day, agent, n, rng, card, mixes,
                                   residents[agent.site])


def _cols(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)  # "end" and "at" are SQL keywords


def _conninfo(url: str) -> tuple[str, str | None]:
    u = make_url(url)
    options = u.query.get("options")
    info = f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} dbname={u.database}"
    return info, options if isinstance(options, str) else None


def fill(args: argparse.Namespace) -> dict[str, Any]:
    Store(args.db).close()  # migrate the target schema
    info, options = _conninfo(args.db)
    conv_cols = [c.name for c in ConversationRow.__table__.columns]
    turn_cols = [c.name for c in TurnRow.__table__.columns]
    finding_cols = [c.name for c in FindingRow.__table__.columns if c.name != "id"]
    json_cols = {"flags", "result", "machine_result", "value", "evidence"}
    rate = get_settings().review.sample_rate
    started = time.monotonic()
    counts = {"conversations": 0, "turns": 0, "findings": 0}
    with psycopg.connect(info, options=options or "") as conn:
        if not args.append:
            conn.execute("TRUNCATE conversations, turns, findings, corrections, audit_log CASCADE")
        with conn.cursor() as cur, \
                cur.copy(f"COPY conversations ({_cols(conv_cols)}) FROM STDIN") as copy_conv:
            # turns and findings go through their own COPYs afterwards (one COPY at a time per connection)
            pending_turns: list[tuple[Any, ...]] = []
            pending_findings: list[tuple[Any, ...]] = []
            now = dt.datetime.now(dt.UTC)
            for a in generate(args):
                values = conversation_values(a, a.result, rate)
                values |= {"id": a.result.id, "version": 1, "review_status": "open", "created_at": now}
                copy_conv.write_row([json.dumps(values[c], ensure_ascii=False) if c in json_cols
                                     and values.get(c) is not None else values.get(c) for c in conv_cols])
                pending_turns += [tuple(r[c] for c in turn_cols) for r in turn_rows(a.result.id, a.transcript.turns)]
                pending_findings += [tuple(json.dumps(r[c], ensure_ascii=False) if c in json_cols else r[c]
                                           for c in finding_cols) for r in finding_rows(a.result.id, a.findings)]
                counts["conversations"] += 1
                if counts["conversations"] % 20000 == 0:
                    print(f"  {counts['conversations']:,} conversations generated "
                          f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
        for table, cols, rows in (("turns", turn_cols, pending_turns), ("findings", finding_cols, pending_findings)):
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({_cols(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            counts[table] = len(rows)
        conn.commit()
        # VACUUM ANALYZE every table the fill wrote, the search index's too (filled by the turns' trigger):
        # what autovacuum does to a store after a big write, done at once, since a server may run with
        # autovacuum off (the bench's does). Without it search_docs has no statistics (the planner then
        # guesses 32 matches for 3,292) and its GIN index keeps the fill's rows in its pending list, which
        # every search then reads through (8 ms against 1 ms for a two-word query on the 270,000 store).
        conn.autocommit = True
        for table in ("conversations", "turns", "findings", "search_docs"):
            conn.execute(f"VACUUM ANALYZE {table}")
    counts["seconds"] = round(time.monotonic() - started, 1)  # type: ignore[assignment]
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="PostgreSQL SQLAlchemy URL (postgresql+psycopg://…)")
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--per-day", type=int, default=60, help="conversations per agent per day")
    ap.add_argument("--start", default="2026-09-01")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--append", action="store_true", help="keep rows already in the store")
    args = ap.parse_args()
    if make_url(args.db).get_backend_name() != "postgresql":
        ap.error("--db must be a PostgreSQL URL (the bulk load uses COPY)")
    counts = fill(args)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
