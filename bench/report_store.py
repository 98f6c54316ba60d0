#!/usr/bin/env python3
"""A multi-week store for the reports, filled by the real pipeline on varied chats.

Chats are generated from templates — ten agents at two sites in three teams, thirteen complaint types with
site-specific mixes, residents who come back about the same problem, a lift-outage burst on one day — and
each agent has habits: 周强 (A104) rarely restates, 张伟 (A103) is rude and pushes residents away, 陈静 (A202)
skips greeting and farewell, 黄磊 (A205) answers chats late and skips the closing question, 吴婷 (A206) stops
skipping the restatement halfway through (a course that worked). The chats are written as a real inbox
(``<inbox>/<day>/chats/*.json``), read by ``pipeline.ingest``, judged by ``Analyser.pipe`` (the learned
judge) and saved with ``Store.save_analysis``: the numbers in the reports are the pipeline's judgements.

usage: python bench/report_store.py --db URL [--start 2026-10-05] [--weeks 6] [--per-agent-day 6]
       [--inbox DIR] [--seed 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TZ = dt.timezone(dt.timedelta(hours=8))
SITES = {"阳光花园": "阳光花园物业客服中心", "海棠湾": "海棠湾物业服务中心"}
# Types with their weights per site: repair is always frequent at 阳光花园 (an old estate), parking and
# noise at 海棠湾 (new, still being fitted out).
MIX = {
    "阳光花园": {"repair": 30, "facility": 10, "security": 5, "cleaning": 8, "greening": 5, "parking": 6,
                 "fees": 8, "noise": 5, "neighbor": 5, "renovation": 3, "staff_attitude": 3, "inquiry": 8,
                 "praise": 4},
    "海棠湾": {"repair": 8, "facility": 6, "security": 5, "cleaning": 5, "greening": 3, "parking": 22,
               "fees": 6, "noise": 16, "neighbor": 6, "renovation": 10, "staff_attitude": 3, "inquiry": 8,
               "praise": 2},
}
ISSUES: dict[str, list[tuple[str, str]]] = {  # (what the resident writes, the agent's restatement)
    "repair": [("我家卫生间的水管一直在漏水，楼下都渗下去了", "卫生间水管漏水"),
               ("家里厨房突然断电了，跳闸了好几次", "厨房跳闸断电"),
               ("我家入户门的锁坏了，钥匙拧不动", "入户门锁坏了"),
               ("阳台的下水道堵住了，一下雨就往屋里倒灌", "阳台下水道堵塞")],
    "facility": [("我们单元的电梯又坏了，停在三楼不动", "单元电梯故障"),
                 ("楼道里的灯坏了一个星期了，晚上黑漆漆的", "楼道灯不亮"),
                 ("小区东门的门禁刷卡刷不开", "门禁刷卡失灵")],
    "security": [("最近小区里总有陌生人进出，门岗也不登记", "陌生人随意进出"),
                 ("我放在车棚的电动车被偷了", "电动车被盗"),
                 ("消防通道被几辆车堵死了，万一着火怎么办", "消防通道被堵")],
    "cleaning": [("楼下的垃圾桶好几天没人清理了，臭得不行", "垃圾没有及时清运"),
                 ("地下车库有很多蟑螂和老鼠", "车库虫鼠问题"),
                 ("楼道好久没人打扫了，全是灰", "楼道卫生没人打扫")],
    "greening": [("楼下的树枝都长到我家窗户上了，能不能修剪一下", "树枝需要修剪"),
                 ("草坪打药也不提前通知，孩子都不敢下楼", "打药没有提前通知")],
    "parking": [("我的固定车位又被别人的车占了", "车位被占用"),
                ("地库的充电桩坏了，车充不了电", "充电桩故障"),
                ("临时停车费怎么又涨了，出门收了我二十块", "临时停车收费")],
    "fees": [("这个月的公摊水电费怎么比上个月多了一倍", "公摊水电费偏高"),
             ("我交了物业费，发票一直没开给我", "物业费发票未开"),
             ("为什么给我发了欠费催缴通知，我明明交过了", "误发欠费通知")],
    "noise": [("楼上装修每天早上七点就开始电钻，吵死了", "楼上装修噪音"),
              ("广场舞的音乐放到晚上十点多，孩子没法睡觉", "广场舞噪音"),
              ("楼顶的水泵半夜一直嗡嗡响", "水泵噪音")],
    "neighbor": [("隔壁邻居在楼道里堆满了杂物", "邻居占用楼道"),
                 ("楼上的狗天天叫，还在电梯里随地大小便", "邻居宠物扰民"),
                 ("楼上家里漏水渗到我家天花板，他们不肯处理", "楼上渗水到您家")],
    "renovation": [("隔壁装修的建筑垃圾在楼道里堆了好几天", "装修垃圾乱堆"),
                   ("对门装修把承重墙都砸了，你们管不管", "违规拆改承重墙")],
    "staff_attitude": [("昨天你们门岗的保安对我态度特别差，还骂人", "保安态度恶劣"),
                       ("前台那个工作人员爱答不理的，问什么都不耐烦", "前台人员态度差")],
    "inquiry": [("请问明天停水通知上说几点恢复供水？", "恢复供水的时间"),
                ("物业服务中心周末几点上班？", "周末的办公时间"),
                ("办理门禁卡需要带什么材料？", "办理门禁卡的材料")],
    "praise": [("我想表扬一下你们的维修师傅，修得又快又好", "表扬维修师傅"),
               ("保洁阿姨每天都把楼道打扫得很干净，谢谢你们", "感谢保洁阿姨")],
}
GREETINGS = ["您好，{desk}，我是{no}号客服{name}，请问有什么可以帮您？",
             "您好，这里是{desk}，工号{no}，{name}为您服务。",
             "您好，欢迎联系{desk}，我是客服{name}。"]
NO_GREETING = ["在。", "嗯，说。", "什么事？"]
IDENTITY = ["请问您是几栋几单元哪个房间？方便留一下联系电话吗？", "麻烦告诉我一下您的房号和联系电话。",
            "先跟您核实一下，您是哪一户？留个手机号方便师傅联系您。"]
ANSWERS = ["{room}，电话{phone}", "我是{room}的，手机{phone}", "{room}，号码{phone}"]
RESTATE = ["好的，跟您确认一下，您反映的是{short}，对吗？", "我复述一下，您说的是{short}这个问题，是吧？",
           "明白，您的意思是{short}，我理解得对吗？"]
YES = ["对的，麻烦尽快。", "是的，就是这个。", "对，赶紧处理一下。"]
COMMIT = ["我马上给您登记工单，安排师傅30分钟内上门处理。", "已经给您派单了，今天下午五点前会有人联系您处理。",
          "我现在就通知相关同事，两个小时内给您回复处理结果。"]
VAGUE = ["我们会安排的。", "知道了，回头再说吧。", "我记下了。"]
PUSH = ["这个不归我们管，你自己去找开发商吧。", "这事你去找社区居委会，我们处理不了。"]
RUDE = ["急什么，排队等着。", "这是规定，我也没办法。", "你听不懂吗？我都说了好几遍了。"]
ESCALATE = ["再不处理我就打12345投诉你们！", "这已经是第三次反映了，再拖我就找住建委。", "不解决的话物业费我不交了。"]
OK = ["好的。", "行，那我等着。", "嗯嗯。"]
CLOSING = ["请问还有其他需要帮您的吗？", "还有别的问题需要我帮您处理吗？"]
NO_MORE = ["没有了，谢谢。", "没了。"]
FAREWELL = ["感谢您的反馈，祝您生活愉快，再见！", "谢谢您的耐心，有问题随时联系我们，再见。"]


@dataclass(frozen=True)
class Agent:
    agent_id: str
    name: str
    team: str
    site: str
    no: int
    skip: dict[str, float] = field(default_factory=dict)  # item -> probability of skipping it
    rude: float = 0.02  # a rude turn
    push: float = 0.01  # pushes the resident elsewhere (ownership broken)
    reply_minutes: float = 2.0  # median first reply in chats
    late_skip: dict[str, float] | None = None  # habits from the second half of the period on

    def p_skip(self, item: str, late: bool) -> float:
        habits = self.late_skip if (late and self.late_skip is not None) else self.skip
        return habits.get(item, 0.04)


AGENTS: tuple[Agent, ...] = (
    Agent("A101", "王丽", "阳光花园客服组", "阳光花园", 1011),
    Agent("A102", "李娜", "阳光花园客服组", "阳光花园", 1012, skip={"identity_check": 0.2}),
    Agent("A103", "张伟", "阳光花园客服组", "阳光花园", 1013, rude=0.3, push=0.2),
    Agent("A104", "周强", "阳光花园客服组", "阳光花园", 1014, skip={"restate": 0.65, "commitment": 0.3}),
    Agent("A201", "刘洋", "海棠湾客服组", "海棠湾", 2011),
    Agent("A202", "陈静", "海棠湾客服组", "海棠湾", 2012, skip={"greeting": 0.5, "farewell": 0.5}),
    Agent("A203", "杨帆", "海棠湾客服组", "海棠湾", 2013, skip={"closing": 0.2}),
    Agent("A204", "赵敏", "海棠湾夜班组", "海棠湾", 2021, reply_minutes=5.0),
    Agent("A205", "黄磊", "海棠湾夜班组", "海棠湾", 2022, reply_minutes=40.0, skip={"closing": 0.5}),
    Agent("A206", "吴婷", "海棠湾夜班组", "海棠湾", 2023, skip={"restate": 0.7}, late_skip={"restate": 0.1}),
)


@dataclass
class Resident:
    site: str
    room: str
    phone: str
    ref: str | None  # masked caller id, when the channel knows it


def residents(rng: random.Random, per_site: int = 60) -> dict[str, list[Resident]]:
    out: dict[str, list[Resident]] = {}
    for site in SITES:
        people = []
        for _ in range(per_site):
            room = f"{rng.randint(1, 12)}-{rng.randint(1, 3)}-{rng.randint(2, 28):02d}0{rng.randint(1, 4)}"
            tail = f"{rng.randint(0, 9999):04d}"
            phone = f"13{rng.randint(0, 9)}{rng.randint(1000, 9999)}{tail}"
            people.append(Resident(site, room, phone, f"{phone[:3]}****{tail}" if rng.random() < 0.7 else None))
        out[site] = people
    return out


def _pick(rng: random.Random, options: Sequence[str], **kw: str) -> str:
    return rng.choice(options).format(**kw)


def chat(rng: random.Random, conv_id: str, agent: Agent, who: Resident, kind: str, start: dt.datetime,
         late: bool) -> dict[str, Any]:
    """One chat session in the inbox format (CONVERSATIONS.md section 1)."""
    issue, short = rng.choice(ISSUES[kind])
    skip = {i: rng.random() < agent.p_skip(i, late) for i in
            ("greeting", "identity_check", "restate", "commitment", "closing", "farewell")}
    messages: list[tuple[str, str]] = [("customer", issue)]
    first = (_pick(rng, NO_GREETING) if skip["greeting"] else
             _pick(rng, GREETINGS, desk=SITES[agent.site], no=str(agent.no), name=agent.name))
    if not skip["identity_check"]:
        messages += [("agent", first + _pick(rng, IDENTITY)),
                     ("customer", _pick(rng, ANSWERS, room=who.room, phone=who.phone))]
    else:
        messages.append(("agent", first))
        messages.append(("customer", "你们快点处理吧。"))
    if not skip["restate"]:
        messages += [("agent", _pick(rng, RESTATE, short=short)), ("customer", _pick(rng, YES))]
    if rng.random() < (0.35 if kind in ("repair", "facility", "fees", "staff_attitude") else 0.08):
        messages.append(("customer", _pick(rng, ESCALATE)))
    if rng.random() < agent.rude:
        messages.append(("agent", _pick(rng, RUDE)))
        messages.append(("customer", "你这是什么态度？"))
    if rng.random() < agent.push:
        messages.append(("agent", _pick(rng, PUSH)))
        messages.append(("customer", "那我找谁啊？"))
    messages.append(("agent", _pick(rng, VAGUE) if skip["commitment"] else _pick(rng, COMMIT)))
    messages.append(("customer", _pick(rng, OK)))
    if not skip["closing"]:
        messages += [("agent", _pick(rng, CLOSING)), ("customer", _pick(rng, NO_MORE))]
    if not skip["farewell"]:
        messages.append(("agent", _pick(rng, FAREWELL)))
    at = start
    timed = []
    for i, (role, text) in enumerate(messages):
        if i == 1:  # the first reply: the agent's habit, log-normal around their median
            at += dt.timedelta(seconds=round(60 * agent.reply_minutes * rng.lognormvariate(0, 0.6)))
        elif i:
            at += dt.timedelta(seconds=rng.randint(15, 120))
        timed.append({"role": role, "at": at.isoformat(), "text": text})
    data: dict[str, Any] = {
        "id": conv_id, "channel": "chat", "agent_id": agent.agent_id, "agent_name": agent.name,
        "team": agent.team, "site": agent.site, "started_at": start.isoformat(), "room": who.room,
        "messages": timed,
    }
    if who.ref:
        data["customer_ref"] = who.ref
    return data


def generate(start: dt.date, days: int, per_agent_day: int, seed: int = 7,
             burst: tuple[int, str, str, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Chats per inbox day. ``burst`` = (day index, site, type, extra chats): a spike on that day."""
    rng = random.Random(seed)
    people = residents(rng)
    recent: list[tuple[dt.date, Resident, str]] = []  # complaints of the last days, for follow-ups
    out: dict[str, list[dict[str, Any]]] = {}
    if burst is None:
        burst = (days - 1, "海棠湾", "facility", 6)
    for d in range(days):
        day = start + dt.timedelta(days=d)
        late = d >= days // 2
        chats = []
        jobs: list[tuple[Agent, str | None]] = [(a, None) for a in AGENTS for _ in range(per_agent_day)]
        if d == burst[0]:
            site_agents = [a for a in AGENTS if a.site == burst[1]]
            jobs += [(site_agents[i % len(site_agents)], burst[2]) for i in range(burst[3])]
        for n, (agent, forced) in enumerate(jobs, 1):
            recent = [r for r in recent if (day - r[0]).days <= 6]
            follow = [r for r in recent if r[1].site == agent.site]
            if forced is None and follow and rng.random() < 0.12:
                _, who, kind = rng.choice(follow)  # the same resident, the same problem, again
            else:
                who = rng.choice(people[agent.site])
                mix = MIX[agent.site]
                kind = forced or rng.choices(list(mix), weights=list(mix.values()))[0]
            at = dt.datetime.combine(day, dt.time(8, 0), TZ) + dt.timedelta(minutes=rng.randint(0, 13 * 60))
            conv_id = f"W{day:%Y%m%d}-{n:04d}"
            chats.append(chat(rng, conv_id, agent, who, kind, at, late))
            if kind not in ("inquiry", "praise"):
                recent.append((day, who, kind))
        out[day.isoformat()] = chats
    return out


