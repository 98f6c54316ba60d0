"""Charts for the reports, drawn with matplotlib (Agg) in a real CJK font, returned as SVG text.

The font is the project's own: Debian's fonts-noto-cjk (``settings.reports.cjk_font_path``, installed by
``.ci/run``); without it the charts refuse to draw (E092) rather than print boxes. SVG text is written as
glyph outlines (``svg.fonttype = path``), so a chart looks the same in any browser and in the PDF, and a
missing glyph is a warning matplotlib raises while drawing — the tests turn it into an error.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import font_manager
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from pipeline.errors import ConfigError
from pipeline.reports.labels import FLAG_ZH, item_zh, type_zh

FAMILY = "Noto Sans CJK SC"  # the Simplified Chinese face of the collection
INK, TEAM, COMPANY, BAD, GOOD = "#1f4e79", "#9dc3e6", "#d9d9d9", "#c0504d", "#4f8a3c"
_LOCK = threading.Lock()  # pyplot's state is global: one chart at a time per process


@lru_cache(maxsize=4)
def use_font(path: Path) -> str:
    """Register the CJK font file with matplotlib and make its Simplified Chinese face the default."""
    if not path.is_file():
        raise ConfigError("E092", font=path)
    font_manager.fontManager.addfont(str(path))
    names = {f.name for f in font_manager.fontManager.ttflist if Path(f.fname) == path}
    family = FAMILY if FAMILY in names else sorted(names)[0]
    matplotlib.rcParams.update({
        "font.family": [family], "axes.unicode_minus": False, "svg.fonttype": "path",
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 9,
    })
    return family


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG goes inline into the HTML


def _pct(ax: Any) -> None:
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def agent_items(report: Mapping[str, Any], font: Path) -> str:
    """Pass rate per script item: the agent against the team and the company."""
    use_font(font)
    items = list(report["items"])[::-1]
    labels = [item_zh(r["item"]) for r in items]
    with _LOCK:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        y = range(len(items))
        h = 0.26
        ax.barh([i + h for i in y], [r["company_rate"] or 0 for r in items], h, color=COMPANY, label="全公司")
        ax.barh(list(y), [r["team_rate"] or 0 for r in items], h, color=TEAM, label="本组")
        colours = [BAD if (r["pass_rate"] or 0) < (r["team_rate"] or 0) - 0.05 else INK for r in items]
        ax.barh([i - h for i in y], [r["pass_rate"] or 0 for r in items], h, color=colours,
                label=report.get("agent_name") or report["agent_id"])
        for i, r in zip(y, items, strict=True):
            if r["pass_rate"] is not None:
                ax.text((r["pass_rate"] or 0) + 0.01, i - h, f"{r['pass_rate']:.0%}", va="center", fontsize=7)
        ax.set_yticks(list(y), labels)
        _pct(ax)
        ax.set_xlim(0, 1.12)
        ax.set_title("各项话术完成率（红色：明显低于本组）")
        ax.legend(loc="lower right", fontsize=7, frameon=False, ncols=3, bbox_to_anchor=(1, -0.22))
        return _svg(fig)


def agent_weekly(report: Mapping[str, Any], font: Path) -> str:
    """Mean score per ISO week, with the number of conversations as bars behind it."""
    use_font(font)
    weeks = list(report["weekly"])
    with _LOCK:
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        x = list(range(len(weeks)))
        ax2 = ax.twinx()
        ax2.bar(x, [w["conversations"] for w in weeks], color=COMPANY, width=0.6, zorder=0)
        ax2.set_ylim(0, max([w["conversations"] for w in weeks] or [1]) * 2.2)  # bars in the lower half
        ax2.set_ylabel("会话数")
        ax2.spines["top"].set_visible(False)
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        scores = [w["score_mean"] for w in weeks]
        ax.plot(x, [s if s is not None else float("nan") for s in scores], marker="o", color=INK, zorder=3)
        for i, s in zip(x, scores, strict=True):
            if s is not None:
                ax.annotate(f"{s:.1f}", (i, s), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xticks(x, [w["week"].replace("-W", " 第") + "周" for w in weeks], fontsize=7)
        low = min([s for s in scores if s is not None] or [0])
        ax.set_ylim(max(0, low - 10), 102)
        ax.set_ylabel("平均分")
        ax.set_title("每周平均分（ISO 周）")
        return _svg(fig)


def deciles(report: Mapping[str, Any], font: Path) -> str:
    use_font(font)
    d = [r for r in report["score_deciles"] if r["score"] is not None]
    with _LOCK:
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        ax.plot([r["p"] for r in d], [r["score"] for r in d], marker="o", color=INK)
        ax.fill_between([r["p"] for r in d], [r["score"] for r in d], color=TEAM, alpha=0.4)
        ax.set_xticks(range(0, 101, 10))
        ax.set_xlabel("百分位")
        ax.set_ylabel("得分")
        ax.set_ylim(max(0, min([r["score"] for r in d] or [0]) - 10), 102)
        ax.set_title("得分分布（十分位）")
        return _svg(fig)


def agents_ranked(report: Mapping[str, Any], font: Path) -> str:
    use_font(font)
    rows = list(report["agents_ranked"])[:20][::-1]
    with _LOCK:
        fig, ax = plt.subplots(figsize=(4.6, max(1.6, 0.28 * len(rows) + 0.8)))
        y = range(len(rows))
        ax.barh(list(y), [r["score_mean"] or 0 for r in rows], color=INK)
        for i, r in zip(y, rows, strict=True):
            weak = f"  弱项：{item_zh(r['weakest_item'])}" if r["weakest_item"] else ""
            ax.text(1, i, f"{r['score_mean']}{weak}", va="center", color="white", fontsize=7)
        ax.set_yticks(list(y), [f"{r['agent_name']} {r['agent_id']}" for r in rows], fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_title("坐席平均分排名")
        return _svg(fig)


def complaint_mix(report: Mapping[str, Any], font: Path) -> str:
    use_font(font)
    rows = list(report["complaint_mix"])[::-1]
    with _LOCK:
        fig, ax = plt.subplots(figsize=(4.6, max(1.6, 0.26 * len(rows) + 0.8)))
        y = range(len(rows))
        ax.barh(list(y), [r["count"] for r in rows], color=TEAM)
        for i, r in zip(y, rows, strict=True):
            ax.text(r["count"], i, f" {r['count']}（{r['share']:.0%}）", va="center", fontsize=7)
        ax.set_yticks(list(y), [type_zh(r["complaint_type"]) for r in rows], fontsize=8)
        ax.set_xlim(0, max([r["count"] for r in rows] or [1]) * 1.3)
        ax.set_title("诉求类型")
        return _svg(fig)


def flags_per_day(report: Mapping[str, Any], font: Path, flags: Sequence[str]) -> str:
    use_font(font)
    days = list(report["flags_per_day"])
    with _LOCK:
        fig, ax = plt.subplots(figsize=(9.4, 2.6))
        x = list(range(len(days)))
        ax.bar(x, [d["conversations"] for d in days], color=COMPANY, label="会话数", width=0.8)
        palette = [BAD, "#ed7d31", INK, "#7f6000", "#7030a0", "#a5a5a5"]
        for f, colour in zip(flags, palette, strict=False):
            ax.plot(x, [d[f] for d in days], color=colour, label=FLAG_ZH.get(f, f), linewidth=1.2)
        step = max(1, len(days) // 14)
        ax.set_xticks(x[::step], [d["date"][5:] for d in days][::step], fontsize=7)
        ax.legend(fontsize=7, frameon=False, ncols=7, loc="upper center", bbox_to_anchor=(0.5, -0.12))
        ax.set_title("每日标记")
        return _svg(fig)


def compare_items(report: Mapping[str, Any], font: Path) -> str:
    use_font(font)
    rows = list(report["items"])[::-1]
    with _LOCK:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        y = range(len(rows))
        h = 0.38
        ax.barh([i + h / 2 for i in y], [r["before_rate"] or 0 for r in rows], h, color=COMPANY, label="培训前")
        ax.barh([i - h / 2 for i in y], [r["after_rate"] or 0 for r in rows], h,
                color=[(GOOD if r["direction"] == "better" else BAD) if r["verdict"] == "larger than noise" else INK
                       for r in rows], label="培训后")
        for i, r in zip(y, rows, strict=True):
            if r["verdict"] == "larger than noise":
                ax.text((r["after_rate"] or 0) + 0.01, i - h / 2, f"p={r['p']:.3g} *", va="center", fontsize=7)
        ax.set_yticks(list(y), [item_zh(r["item"]) for r in rows])
        _pct(ax)
        ax.set_xlim(0, 1.2)
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title("培训前后完成率（* 超出随机波动，p < 0.05）")
        ax.legend(loc="lower right", fontsize=7, frameon=False, ncols=2, bbox_to_anchor=(1, -0.2))
        return _svg(fig)
