"""The model card (``CARD.md`` beside the weights): what the model is, what it learnt from, which split is
which, and its scores on the report split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.learning import tuning
from pipeline.learning.model import MAX_TURNS


def write_card(folder: Path, summary: dict[str, Any]) -> Path:
    """CARD.md beside the weights: what the model is, what it learnt from, how well it does."""
    v = summary.get("report", {})
    meta = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
    sizes = {p.name: p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "CARD.md"}
    conv = summary["conversations"]
    lines = [
        "# Learned judge (`learned`)",
        "",
        f"Trained {summary['date']} by `zhijian train` in {summary['seconds']} s. Version "
        f"`{meta['version']}`.",
        "",
        "## What it does",
        "Reads a conversation's turns and predicts, per agent turn, the script items it performs (greeting,",
        "identity_check, restate, commitment, closing, farewell), whether it pushes the customer away",
        "(ownership_violation) and whether it is discourteous; per customer turn, whether it threatens escalation;",
        "and per conversation, the complaint type (13) and the customer's emotion (calm / dissatisfied / angry).",
        "Confidences are calibrated on the tune split (one temperature per head). An explicit",
        "服务禁语 is a courtesy violation regardless of the model (the rules' red line).",
        "",
        "## Decision settings (tuned on the tune split, as written and as recognised)",
        "- Per-tag thresholds: " + ", ".join(f"{k} {x:.2f}" for k, x in meta.get("thresholds", {}).items()),
        "- Weight of the rules' keyword evidence beside the model's log-probabilities: "
        + (", ".join(f"{k} {x:.2f}" for k, x in meta.get("rule_weights", {}).items()) or "none"),
        "",
        "## Architecture and size",
        f"- Encoder: {summary['encoder']} (transformers `BertModel`, character vocabulary)",
        "- Beside it: a bag of character 1–3-grams, "
        + (f"a bag of the text stage's words and word bigrams\n  ({len(meta.get('words', []))} entries), "
           if meta["net"].get("word_dim") else "")
        + "the rules' per-turn evidence, and a role embedding;",
        f"  a 1-layer transformer over at most {MAX_TURNS} turns at a time (a longer conversation is read in",
        "  overlapping windows); attention-pooled conversation heads.",
        _ensemble(summary),
        f"- Parameters: {summary['parameters']:,}" + (" (all members)" if summary.get("members", 1) > 1 else ""),
        "- Files: " + ", ".join(f"{k} {n / 1e6:.1f} MB" for k, n in sizes.items() if n > 100_000),
        "",
        "## Data",
        "- Sources: " + ", ".join(f"`{s}`" for s in summary["sources"]) + ".",
        f"- Reviewer corrections included: {conv['corrections']}.",
        "- Three splits by a hash of the conversation's id:",
        f"  - train: {conv['train']} conversations ({summary['turns']} turns), the only ones the network learns from;",
        f"  - tune: {conv['tune']} conversations, never trained on; the temperatures, thresholds and rule weights",
        "    are fitted on them (a threshold is the middle of the run of grid points within"
        f" {tuning.PLATEAU} F1 of the best,",
        "    so a flat curve does not hand the choice to its edge);",
        f"  - report: {conv['report']} conversations, neither trained nor tuned on; the scores below are theirs.",
        "- The corpus is written by the project (see `models/corpus/FORMAT.md`), not real recordings. The dev set",
        "  (`../shared/data/dev`) and the STC-3 dialogues are never trained on: they are the yardsticks.",
        "",
        "## Training",
        "```",
        json.dumps(summary["options"], ensure_ascii=False, indent=1),
        "```",
        "Arithmetic: " + _arithmetic(summary),
        "",
        f"## Scores on the report split ({conv['report']} conversations nothing was trained or tuned on; "
        "written text, exact turns)",
        "Judged as the nightly run judges (the model, the rules' evidence and the rules' backing together, then",
        "the scorecard) and scored by the code of `zhijian eval` (the figures of `tools/score.py`).",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {x:.4f} |" for k, x in v.items() if k != "conversations"),
        "",
        "Scores through the full nightly path (speech recognition included) on the dev set are in the README.",
        "",
        "## Limits",
        "- Learnt from written conversations; recognised speech is simulated in training by dropping punctuation",
        "  and adding character noise. Dialect-heavy speech and domains far from property service are untested.",
        "- Emotion is one label per conversation; sarcasm and politeness masking anger are the usual errors.",
        "",
    ]
    path = folder / "CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _ensemble(summary: dict[str, Any]) -> str:
    n = int(summary.get("members", 1))
    if n == 1:
        return "- One network (no ensemble)."
    seeds = ", ".join(str(int(summary["options"]["seed"]) + k) for k in range(n))
    return (f"- An ensemble of {n} networks, trained alike from seeds {seeds} (each its own initial weights and\n"
            "  order of the data); the judge averages their logits and attention, and the temperatures and\n"
            "  thresholds are tuned on that average.")


def _arithmetic(summary: dict[str, Any]) -> str:
    """What the CPU computed with (``numerics``): the same everywhere only when it is the pinned one."""
    from pipeline.learning import numerics

    state = summary.get("arithmetic")
    if not state:
        return "not recorded (trained before `zhijian train` pinned it)."
    said = ", ".join(f"{k} {v or 'unset'}" for k, v in state.items())
    if numerics.pinned(state):
        return f"{said}: pinned, so `zhijian train` on another x86-64 machine with AVX2 gives these bytes."
    return f"{said}: not the pinned arithmetic; another machine's `zhijian train` gives other bytes."
