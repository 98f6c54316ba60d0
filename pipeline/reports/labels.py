"""Chinese names of items, complaint types and flags, as trainers and operations read them (spec taxonomy)."""

from __future__ import annotations

from pathlib import Path

import yaml

ITEM_ZH: dict[str, str] = {
    "script.greeting": "开场问候", "script.identity_check": "核实信息", "script.restate": "复述确认",
    "script.commitment": "处理时限", "script.ownership": "首问负责", "script.closing": "结束确认",
    "script.farewell": "致谢道别", "courtesy": "服务禁语",
}
TYPE_ZH: dict[str, str] = {
    "repair": "报事报修", "facility": "公共设施", "security": "安保秩序", "cleaning": "环境卫生",
    "greening": "绿化养护", "parking": "停车管理", "fees": "收费争议", "noise": "噪音扰民", "neighbor": "邻里纠纷",
    "renovation": "装修管理", "staff_attitude": "服务态度", "inquiry": "咨询", "praise": "表扬",
}
FLAG_ZH: dict[str, str] = {
    "critical": "红线", "low_score": "低分", "escalation_risk": "升级风险", "dead_air": "冷场",
    "angry_customer": "客户愤怒", "low_confidence": "低置信",
}


def item_zh(item: str) -> str:
    return ITEM_ZH.get(item, item)


def type_zh(kind: str | None) -> str:
    return TYPE_ZH.get(kind or "", kind or "—")


def load_training_map(path: Path) -> dict[str, list[str]]:
    """item → training modules. A value may be one string or a list; unknown keys are kept (a scorecard may
    have more items than the default)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the training map must be a mapping item → course(s)")
    out: dict[str, list[str]] = {}
    for k, v in raw.items():
        courses = [v] if isinstance(v, str) else v
        if not isinstance(courses, list) or not all(isinstance(c, str) for c in courses):
            raise ValueError(f"{path}: {k!r} must map to a course name or a list of them")
        out[str(k)] = list(courses)
    return out