def write_inbox(inbox: Path, days: dict[str, list[dict[str, Any]]]) -> None:
    for day, chats in days.items():
        folder = inbox / day / "chats"
        folder.mkdir(parents=True, exist_ok=True)
        for c in chats:
            (folder / f"{c['id']}.json").write_text(json.dumps(c, ensure_ascii=False, indent=1), encoding="utf-8")


def fill(db_url: str, start: dt.date, days: int, per_agent_day: int, *, inbox: Path | None = None,
         seed: int = 7, progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Generate, write as an inbox, ingest, judge and save every day; returns counts and timings."""
    from pipeline.analysis import Analyser
    from pipeline.config import get_settings
    from pipeline.ingest import discover
    from pipeline.schema import Analysis, Transcript
    from pipeline.store import Store

    generated = generate(start, days, per_agent_day, seed)
    own = inbox is None
    root = Path(tempfile.mkdtemp(prefix="zhijian-report-inbox-")) if inbox is None else inbox
    write_inbox(root, generated)
    settings = get_settings()
    t0 = time.monotonic()
    analyser = Analyser(settings)
    store = Store(db_url)
    saved = failed = 0
    try:
        for day in generated:
            transcripts = [t for t in discover(root, day) if isinstance(t, Transcript)]
            for a in analyser.pipe(transcripts, day):
                if isinstance(a, Analysis):
                    store.save_analysis(a, pipeline_version="report-store")
                    saved += 1
                else:
                    store.save_failure(day, a)
                    failed += 1
            if progress:
                progress(day, saved)
    finally:
        store.close()
        if own:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    return {"days": days, "saved": saved, "failed": failed, "seconds": round(time.monotonic() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of the store to fill")
    ap.add_argument("--start", default="2026-10-05", help="first inbox day (a Monday keeps ISO weeks whole)")
    ap.add_argument("--weeks", type=int, default=6)
    ap.add_argument("--per-agent-day", type=int, default=6)
    ap.add_argument("--inbox", type=Path, default=None, help="keep the generated inbox here")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    summary = fill(args.db, dt.date.fromisoformat(args.start), 7 * args.weeks, args.per_agent_day,
                   inbox=args.inbox, seed=args.seed,
                   progress=lambda day, n: print(f"{day}: {n} saved", file=sys.stderr, flush=True))
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
