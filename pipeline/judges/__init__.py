"""Judges: each reads a transcript and returns findings. Chosen by name in config (``settings.judges``)."""

from pipeline.judges.base import Judge, get_judge, judge_many, judge_names, register

__all__ = ["Judge", "get_judge", "judge_many", "judge_names", "register"]
