"""``zhijian train`` (``pipeline.learning.training``) on a tiny corpus: it trains, saves, loads and judges, and it
is deterministic."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from zhijian_testing import chat

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.ingest import read_chat
from pipeline.judges import get_judge
from pipeline.judges.learned import turn_inputs
from pipeline.judges.rules import PRODUCES
from pipeline.learning.card import write_card
from pipeline.learning.corpus import from_corrections, load_corpus
from pipeline.learning.model import load
from pipeline.learning.training import TrainOptions, split_of, train
from pipeline.learning.tuning import OWNERSHIP_POLICIES
from pipeline.schema import Turn

TINY = Path(__file__).parent.parent / "fixtures" / "corpus" / "tiny.jsonl"


def _options(out: Path) -> TrainOptions:
    return TrainOptions(out=out, epochs=2, hidden=32, layers=1, tune_share=0.25, report_share=0.25)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("judge")
    _, summary = train(load_corpus([TINY]), _options(out), settings)
    write_card(out, summary)
    return out, summary


def test_training_writes_a_complete_model_folder(tiny_model: tuple[Path, dict]) -> None:
    out, summary = tiny_model
    for name in ("encoder/config.json", "encoder/model.safetensors", "encoder/vocab.txt", "judge.safetensors",
                 "judge.json", "CARD.md"):
        assert (out / name).is_file(), name
    split = summary["conversations"]
    assert split["train"] + split["tune"] + split["report"] == 16
    assert split["tune"] > 0 and split["report"] > 0
    assert summary["report"]["conversations"] == split["report"]
    assert set(summary["report"]) >= {"complaint_acc", "script_missed_macro_f1", "courtesy_f1",
                                      "emotion_macro_f1", "escalation_f1"}
    card = (out / "CARD.md").read_text(encoding="utf-8")
    assert "## Data" in card and "Parameters" in card
    assert f"tune: {split['tune']} conversations" in card and f"report: {split['report']} conversations" in card
    assert f"## Scores on the report split ({split['report']} conversations" in card
    meta = json.loads((out / "judge.json").read_text(encoding="utf-8"))
    assert set(meta["rule_weights"]) <= {"complaint_type", "customer_emotion"}
    assert meta["net"]["word_dim"] == 64 and meta["words"]  # the word bag is on by default
    # the report scores are zhijian eval's headline (evaluation.metrics), not figures of training's own
    assert {"coverage", "courtesy_precision", "courtesy_recall"} <= set(summary["report"])
    assert summary["report"]["coverage"] == 1.0
    assert all(0.0 <= w <= 2.0 for w in meta["rule_weights"].values())
    # the rules' backing is tuned with the thresholds (on the tune split), not fixed by hand
    assert meta["backing"]["ownership"] in OWNERSHIP_POLICIES and meta["backing"]["courtesy"] == "threshold"


def test_the_trained_model_judges_a_conversation(tiny_model: tuple[Path, dict], settings: Settings,
                                                 tmp_path: Path) -> None:
    out, _ = tiny_model
    path = tmp_path / "W1.json"
    import json

    path.write_text(json.dumps(chat("W1"), ensure_ascii=False), encoding="utf-8")
    judge = get_judge("learned", settings.model_copy(update={"judge_model_path": out}))
    findings = judge(read_chat(path))
    items = {f.item for f in findings}
    assert set(PRODUCES) - {"courtesy_violation"} <= items
    for f in findings:
        assert 0.0 <= f.confidence <= 1.0
        assert f.source.startswith("learned:2.")


def test_training_is_deterministic(tiny_model: tuple[Path, dict], settings: Settings, tmp_path: Path) -> None:
    first, _ = tiny_model
    train(load_corpus([TINY]), _options(tmp_path), settings)

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(tmp_path / "judge.safetensors") == digest(first / "judge.safetensors")
    assert load(tmp_path).meta.version == load(first).meta.version


def test_corrections_are_trained_on(settings: Settings, tmp_path: Path) -> None:
    corpus = load_corpus([TINY])[:6]
    result = {"id": "W9", "channel": "chat", "turns": [
        {"turn": 0, "role": "customer", "text": "你们的快递柜又坏了"},
        {"turn": 1, "role": "agent", "text": "那你自己去找快递公司，我们不管"},
    ]}
    corrected = from_corrections(result, [("complaint_type", "facility"), ("script.ownership", False)])
    assert corrected is not None
    _, summary = train([*corpus, corrected], TrainOptions(out=tmp_path, epochs=1, hidden=32, layers=1,
                                                          tune_share=0.0, report_share=0.0, word_features=False,
                                                          members=1),
                       settings)
    assert summary["conversations"]["corrections"] == 1
    assert summary["conversations"]["train"] == 7
    assert summary["report"] == {}  # nothing to report on
    model = load(tmp_path)  # without the word bag, one network: a folder as every one before them
    assert model.meta.net.word_dim == 0 and model.meta.words == [] and model.net.words is None
    assert model.meta.members == 1 and model.others == []
    assert not any(k.startswith("member") for k in load_file(str(tmp_path / "judge.safetensors")))


def test_the_shipped_recipe_is_an_ensemble_of_three(tiny_model: tuple[Path, dict], settings: Settings) -> None:
    out, summary = tiny_model
    assert summary["members"] == 3 and summary["options"]["seed"] == 13
    weights = load_file(str(out / "judge.safetensors"))
    for k in (1, 2):  # the further members are saved whole, their encoders included
        assert any(n.startswith(f"member{k}.encoder.") for n in weights)
        assert any(n.startswith(f"member{k}.turn_head.") for n in weights)
    model = load(out)
    assert model.meta.members == 3 and len(model.others) == 2
    # the members differ (their own seeds) and the judge reads their average
    first, second = model.net.turn_head.weight, model.others[0].turn_head.weight
    assert not torch.equal(first, second)
    conv = load_corpus([TINY])[0]
    turns = [Turn(index=i, role=t.role, text=t.text, norm_text=t.text) for i, t in enumerate(conv.turns)]
    inputs = turn_inputs(turns, [[0.0] * model.meta.net.rule_features for _ in turns])
    batch = model.batch([inputs])
    with torch.inference_mode():
        each = [m(batch).turn_logits for m in model.members]
        together = model.forward(batch).turn_logits
    assert torch.allclose(together, torch.stack(each).mean(0))
    assert "3 networks" in (out / "CARD.md").read_text(encoding="utf-8")


def test_a_folder_whose_members_disagree_with_its_weights_is_refused(tiny_model: tuple[Path, dict],
                                                                   tmp_path: Path) -> None:
    # judge.json names the members; the weights must hold exactly those, not one more or one fewer
    out, _ = tiny_model
    folder = tmp_path / "judge"
    shutil.copytree(out, folder)
    meta = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
    for members in (2, 4):
        (folder / "judge.json").write_text(json.dumps({**meta, "members": members}), encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            load(folder)
        assert err.value.code == "E074" and f"names {members} members" in str(err.value)


def test_training_says_what_arithmetic_it_ran_with(tiny_model: tuple[Path, dict]) -> None:
    # in this process torch was imported before any pin: training says so, and the card does too
    out, summary = tiny_model
    assert set(summary["arithmetic"]) == {"cpu_capability", "mkl_cbwr", "onednn_max_cpu_isa"}
    assert "Arithmetic" in (out / "CARD.md").read_text(encoding="utf-8")


def test_the_splits_are_fixed_by_the_id() -> None:
    ids = [f"X-{i:04d}" for i in range(2000)]
    splits = [split_of(i, 0.1, 0.1) for i in ids]
    assert splits == [split_of(i, 0.1, 0.1) for i in ids]
    assert 150 < splits.count("tune") < 250 and 150 < splits.count("report") < 250
    # a larger tune share takes from train only: the report split does not move
    assert [s == "report" for s in splits] == [split_of(i, 0.3, 0.1) == "report" for i in ids]
