"""bench/web_load.py: its arithmetic, and one whole run — fill, accounts, ``zhijian web``, signed-in clients
on every request kind, the table — on a tiny PostgreSQL store in a schema of its own."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_load", ROOT / "bench" / "web_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["web_load"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


web_load = _load()


def test_p95_is_a_value_some_request_took() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100 ms
    assert web_load.percentile(values, 50) == 50.0
    assert web_load.percentile(values, 95) == 95.0
    assert web_load.percentile([7.0], 95) == 7.0
    assert web_load.percentile([3.0, 1.0, 2.0], 100) == 3.0


def test_table_fails_a_kind_over_target_or_with_errors() -> None:
    sample = web_load.Sample
    fast = [sample("queue", 10.0, 200, False)] * 20 + [sample("conversation", 12.0, 200, False)] * 20
    slow = [sample("search", 250.0, 200, False)] * 20
    broken = [sample("review", 30.0, 200, False)] * 19 + [sample("review", 5.0, 500, True)]
    report, passed = web_load.table(fast + slow + broken, 200.0)
    assert not passed
    lines = {line.split()[0]: line for line in report.splitlines()[1:]}
    assert lines["queue"].endswith("PASS") and lines["conversation"].endswith("PASS")
    assert "FAIL (p95 > 200 ms)" in lines["search"]
    assert "FAIL (errors)" in lines["review"] and lines["review"].split()[1] == "20"
    _, all_fast = web_load.table([*fast, sample("search", 1.0, 200, False), sample("review", 1.0, 409, False)],
                                 200.0)
    assert all_fast  # a 409 is an answer


def test_budget_bounds_each_kind_and_the_time() -> None:
    rng = random.Random(1)
    budget = web_load.Budget(left={"queue": 2, "search": 1}, deadline=time.monotonic() + 60)
    taken = [budget.take(["queue", "search"], rng) for _ in range(4)]
    assert sorted(k for k in taken if k) == ["queue", "queue", "search"] and taken[-1] is None
    late = web_load.Budget(left={"queue": 5}, deadline=time.monotonic() - 1)
    assert late.take(["queue"], rng) is None


def test_schema_comes_from_the_search_path_option() -> None:
    assert web_load.schema_of(f"{PG_ADMIN}?options=-csearch_path%3Dzj_webload") == "zj_webload"
    assert web_load.schema_of(PG_ADMIN) is None


@pytest.fixture
def pg_schema() -> Iterator[str]:
    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3).close()
    except psycopg.Error as e:
        pytest.skip(f"PostgreSQL not reachable: {e}")
    schema = f"zj_test_{uuid.uuid4().hex[:12]}"
    yield schema
    admin = create_engine(PG_ADMIN)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_whole_run_on_a_tiny_store(pg_schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{PG_ADMIN}?options=-csearch_path%3D{pg_schema}"
    status = web_load.main(["--db", url, "--fill", "--agents", "2", "--days", "2", "--per-day", "10",
                            "--clients", "4", "--per-kind", "6", "--max-seconds", "120",
                            "--target-ms", "60000"])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in web_load.KINDS}
    assert set(rows) == set(web_load.KINDS)
    for kind, cols in rows.items():
        assert int(cols[1]) >= 6, (kind, out)  # n
        assert cols[5] == "0" and cols[6] == "PASS", (kind, out)  # errors, result
    assert "server RSS:" in out and "MiB after the load" in out
    engine = create_engine(url)
    with engine.connect() as conn:
        reviewed = conn.execute(text("SELECT count(*) FROM corrections WHERE kind = 'review'")).scalar_one()
        users = conn.execute(text("SELECT count(*) FROM users WHERE login LIKE 'webload-%'")).scalar_one()
    engine.dispose()
    assert reviewed >= 6 and users == 3  # the reviews really went through the store
