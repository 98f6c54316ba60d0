"""Reports as HTML (Jinja2, charts inline as SVG), PDF (headless Chromium printing that HTML) and CSV.

The PDF is Chromium's own print of the same page: text stays text (``pdftotext`` reads the agent's name
back) in the CJK font fontconfig finds for ``Noto Sans CJK SC`` (Debian's fonts-noto-cjk), embedded by
Chromium's PDF writer.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.reports import charts
from pipeline.reports.labels import FLAG_ZH, ITEM_ZH, TYPE_ZH, item_zh, type_zh
from pipeline.reports.queries import FLAGS

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(item_zh=item_zh, type_zh=type_zh, pct=_pct, num=_num, seconds=_seconds)
    env.globals.update(ITEM_ZH=ITEM_ZH, TYPE_ZH=TYPE_ZH, FLAG_ZH=FLAG_ZH, FLAGS=FLAGS)
    return env


def _base(settings: Settings, given: str | None) -> str:
    """Where conversation links point: as given (the web pages: relative), else the configured workbench."""
    return (settings.reports.web_url if given is None else given).rstrip("/")


def _pct(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def _num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _seconds(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.0f} 秒" if v < 120 else f"{v / 60:.1f} 分钟"


def agent_html(report: Mapping[str, Any], settings: Settings, link_base: str | None = None) -> str:
    font = settings.reports.cjk_font_path
    svg = {"items": charts.agent_items(report, font), "weekly": charts.agent_weekly(report, font)}
    return _env().get_template("agent.html.j2").render(r=report, charts=svg, link_base=_base(settings, link_base))


def dashboard_html(report: Mapping[str, Any], settings: Settings, signals: Mapping[str, Any] | None = None,
                   link_base: str | None = None) -> str:
    font = settings.reports.cjk_font_path
    svg = {"deciles": charts.deciles(report, font), "ranked": charts.agents_ranked(report, font),
           "mix": charts.complaint_mix(report, font), "flags": charts.flags_per_day(report, font, FLAGS)}
    kind = "team" if "team" in report else "site"
    return _env().get_template("dashboard.html.j2").render(
        r=report, kind=kind, name=report[kind], charts=svg, signals=signals, link_base=_base(settings, link_base))


def compare_html(report: Mapping[str, Any], settings: Settings) -> str:
    svg = {"items": charts.compare_items(report, settings.reports.cjk_font_path)}
    return _env().get_template("compare.html.j2").render(r=report, charts=svg)


def signals_html(report: Mapping[str, Any], link_base: str = "") -> str:
    """The day's signals as a page (links to conversations relative to ``link_base``)."""
    return _env().get_template("signals.html.j2").render(signals=report, link_base=link_base)


def write_pdf(html: str, out: Path, settings: Settings, timeout: float = 120) -> Path:
    """Print ``html`` to ``out`` with headless Chromium (A4, no header or footer)."""
    chromium = settings.reports.chromium_path
    if not chromium.is_file():
        raise ConfigError("E093", detail=f"{chromium} not found (apt-get install chromium)")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zhijian-pdf-"))
    try:
        page = work / "report.html"
        page.write_text(html, encoding="utf-8")
        cmd = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-pdf-header-footer", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={work / 'profile'}", f"--print-to-pdf={out}", page.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ConfigError("E093", detail=f"Chromium did not finish within {timeout:.0f} s") from None
        if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ConfigError("E093", detail=f"Chromium exited {done.returncode}: {' | '.join(tail)}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_csv(folder: Path, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Path]:
    """One CSV per table (``<name>.csv``), UTF-8 with a BOM so Excel opens the Chinese as Chinese."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in tables.items():
        path = folder / f"{name}.csv"
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: "" if r.get(k) is None else r.get(k) for k in keys})
        written.append(path)
    return written
