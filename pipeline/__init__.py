"""Zhijian's pipeline.

Importing any part of it puts the personal-number filter on the "zhijian" logger (``pipeline.privacy``),
so no log line, from any stage or entry point, carries a resident's raw phone, ID-card or bank-card number.
"""

from pipeline import privacy as _privacy  # noqa: F401  (installs the log filter)
