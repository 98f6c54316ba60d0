"""Reports for trainers and operations (REPORTS.md): per-agent weak skills, team and site dashboards, signals
(spikes, repeat complaints), before/after comparisons — SQL aggregates over the store's in-force columns
(``queries``), rendered as text, JSON, HTML with matplotlib charts, PDF (headless Chromium) and CSV.

``signals.signals_for(store, date)`` is the nightly summary's hook; ``pages.router`` the workbench's pages;
``cli.register(app)`` adds ``zhijian report …`` and ``zhijian signals``."""
