"""HTML with inline SVG charts drawn in the CJK font (no missing glyph), PDF printed by headless Chromium
whose text ``pdftotext`` reads back (the agent's Chinese name), pages rendered with ``pdftoppm``; CSV of every
table equal to the JSON."""

from __future__ import annotations

import csv
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from conftest import END
from test_report_agent import PERIOD, training
from test_report_compare import AFTER, BEFORE

from pipeline.config import get_settings
from pipeline.reports import agent as agent_mod
from pipeline.reports import charts, compare, dashboard, render
from pipeline.reports.signals import signals_for
from pipeline.store import Store

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
                                   reason="poppler-utils not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def sqlite_store(store: Store) -> Store:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("rendering is the same whatever the database: once is enough")
    return store


def test_charts_draw_chinese_without_missing_glyphs(sqlite_store: Store) -> None:
    settings = get_settings()
    report = agent_mod.agent_report(sqlite_store.engine, "A104", PERIOD, training())
    group = dashboard.group_report(sqlite_store.engine, "site", "海棠湾", PERIOD, 30)
    cmp_report = compare.compare_report(sqlite_store.engine, "agent", "A206", BEFORE, AFTER)
    font = settings.reports.cjk_font_path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)" for every box it draws
        svgs = [charts.agent_items(report, font), charts.agent_weekly(report, font), charts.deciles(group, font),
                charts.agents_ranked(group, font), charts.complaint_mix(group, font),
                charts.flags_per_day(group, font, ["critical", "low_score"]), charts.compare_items(cmp_report, font)]
    assert charts.use_font(font) == "Noto Sans CJK SC"
    for svg in svgs:
        assert svg.startswith("<svg") and "<path" in svg


def test_missing_font_is_a_coded_error(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="E092"):
        charts.use_font(tmp_path / "nope.ttc")


@needs_poppler
def test_agent_pdf_has_the_name_as_text(sqlite_store: Store, tmp_path: Path) -> None:
    settings = get_settings()
    report = agent_mod.agent_report(sqlite_store.engine, "A104", PERIOD, training())
    html = render.agent_html(report, settings)
    assert "周强" in html and html.count("<svg") == 2
    assert 'href="/conversations/' in html  # example turns link to their conversation
    for w in report["weakest"]:
        for course in w["training"]:
            assert course in html
    pdf = render.write_pdf(html, tmp_path / "agent.pdf", settings)
    assert pdf.read_bytes().startswith(b"%PDF")
    words = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert "周强" in words and "复述确认" in words and "A104" in words
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert " yes " in fonts  # embedded
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages and all(p.stat().st_size > 5000 for p in pages)


@needs_poppler
def test_dashboard_and_compare_pdfs(sqlite_store: Store, tmp_path: Path) -> None:
    settings = get_settings()
    group = dashboard.group_report(sqlite_store.engine, "team", "海棠湾夜班组", PERIOD, 30)
    html = render.dashboard_html(group, settings, signals_for(sqlite_store, END))
    assert "海棠湾夜班组" in html and html.count("<svg") == 4 and "投诉激增" in html
    pdf = render.write_pdf(html, tmp_path / "team.pdf", settings)
    words = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "海棠湾夜班组" in words and "吴婷" in words
    cmp_report = compare.compare_report(sqlite_store.engine, "agent", "A206", BEFORE, AFTER)
    pdf = render.write_pdf(render.compare_html(cmp_report, settings), tmp_path / "cmp.pdf", settings)
    words = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "吴婷" in words and "超出随机波动" in words


def test_csv_of_every_table(sqlite_store: Store, tmp_path: Path) -> None:
    report = agent_mod.agent_report(sqlite_store.engine, "A104", PERIOD, training())
    tables = agent_mod.tables(report)
    paths = render.write_csv(tmp_path, tables)
    assert sorted(p.name for p in paths) == sorted(f"{k}.csv" for k in tables)
    with (tmp_path / "items.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["item"], float(r["pass_rate"])) for r in rows] == [(i["item"], i["pass_rate"]) for i in report["items"]]
    with (tmp_path / "summary.csv").open(encoding="utf-8-sig") as f:
        [summary] = list(csv.DictReader(f))
    assert summary["agent_name"] == "周强" and int(summary["conversations"]) == report["conversations"]
    with (tmp_path / "examples.csv").open(encoding="utf-8-sig") as f:
        examples = list(csv.DictReader(f))
    assert len(examples) == sum(len(w["examples"]) for w in report["weakest"])
    group = dashboard.group_report(sqlite_store.engine, "site", "阳光花园", PERIOD, 30)
    paths = render.write_csv(tmp_path / "site", dashboard.tables(group))
    with (tmp_path / "site" / "complaint_mix.csv").open(encoding="utf-8-sig") as f:
        mix = list(csv.DictReader(f))
    assert [(m["complaint_type"], int(m["count"])) for m in mix] == [
        (m["complaint_type"], m["count"]) for m in group["complaint_mix"]]


def test_pdf_without_chromium_is_a_coded_error(tmp_path: Path) -> None:
    from pipeline.config import Settings
    from pipeline.errors import ConfigError

    settings = Settings(reports={"chromium_path": tmp_path / "no-chromium"})
    with pytest.raises(ConfigError, match="E093"):
        render.write_pdf("<p>x</p>", tmp_path / "x.pdf", settings)


def test_links_point_at_the_configured_workbench(sqlite_store: Store) -> None:
    settings = get_settings()
    configured = settings.model_copy(update={"reports": settings.reports.model_copy(
        update={"web_url": "https://qa.example.com/"})})
    report = agent_mod.agent_report(sqlite_store.engine, "A104", PERIOD, training())
    conv = report["weakest"][0]["examples"][0]["conversation_id"]
    assert f'href="https://qa.example.com/conversations/{conv}"' in render.agent_html(report, configured)
    assert f'href="/conversations/{conv}"' in render.agent_html(report, configured, link_base="")
