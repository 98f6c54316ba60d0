"""A per-recording time budget: decoding and recognition check it as they go and stop with E009 when it is
spent, so one pathological file (hours of noise, a decoder stuck on a garbled stream) cannot hold the night.

The check is cooperative (between decoded frames and recognised segments): it never interrupts a native
call halfway, but every stage of one recording is made of many short calls."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.errors import InputError


class Budget:
    """``seconds`` of wall time for one recording, counted from construction."""

    def __init__(self, seconds: float, path: Path | str) -> None:
        self.seconds = seconds
        self.path = Path(path)
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        """Raise InputError E009 once the budget is spent."""
        if time.monotonic() > self.deadline:
            raise InputError("E009", self.path, seconds=self.seconds)
