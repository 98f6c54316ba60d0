#!/usr/bin/env python3
"""The judge on corpus conversations it was never trained or tuned on: the report split of
``models/corpus/conversations`` and every batch in ``models/corpus/candidates`` (written, not yet joined).

usage: python bench/unseen_corpus.py [--json]     (the judge of ZHIJIAN_JUDGE_MODEL_PATH, else models/judge)

Each conversation goes through the learned judge (with the rules' evidence and backing) and the scorecard as the
night judges it (exact turns, no recogniser), and ``zhijian eval``'s metrics score the result records
(``training.report_scores``, the card's report figures). Rows: each candidate batch, ``candidates`` (all of
them), ``report`` (the split the card reports) and ``unseen`` (both together). A second look beside the blind
set (``bench/blind_eval.py``) with ten times the conversations, but written from the corpus brief, so nearer
to what the judge was trained on than the blind set is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import get_settings  # noqa: E402
from pipeline.judges.rules import RulesJudge  # noqa: E402
from pipeline.learning.augmentation import Example, normalised  # noqa: E402
from pipeline.learning.corpus import TrainingConversation, load_corpus  # noqa: E402
from pipeline.learning.model import load  # noqa: E402
from pipeline.learning.training import Reader, TrainOptions, report_scores, split_of  # noqa: E402

CORPUS = ROOT / "models" / "corpus"
SHOWN = ["courtesy_precision", "courtesy_recall", "courtesy_f1", "escalation_f1", "missed_ownership_f1",
         "complaint_acc", "script_missed_macro_f1", "emotion_macro_f1"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    settings = get_settings()
    model = load(settings.judge_model_path)
    options = model.meta.training.get("options", {})
    defaults = TrainOptions(out=Path("."))
    tune, report = options.get("tune_share", defaults.tune_share), options.get("report_share", defaults.report_share)
    backing = RulesJudge(settings)
    reader = Reader(backing if model.meta.net.rule_features else None,
                    settings.lexicon_path if model.meta.net.word_dim else None)
    groups: dict[str, list[TrainingConversation]] = defaultdict(list)
    for c in load_corpus([CORPUS / "candidates"]):
        groups[Path(c.source.rsplit(":", 1)[0]).stem].append(c)
    groups["candidates"] = [c for cs in list(groups.values()) for c in cs]
    groups["report"] = [c for c in load_corpus([CORPUS / "conversations"]) if split_of(c.id, tune, report) == "report"]
    groups["unseen"] = groups["report"] + groups["candidates"]
    scores = {}
    for name, convs in groups.items():
        examples = [Example(c, [normalised(t.text) for t in c.turns]) for c in convs]
        scores[name] = report_scores(model, examples, reader, backing, settings) if examples else {}
    if args.json:
        print(json.dumps({"judge": model.meta.version, "scores": scores}, ensure_ascii=False))
        return 0
    print(f"judge {model.meta.version}")
    print(f"{'set':<12}{'n':>6}" + "".join(f"{k.replace('missed_', '').replace('_macro', '')[:14]:>16}" for k in SHOWN))
    for name, s in scores.items():
        if s:
            print(f"{name:<12}{int(s['conversations']):>6}" + "".join(f"{s[k]:>16.3f}" for k in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
