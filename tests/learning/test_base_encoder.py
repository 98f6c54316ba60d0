"""``zhijian train --base PATH``: the path a company with ``bert-base-chinese/`` on disk takes. A tiny BERT-style
encoder (hidden 32, one layer, a character vocabulary from a few conversations) is saved as a Hugging Face
folder, the judge is fine-tuned from it through the command line, and the result loads and judges."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings
from pipeline.judges import get_judge
from pipeline.learning.corpus import load_corpus
from pipeline.learning.model import load
from pipeline.schema import ConversationMeta, Transcript, Turn

TINY = Path(__file__).parent.parent / "fixtures" / "corpus" / "tiny.jsonl"


def _tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    chars = sorted({c for conv in load_corpus([TINY])[:6] for t in conv.turns for c in t.text.lower()
                    if not c.isspace()})
    folder.mkdir(parents=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True, tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))  # with a pooler, as a real checkpoint has
    tokenizer.save_pretrained(str(folder))
    return folder


def test_train_fine_tunes_a_pretrained_encoder_folder(tmp_path: Path, settings: Settings) -> None:
    base = _tiny_bert(tmp_path / "tiny-bert")
    out = tmp_path / "judge"
    result = CliRunner().invoke(app, ["train", "--corpus", str(TINY), "--out", str(out), "--base", str(base),
                                      "--epochs", "1", "--no-corrections"])
    assert result.exit_code == 0, result.output
    assert "model written to" in result.output

    model = load(out)
    assert model.net.encoder.config.hidden_size == 32 and model.net.encoder.config.num_hidden_layers == 1
    assert model.meta.training["encoder"] == str(base)
    from transformers import AutoTokenizer

    # the base's own tokenizer, not a vocabulary of the corpus
    assert model.tokenizer.get_vocab() == AutoTokenizer.from_pretrained(str(base)).get_vocab()
    from safetensors.torch import load_file

    before = load_file(str(base / "model.safetensors"))
    after = model.net.encoder.state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], after[key])  # fine-tuned, not frozen
    assert json.loads((out / "judge.json").read_text(encoding="utf-8"))["training"]["options"]["base"] == str(base)

    judge = get_judge("learned", settings.model_copy(update={"judge_model_path": out}))
    transcript = Transcript(meta=ConversationMeta(id="W1", channel="chat", agent_id="A1", source="test"), turns=[
        Turn(index=0, role="agent", text="您好，物业服务中心，请讲。"),
        Turn(index=1, role="customer", text="我家厨房水管漏水了，麻烦派人来看看。"),
        Turn(index=2, role="agent", text="好的，马上安排师傅上门，再见。"),
    ])
    findings = judge(transcript)
    assert {f.item for f in findings} >= {"complaint_type", "customer_emotion", "script.greeting"}
    assert all(f.source.startswith("learned:2.") for f in findings)
