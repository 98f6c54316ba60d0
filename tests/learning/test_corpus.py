"""Training data (``pipeline.learning.corpus``): the written corpus and reviewers' corrections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.learning.corpus import AGENT_TAGS, corpus_files, from_corrections, load_corpus, parse_correction

TINY = Path(__file__).parent.parent / "fixtures" / "corpus" / "tiny.jsonl"
SHIPPED = Path(__file__).parent.parent.parent / "models" / "corpus" / "conversations"


def test_tiny_corpus_loads_with_every_tag_known() -> None:
    convs = load_corpus([TINY])
    assert len(convs) == 16
    for c in convs:
        assert c.complaint_type and c.customer_emotion
        for t in c.turns:
            assert set(t.tags) == (set(AGENT_TAGS) if t.role == "agent" else {"escalation"})


def test_shipped_corpus_is_valid_and_large() -> None:
    convs = load_corpus([SHIPPED])
    assert len(convs) >= 900
    assert len({c.id for c in convs}) == len(convs)


def test_batches_that_joined_later_are_read_after_the_older_ones(tmp_path: Path) -> None:
    # the reading order changes the trained bytes: a subfolder's batches come after the folder's own, so a batch
    # joining the corpus never moves the older ones (models/corpus/FORMAT.md)
    lines = TINY.read_text(encoding="utf-8").splitlines()
    (tmp_path / "later").mkdir()
    for name, line in (("batch_9.jsonl", lines[0]), ("batch_10.jsonl", lines[1]), ("later/batch_4.jsonl", lines[2]),
                       ("later/batch_40.jsonl", lines[3])):
        (tmp_path / name).write_text(line + "\n", encoding="utf-8")
    assert [f.relative_to(tmp_path).as_posix() for f in corpus_files(tmp_path)] == [
        "batch_10.jsonl", "batch_9.jsonl", "later/batch_4.jsonl", "later/batch_40.jsonl"]
    assert [c.id for c in load_corpus([tmp_path])] == [json.loads(lines[k])["id"] for k in (1, 0, 2, 3)]


def test_the_shipped_corpus_holds_the_batches_that_joined_it() -> None:
    # batches 40-45 and 46-51 joined as subfolders, read after batches 2-39 and in that order, so each judge's
    # corpus order is kept when a later group joins
    sources = [Path(c.source.rsplit(":", 1)[0]) for c in load_corpus([SHIPPED])]
    names = list(dict.fromkeys(p.relative_to(SHIPPED).as_posix() for p in sources))
    assert names[-12:] == ([f"batches_40-45/batch_{n}.jsonl" for n in range(40, 46)]
                           + [f"batches_46-51/batch_{n}.jsonl" for n in range(46, 52)])
    assert len(sources) >= 5900


def test_candidate_batches_are_valid_and_join_without_clashing_ids() -> None:
    # batches written but not trained on (models/corpus/FORMAT.md, batches 52-57: the unseen measure)
    candidates = [c.id for c in load_corpus([SHIPPED.parent / "candidates"])]
    shipped = {c.id for c in load_corpus([SHIPPED])}
    assert len(candidates) >= 990
    assert len(set(candidates)) == len(candidates) and not shipped & set(candidates)


def test_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    good = TINY.read_text(encoding="utf-8").splitlines()[0]
    bad = json.loads(good)
    bad["labels"]["complaint_type"] = "weather"
    path = tmp_path / "c.jsonl"
    path.write_text(good + "\n" + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_corpus([path])
    assert err.value.code == "E070" and f"{path}:2" in str(err.value) and "weather" in str(err.value)


def test_missing_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_corpus([tmp_path / "nope.jsonl"])
    assert err.value.code == "E071"


@pytest.mark.parametrize(("item", "value", "expected"), [
    ("complaint_type", "fees", "fees"),
    ("customer_emotion", "angry", "angry"),
    ("script.restate", "false", False),
    ("script.ownership", "是", True),
    ("escalation_risk", "yes", True),
    ("courtesy_violation_turns", "3, 5", [3, 5]),
    ("courtesy_violation_turns", "none", []),
])
def test_parse_correction(item: str, value: str, expected: object) -> None:
    assert parse_correction(item, value) == expected


@pytest.mark.parametrize(("item", "value"), [
    ("complaint_type", "weather"), ("customer_emotion", "sad"), ("script.restate", "maybe"),
    ("courtesy_violation_turns", "three"), ("script.smile", "true"),
])
def test_parse_correction_rejects(item: str, value: str) -> None:
    with pytest.raises(InputError) as err:
        parse_correction(item, value)
    assert err.value.code == "E072"


def test_corrections_become_weak_and_strong_labels() -> None:
    result = {"id": "C1", "channel": "call", "turns": [
        {"turn": 0, "role": "agent", "text": "您好物业"},
        {"turn": 1, "role": "customer", "text": "我家漏水了"},
        {"turn": 2, "role": "agent", "text": "自己找人修"},
    ]}
    conv = from_corrections(result, [("complaint_type", "repair"), ("script.restate", True),
                                     ("script.ownership", False), ("courtesy_violation_turns", [2]),
                                     ("escalation_risk", False)])
    assert conv is not None
    assert conv.complaint_type == "repair" and conv.customer_emotion is None
    assert conv.weak == {"restate": True, "ownership_violation": True}
    assert conv.turns[0].tags == {"courtesy_violation": False}
    assert conv.turns[2].tags == {"courtesy_violation": True}
    assert conv.turns[1].tags == {"escalation": False}
