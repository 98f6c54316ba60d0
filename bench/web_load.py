#!/usr/bin/env python3
"""Load on the review workbench's API: queue, conversation, search and review requests from concurrent
clients against ``zhijian web`` on a PostgreSQL store of a quarter of a 50-agent company (≈ 270,000
conversations, bench/fill_store.py), and p50/p95/max latency per kind against the target (p95 ≤ 200 ms).

What it does, in order:

1. optionally fills the store: ``--fill`` runs bench/fill_store.py into ``--db`` (minutes), ``--copy-from
   SCHEMA`` copies an already filled schema of the same database into it (server-side INSERT … SELECT, so
   a bench can write reviews without touching the shared fill); either drops the schema of ``--db`` first
   and migrates it afresh (the search index and its triggers are then the current migrations');
2. creates three accounts with ``zhijian users add`` (a reviewer of every team, a supervisor of two
   teams, an agent), passwords on stdin;
3. starts ``zhijian web`` on a free 127.0.0.1 port as a subprocess and waits until it answers;
4. signs each client in over the API (its own session cookie and CSRF token), warms up (one read of each
   kind per client) and makes ``--serial`` requests of each kind one at a time (the server's CPU and the
   latency of each kind alone, not counted in the table); then runs ``--clients``
   threads, bounded by ``--per-kind`` requests of each kind and ``--max-seconds``:
   - queue: ``GET /api/queue`` with varied filters, following ``next_cursor`` to later pages;
   - conversation: ``GET /api/conversations/{id}`` on random ids the client may see;
   - search: ``GET /api/conversations?q=…`` with two-word Chinese queries that occur in the data;
   - review: ``POST /api/conversations/{id}/review`` with the version just read (that read is not counted
     as a conversation request); a 409 is an answer (counted, not an error) and is retried once after
     reading the conversation again;
5. prints the table (kind, n, p50, p95, max, errors, PASS/FAIL), the server's CPU per request and resident
   memory, and stops the server. Exit status 0 when every kind passes, 1 when one fails, 2 when the run could not start.

Traffic goes to 127.0.0.1 only (the server) and to the database of ``--db``.

    .venv/bin/python bench/web_load.py \\
        --db 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dzj_webload' \\
        --copy-from zj_bench [--clients 8] [--per-kind 300] [--max-seconds 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("queue", "conversation", "search", "review")
# Two-word queries whose words the text stage (jieba + the property lexicon) gives for lines of the fill's
# conversations, so each finds something: a query of words that never occur would measure an empty index
# probe, not a search.
QUERIES = ("厨房 漏水", "电梯 十二楼", "楼上 漏水", "楼道 蟑螂", "车位 别人", "物业费 发票", "楼上 装修",
           "充电桩 充电", "门禁 老人", "保安 老人", "马桶 卫生间", "热水器 热水", "垃圾桶 味道", "广场 音响")
FLAGS = ("critical", "escalation_risk", "low_score", "low_confidence", "angry_customer", "dead_air")
OVERRIDE_REASON = "负载测试：复核后改判"
BENCH_LOGINS = {"reviewer": "webload-reviewer", "supervisor": "webload-supervisor", "agent": "webload-agent"}
# Tables a --copy-from copies, parents first; the rest (users, sessions, runs) stay the target's own.
COPIED_TABLES = ("conversations", "turns", "findings", "corrections", "audit_log", "appeals")


class SetupError(Exception):
    """The bench could not get to the load (no store, a failed command, a server that does not answer)."""


# -- the store -----------------------------------------------------------------------------------------

def schema_of(url: str) -> str | None:
    """The schema a ``…?options=-csearch_path%3DNAME`` URL puts every table in (None: the default)."""
    options = make_url(url).query.get("options")
    found = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", options if isinstance(options, str) else "")
    return found.group(1) if found else None


def ensure_schema(url: str, afresh: bool = False) -> None:
    """Create the URL's schema if it is missing (the store migrates its tables into it when opened);
    ``afresh``: drop it first, so the store is built by the migrations as they are now (a schema migrated
    by an earlier version of a revision would keep that version's tables)."""
    schema = schema_of(url)
    if schema is None:
        return
    admin = create_engine(make_url(url).difference_update_query(["options"]))
    try:
        with admin.begin() as conn:
            if afresh:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        admin.dispose()


def migrate(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from pipeline.store import Store

    Store(url).close()


def fill(url: str, args: argparse.Namespace) -> None:
    """bench/fill_store.py into the store (it migrates the schema and removes rows already there)."""
    cmd = [sys.executable, str(ROOT / "bench" / "fill_store.py"), "--db", url, "--agents", str(args.agents),
           "--days", str(args.days), "--per-day", str(args.per_day), "--seed", str(args.seed)]
    print(f"filling: {' '.join(cmd[1:3])} --agents {args.agents} --days {args.days} --per-day {args.per_day}",
          flush=True)
    started = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"filled in {time.monotonic() - started:.0f} s", flush=True)


def copy_from(engine: Engine, source: str) -> None:
    """Copy the conversations (with turns, findings and any decisions) of schema ``source`` into the store
    of ``engine``, in one transaction, replacing what it held; sequences follow the copied ids."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", source):
        raise SetupError(f"--copy-from: {source!r} is not a schema name")
    started = time.monotonic()
    with engine.begin() as conn:
        target = conn.execute(text("SELECT current_schema()")).scalar_one()
        if target == source:
            raise SetupError(f"--copy-from {source}: that is the target schema itself")
        conn.execute(text(f"TRUNCATE {', '.join(COPIED_TABLES)} CASCADE"))
        for table in COPIED_TABLES:
            cols = [r[0] for r in conn.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                "AND column_name IN (SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :src AND table_name = :t) ORDER BY ordinal_position"),
                {"s": target, "t": table, "src": source})]
            if not cols:
                raise SetupError(f"--copy-from {source}: it has no table {table!r} like the store's")
            names = ", ".join(f'"{c}"' for c in cols)
            n = conn.execute(text(f'INSERT INTO {table} ({names}) SELECT {names} FROM "{source}".{table}')).rowcount
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one() \
                if "id" in cols else None
            if sequence is not None:  # the next id a writer gets follows the copied ones
                conn.execute(text(f"SELECT setval(:seq, (SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"),
                             {"seq": sequence})
            print(f"  copied {n:,} {table} rows from {source}", flush=True)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        # every table of the store, the search index's own (filled by triggers as turns came in) too;
        # VACUUM as autovacuum would after such a write (it may be off): the GIN index's pending list flushed
        for (table,) in conn.execute(text("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")):
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    print(f"copied in {time.monotonic() - started:.0f} s", flush=True)


@dataclass
class Accounts:
    passwords: dict[str, str]  # role -> password
    supervisor_teams: list[str]
    agent_id: str


def create_accounts(url: str, engine: Engine) -> Accounts:
    """The three accounts, made with ``zhijian users add`` (an existing one gets a new password)."""
    with engine.connect() as conn:
        teams = [r[0] for r in conn.execute(text(
            "SELECT team FROM conversations WHERE team IS NOT NULL GROUP BY team ORDER BY count(*) DESC LIMIT 2"))]
        agent = conn.execute(text(
            "SELECT agent_id FROM conversations WHERE status = 'ok' GROUP BY agent_id "
            "ORDER BY count(*) DESC, agent_id LIMIT 1")).scalar_one_or_none()
    if not teams or agent is None:
        raise SetupError("the store holds no conversations: fill it first (--fill or --copy-from)")
    zhijian = str(Path(sys.executable).with_name("zhijian"))
    passwords = {role: secrets.token_urlsafe(18) for role in BENCH_LOGINS}
    for role, login in BENCH_LOGINS.items():
        cmd = [zhijian, "users", "add", login, "--role", role, "--password-stdin", "--db", url]
        if role == "supervisor":
            for team in teams:
                cmd += ["--team", team]
        if role == "agent":
            cmd += ["--agent-id", agent]
        done = subprocess.run(cmd, input=passwords[role] + "\n", capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SetupError(f"zhijian users add {login} failed:\n{done.stdout}{done.stderr}")
        print(f"  {done.stdout.strip()}", flush=True)
    return Accounts(passwords=passwords, supervisor_teams=teams, agent_id=agent)


@dataclass
class Pools:
    """What each role's clients ask for: ids they may see, review targets, filter values."""

    ids: dict[str, list[str]]  # role -> conversation ids it may see
    review_ids: dict[str, list[str]]  # role -> queue ids it may review
    days: list[str]
    sites: list[str]
    teams: list[str]
    agents: list[str]
    complaint_types: list[str]


def draw_pools(engine: Engine, accounts: Accounts, per_kind: int, rng: random.Random) -> Pools:
    """Random ids per role, drawn in SQL; review targets from the queue, fewer than the reviews made, so
    clients sometimes review the same conversation one after another (and now and then at once: a 409)."""
    scopes: dict[str, tuple[str, dict[str, Any]]] = {
        "reviewer": ("TRUE", {}),
        "supervisor": ("team = ANY(:teams)", {"teams": accounts.supervisor_teams}),
        "agent": ("agent_id = :agent", {"agent": accounts.agent_id}),
    }
    ids: dict[str, list[str]] = {}
    review_ids: dict[str, list[str]] = {}
    with engine.connect() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": rng.random() * 2 - 1})
        for role, (where, params) in scopes.items():
            ids[role] = [r[0] for r in conn.execute(text(
                f"SELECT id FROM conversations WHERE status = 'ok' AND {where} ORDER BY random() LIMIT 3000"),
                params)]
            if role != "agent":
                review_ids[role] = [r[0] for r in conn.execute(text(
                    f"SELECT id FROM conversations WHERE status = 'ok' AND queue_tier IS NOT NULL AND {where} "
                    "ORDER BY random() LIMIT :n"), {**params, "n": max(10, per_kind // 2)})]

        def values(column: str) -> list[str]:
            return [str(r[0]) for r in conn.execute(text(
                f"SELECT DISTINCT {column} FROM conversations WHERE {column} IS NOT NULL ORDER BY 1"))]

        pools = Pools(ids=ids, review_ids=review_ids, days=values("date"), sites=values("site"),
                      teams=values("team"), agents=values("agent_id"), complaint_types=values("complaint_type"))
    if not all(ids.values()) or not all(review_ids.values()):
        raise SetupError("the store has too few analysed conversations in the queue for the bench")
    return pools


# -- the server ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_server(url: str, log_dir: Path, timeout: float = 120.0, workers: int = 1) -> Server:
    """``zhijian web [--workers N]`` on a free local port (a random secret key: the sessions live as long as
    the bench)."""
    port = free_port()
    log_path = log_dir / "zhijian-web.log"
    env = {**os.environ, "ZHIJIAN_WEB__SECRET_KEY": secrets.token_urlsafe(48)}
    cmd = [str(Path(sys.executable).with_name("zhijian")), "web", "--db", url, "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    server = Server(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"zhijian web exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    stop_server(server)
    raise SetupError(f"zhijian web did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    """SIGINT (uvicorn finishes its requests and closes the store), then SIGTERM, then SIGKILL."""
    p = server.process
    for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def family(pid: int) -> list[int]:
    """The process and all its descendants (``zhijian web --workers N``: uvicorn's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its descendants have used, from /proc/PID/stat."""
    total = 0.0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    return total


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) in KiB, summed over the process and its descendants."""
    out: dict[str, int] = {}
    for p in family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = out.get(key, 0) + int(value.split()[0])
        except OSError:
            continue
    return out


# -- the load ------------------------------------------------------------------------------------------

@dataclass
class Sample:
    kind: str
    ms: float
    status: int  # HTTP status; 0 when the request failed before an answer
    error: bool


@dataclass
class Budget:
    """Requests left per kind, shared by the clients, and the time limit."""

    left: dict[str, int]
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, kinds: Sequence[str], rng: random.Random) -> str | None:
        with self.lock:
            if time.monotonic() >= self.deadline:
                return None
            open_kinds = [k for k in kinds if self.left[k] > 0]
            if not open_kinds:
                return None
            kind = rng.choice(open_kinds)
            self.left[kind] -= 1
            return kind


class Client:
    """One signed-in user making requests one after another (its own HTTP connection, cookie, token)."""

    def __init__(self, base_url: str, role: str, password: str, pools: Pools, rng: random.Random) -> None:
        self.role, self.pools, self.rng = role, pools, rng
        self.http = httpx.Client(base_url=base_url, timeout=60.0)
        self.samples: list[Sample] = []
        self.conflicts = 0  # 409 answers to a review
        self.empty_searches = 0
        self.problems: list[str] = []
        self.cursors: dict[tuple[tuple[str, str], ...], str] = {}  # a filter set -> its next page
        answer = self.http.post("/api/login", json={"login": BENCH_LOGINS[role], "password": password})
        if answer.status_code != 200:
            raise SetupError(f"sign-in as {BENCH_LOGINS[role]} failed: {answer.status_code} {answer.text[:300]}")
        self.csrf = str(answer.json()["csrf_token"])

    @property
    def kinds(self) -> tuple[str, ...]:
        return KINDS if self.role in self.pools.review_ids else ("queue", "conversation", "search")

    def _timed(self, kind: str, send: Callable[[], httpx.Response], ok: Sequence[int] = (200,),
               record: bool = True) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = send()
        except httpx.HTTPError as e:
            ms = (time.perf_counter() - started) * 1000
            self.samples.append(Sample(kind, ms, 0, True))
            self._problem(f"{kind}: {type(e).__name__}: {e}")
            return None
        ms = (time.perf_counter() - started) * 1000
        error = response.status_code not in ok
        if error:
            self._problem(f"{kind}: {response.request.method} {response.request.url.raw_path.decode()[:120]} "
                          f"-> {response.status_code} {response.text[:200]}")
        if record or error:
            self.samples.append(Sample(kind, ms, response.status_code, error))
        return None if error else response

    def _problem(self, message: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(message)

    def _filters(self) -> dict[str, str]:
        """Queue filters a reviewer would set: none, a day or a week, a site, team, agent, complaint type,
        flag or status, or two of them together."""
        p, rng = self.pools, self.rng
        day = rng.choice(p.days)
        choices: list[Callable[[], dict[str, str]]] = [
            lambda: {},
            lambda: {"status": "open"},
            lambda: {"date": day},
            lambda: {"from": day, "to": p.days[min(p.days.index(day) + 6, len(p.days) - 1)]},
            lambda: {"complaint_type": rng.choice(p.complaint_types)},
            lambda: {"flag": rng.choice(FLAGS)},
        ]
        if self.role == "reviewer":
            choices += [lambda: {"site": rng.choice(p.sites)}, lambda: {"team": rng.choice(p.teams)},
                        lambda: {"agent": rng.choice(p.agents)}]
        f = rng.choice(choices)()
        if rng.random() < 0.3:
            f |= rng.choice(choices)()
        return f

    def queue(self) -> None:
        filters = self._filters()
        key = tuple(sorted(filters.items()))
        params = dict(filters)
        if key in self.cursors and self.rng.random() < 0.6:
            params["cursor"] = self.cursors.pop(key)  # the next page of a list already opened
        params["limit"] = str(self.rng.choice((20, 50, 50, 100)))
        response = self._timed("queue", lambda: self.http.get("/api/queue", params=params))
        # the body parsed once (the client shares the server's CPUs: its waste is the server's latency)
        next_cursor = response.json().get("next_cursor") if response is not None else None
        if next_cursor:
            self.cursors[key] = next_cursor

    def conversation(self) -> None:
        conv_id = self.rng.choice(self.pools.ids[self.role])
        self._timed("conversation", lambda: self.http.get(f"/api/conversations/{conv_id}"))

    def search(self) -> None:
        params = {"q": self.rng.choice(QUERIES)}
        if self.rng.random() < 0.25:
            day = self.rng.choice(self.pools.days)
            params |= {"from": day, "to": self.pools.days[-1]}
        key = tuple(sorted(params.items()))
        if key in self.cursors and self.rng.random() < 0.5:
            params["cursor"] = self.cursors.pop(key)
        response = self._timed("search", lambda: self.http.get("/api/conversations", params=params))
        if response is not None:
            body = response.json()
            if not body.get("items"):
                self.empty_searches += 1
            if body.get("next_cursor"):
                self.cursors[key] = body["next_cursor"]

    def _decisions(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """One to three items: mostly confirmations of the value in force, sometimes a script item turned."""
        items = [i for i in record.get("items", []) if i["item"] != "courtesy_violation_turns"]
        out = []
        for it in self.rng.sample(items, k=min(len(items), self.rng.randint(1, 3))):
            if it["item"].startswith("script.") and self.rng.random() < 0.3:
                out.append({"item": it["item"], "value": not it["value"], "reason": OVERRIDE_REASON})
            else:
                out.append({"item": it["item"], "value": it["value"], "reason": "复核确认"})
        return out

    def review(self) -> None:
        conv_id = self.rng.choice(self.pools.review_ids[self.role])
        path = f"/api/conversations/{conv_id}"
        for attempt in (1, 2):
            read = self._timed("review", lambda: self.http.get(path), record=False)
            if read is None:
                return
            record = read.json()
            body = {"version": record["version"], "decisions": self._decisions(record)}
            post = partial(self.http.post, f"{path}/review", json=body, headers={"X-CSRF-Token": self.csrf})
            answer = self._timed("review", post, ok=(200, 409))
            if answer is None or answer.status_code == 200:
                return
            self.conflicts += 1  # someone reviewed it since our read: read again and retry once
            if attempt == 2:
                return

    def run(self, budget: Budget) -> None:
        actions = {"queue": self.queue, "conversation": self.conversation, "search": self.search,
                   "review": self.review}
        try:
            while (kind := budget.take(self.kinds, self.rng)) is not None:
                actions[kind]()
        except Exception as e:  # a client that dies must not hide its reason
            self._problem(f"client stopped: {type(e).__name__}: {e}")
            self.samples.append(Sample("queue", 0.0, 0, True))
        finally:
            self.http.close()


def warm_up(clients: Sequence[Client]) -> None:
    """One request of each read kind per client, not counted: the first requests open the server's
    database connections and load its code paths, which no later request pays again."""
    for c in clients:
        kept = len(c.samples)
        c.queue()
        c.conversation()
        c.search()
        del c.samples[kept:]
        c.cursors.clear()
        c.empty_searches = 0


def serial_cost(client: Client, pid: int, n: int) -> dict[str, tuple[float, float]]:
    """Per kind, ``n`` requests one at a time before the load (not counted in the table): the server's CPU
    per request (from /proc, PostgreSQL's own not included) and the median latency with nobody else asking.
    Together with the table they tell a slow query (high latency alone) from a busy server (latency that
    only the concurrency brings)."""
    actions = {"queue": client.queue, "conversation": client.conversation, "search": client.search,
               "review": client.review}
    out: dict[str, tuple[float, float]] = {}
    for kind in client.kinds:
        kept = len(client.samples)
        before = cpu_seconds(pid)
        for _ in range(n):
            actions[kind]()
        cpu_ms = (cpu_seconds(pid) - before) * 1000 / n
        ms = sorted(s.ms for s in client.samples[kept:] if not s.error)
        out[kind] = (cpu_ms, ms[len(ms) // 2] if ms else float("nan"))
        del client.samples[kept:]
    client.cursors.clear()
    client.empty_searches = client.conflicts = 0
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(p·n)): a p95 that some request really took."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def table(samples: Sequence[Sample], target_ms: float) -> tuple[str, bool]:
    lines = [f"{'kind':<13}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'errors':>8}  result"]
    passed = True
    for kind in KINDS:
        ms = [s.ms for s in samples if s.kind == kind and not s.error]
        errors = sum(1 for s in samples if s.kind == kind and s.error)
        if not ms:
            lines.append(f"{kind:<13}{0:>6}{'-':>10}{'-':>10}{'-':>10}{errors:>8}  FAIL (no answers)")
            passed = False
            continue
        p95 = percentile(ms, 95)
        ok = p95 <= target_ms and errors == 0
        passed &= ok
        verdict = "PASS" if ok else "FAIL" + (f" (p95 > {target_ms:g} ms)" if p95 > target_ms else " (errors)")
        lines.append(f"{kind:<13}{len(ms) + errors:>6}{percentile(ms, 50):>10.1f}{p95:>10.1f}{max(ms):>10.1f}"
                     f"{errors:>8}  {verdict}")
    return "\n".join(lines), passed


# -- main ----------------------------------------------------------------------------------------------

def roles_of(n: int) -> list[str]:
    """Clients by role: half reviewers, a quarter supervisors, a quarter agents (at least one reviewer)."""
    pattern = ["reviewer", "supervisor", "reviewer", "agent"]
    return [pattern[i % len(pattern)] for i in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="the PostgreSQL store (SQLAlchemy URL; a search_path option "
                    "names its schema, created if missing); bench accounts and reviews are written to it")
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--fill", action="store_true",
                        help="make the schema of --db afresh (dropped if it exists) and fill it (bench/fill_store.py)")
    source.add_argument("--copy-from", metavar="SCHEMA",
                        help="make the schema of --db afresh (dropped if it exists) and copy this filled schema of "
                        "the same database into it")
    ap.add_argument("--agents", type=int, default=50, help="--fill: agents (default 50)")
    ap.add_argument("--days", type=int, default=90, help="--fill: days (default 90)")
    ap.add_argument("--per-day", type=int, default=60, help="--fill: conversations per agent per day (60)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--per-kind", type=int, default=300, help="requests of each kind, all clients together")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop the load after this long (300)")
    ap.add_argument("--target-ms", type=float, default=200.0, help="the p95 each kind must stay under (200)")
    ap.add_argument("--serial", type=int, default=10, help="requests of each kind made one at a time before "
                    "the load, to measure each kind's server CPU and latency alone (0: skip)")
    ap.add_argument("--workers", type=int, default=1, help="server processes: zhijian web --workers (default 1)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    url = args.db
    if make_url(url).get_backend_name() != "postgresql":
        ap.error("--db must be a PostgreSQL URL (postgresql+psycopg://…)")
    if args.clients < 1 or args.per_kind < 1 or args.workers < 1:
        ap.error("--clients, --per-kind and --workers must be at least 1")
    rng = random.Random(args.seed)

    if args.copy_from and args.copy_from == schema_of(url):
        ap.error(f"--copy-from {args.copy_from}: that is the schema of --db itself")
    ensure_schema(url, afresh=bool(args.fill or args.copy_from))
    if args.fill:
        fill(url, args)
    else:
        migrate(url)
    engine = create_engine(url)
    try:
        if args.copy_from:
            copy_from(engine, args.copy_from)
        with engine.connect() as conn:
            n_conv = conn.execute(text("SELECT count(*) FROM conversations")).scalar_one()
            n_turns = conn.execute(text("SELECT count(*) FROM turns")).scalar_one()
        print(f"store {schema_of(url) or '(default schema)'}: {n_conv:,} conversations, {n_turns:,} turns",
              flush=True)
        accounts = create_accounts(url, engine)
        pools = draw_pools(engine, accounts, args.per_kind, rng)
    finally:
        engine.dispose()

    with tempfile.TemporaryDirectory(prefix="web_load-") as tmp:
        server = start_server(url, Path(tmp), workers=args.workers)
        try:
            print(f"zhijian web --workers {args.workers} (pid {server.process.pid}) answers on {server.base_url}",
                  flush=True)
            clients = [Client(server.base_url, role, accounts.passwords[role], pools, random.Random(rng.random()))
                       for role in roles_of(args.clients)]
            warm_up(clients)
            alone = serial_cost(clients[0], server.process.pid, args.serial) if args.serial > 0 else {}
            rss_before = memory_kib(server.process.pid)
            cpu_before = cpu_seconds(server.process.pid)
            budget = Budget(left=dict.fromkeys(KINDS, args.per_kind),
                            deadline=time.monotonic() + args.max_seconds)
            threads = [threading.Thread(target=c.run, args=(budget,), name=f"client-{i}")
                       for i, c in enumerate(clients)]
            print(f"load: {args.clients} clients ({', '.join(roles_of(args.clients))}), {args.per_kind} requests "
                  f"of each kind, at most {args.max_seconds:g} s", flush=True)
            started, client_cpu = time.monotonic(), time.process_time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
            client_cpu = time.process_time() - client_cpu  # the clients' own share of the CPUs
            rss_after = memory_kib(server.process.pid)
            server_cpu = cpu_seconds(server.process.pid) - cpu_before
            alive = server.process.poll() is None
        finally:
            stop_server(server)
            log_tail = server.log_tail(15)

    samples = [s for c in clients for s in c.samples]
    report, passed = table(samples, args.target_ms)
    print()
    print(report)
    print()
    stopped = " (stopped by --max-seconds)" if any(budget.left[k] > 0 for k in KINDS) else ""
    print(f"{len(samples)} requests in {wall:.1f} s ({len(samples) / wall:.1f}/s){stopped}; "
          f"review 409s (retried once after re-reading): {sum(c.conflicts for c in clients)}; "
          f"searches with no result: {sum(c.empty_searches for c in clients)}")
    if alone:
        print("alone (one request at a time, before the load): " + "; ".join(
            f"{kind} {ms:.0f} ms, server CPU {cpu:.0f} ms" for kind, (cpu, ms) in alone.items()))
    load = os.getloadavg()
    print(f"server CPU: {server_cpu:.1f} s over the load, {server_cpu * 1000 / max(1, len(samples)):.1f} ms per "
          f"request (PostgreSQL's not included); the clients' {client_cpu * 1000 / max(1, len(samples)):.1f} ms; "
          f"machine load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"server RSS: {rss_before.get('VmRSS', 0) / 1024:.0f} MiB after warm-up, "
          f"{rss_after.get('VmRSS', 0) / 1024:.0f} MiB after the load (peak {rss_after.get('VmHWM', 0) / 1024:.0f}"
          " MiB)")
    problems = [p for c in clients for p in c.problems]
    if problems:
        print("first problems:\n  " + "\n  ".join(problems[:10]))
    if not alive:
        print(f"the server died during the load:\n{log_tail}")
        passed = False
    print("PASS" if passed else "FAIL", f"(p95 ≤ {args.target_ms:g} ms for each kind, no errors)")
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as e:
        print(f"web_load: {e}", file=sys.stderr)
        sys.exit(2)
