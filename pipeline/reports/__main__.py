"""``python -m pipeline.reports agent A104 --from … --to …``: the report commands alone, without loading the
rest of the ``zhijian`` command (the same code as ``zhijian report …``; bench/report_speed.py times both)."""

from pipeline.reports.cli import report_app

report_app(prog_name="zhijian report")
