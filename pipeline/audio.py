"""Audio: decode a recording to 16 kHz float channels, find where each speaker talks, measure silences.

Voice activity is Silero VAD (the ONNX model that ships with faster-whisper) gated per frame by level:
on a stereo line each channel carries a faint copy of the other (crosstalk), so a frame only counts as
speech on channel A when A is within ``crosstalk_db`` of channel B. Dead air is then measured on what
the two voices actually did, not on gaps between recogniser segments.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from pipeline.budget import Budget
from pipeline.errors import InputError
from pipeline.schema import AudioFacts, Span

log = logging.getLogger("zhijian")

SAMPLE_RATE = 16000
FRAME = 512  # Silero's window at 16 kHz: 32 ms
FRAME_S = FRAME / SAMPLE_RATE
MIN_SECONDS = 0.5
MIN_SOURCE_RATE = 4000


@dataclass(frozen=True)
class DecodedAudio:
    """Channels × samples at 16 kHz, plus what the file said about itself."""

    samples: np.ndarray  # float32, shape (channels, n)
    source_rate: int
    path: Path

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE


def _check_wav_header(path: Path) -> None:
    """PyAV decodes a cut-off WAV without complaint; compare the header's length with the file's."""
    try:
        with wave.open(str(path), "rb") as w:
            declared = w.getnframes() * w.getnchannels() * w.getsampwidth()
    # RuntimeError: wave's chunk reader gives up on a chunk size past the end of the file
    except (wave.Error, EOFError, struct.error, ValueError, OverflowError, RuntimeError):
        return  # not PCM WAV (e.g. float or extensible): PyAV judges it
    data_start = path.stat().st_size - declared
    # A truncated file has less data than the header promises; the header itself is ≥ 44 bytes.
    if data_start < 44 - 8:
        raise InputError("E003", path, detail=f"header promises {declared} bytes of samples, file is shorter")


def decode(path: Path, max_seconds: float | None = None, budget: Budget | None = None) -> DecodedAudio:
    """Decode any format FFmpeg reads; resample to 16 kHz; keep channels apart. Raises InputError.

    ``max_seconds`` bounds memory: a recording that says (or turns out to be) longer is refused with E015
    without decoding the rest; ``budget`` bounds time (E009)."""
    if not path.is_file():
        raise InputError("E013", path, pattern=str(path))
    if path.stat().st_size == 0:
        raise InputError("E001", path)
    if path.suffix.lower() == ".wav":
        _check_wav_header(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError("E002", path, detail=str(e)) from None
    with container:
        if not container.streams.audio:
            raise InputError("E002", path, detail="no audio stream")
        stream = container.streams.audio[0]
        # a garbled fmt chunk can leave FFmpeg with no decoder (format tag 0: no codec context), or with neither
        # a channel count nor a layout (size field overwritten): a damaged file, not a crash (tests/test_fuzz.py)
        if stream.codec_context is None:
            raise InputError("E002", path, detail="no decoder for the audio stream's codec")
        layout = getattr(stream, "layout", None)  # PyAV raises AttributeError when the stream has none
        channels = stream.codec_context.channels or (len(layout.channels) if layout is not None else 0)
        if channels < 1:
            raise InputError("E003", path, detail="the header gives no channel count")
        rate = stream.codec_context.sample_rate or stream.rate or 0
        if channels > 2:
            raise InputError("E004", path, channels=channels)
        if rate < MIN_SOURCE_RATE:
            raise InputError("E005", path, rate=rate)
        declared = float(container.duration) / 1e6 if container.duration else 0.0  # microseconds
        if max_seconds is not None and declared > max_seconds:
            raise InputError("E015", path, limit=max_seconds)
        limit = int(max_seconds * SAMPLE_RATE) if max_seconds is not None else None
        resampler = av.AudioResampler(format="fltp", layout="stereo" if channels == 2 else "mono",
                                      rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray())
                    decoded += chunks[-1].shape[1]
                if limit is not None and decoded > limit:
                    raise InputError("E015", path, limit=max_seconds)
                if budget is not None:
                    budget.check()
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except (av.error.FFmpegError, ValueError, OverflowError, MemoryError) as e:
            raise InputError("E003", path, detail=str(e) or type(e).__name__) from None
    if not chunks:
        raise InputError("E003", path, detail="no audio frames could be decoded")
    samples = np.concatenate(chunks, axis=1).astype(np.float32)
    audio = DecodedAudio(samples=samples, source_rate=int(rate), path=path)
    if audio.duration < MIN_SECONDS:
        raise InputError("E007", path, seconds=audio.duration)
    return audio


@lru_cache(maxsize=1)
def _vad_model():
    from faster_whisper.utils import get_assets_path
    from faster_whisper.vad import SileroVADModel

    return SileroVADModel(os.path.join(get_assets_path(), "silero_vad_v6.onnx"))


def speech_probability(x: np.ndarray) -> np.ndarray:
    """Silero speech probability for each 32 ms frame of a 16 kHz channel."""
    padded = np.pad(x, (0, (-len(x)) % FRAME))
    return np.asarray(_vad_model()(padded), dtype=np.float32).reshape(-1)


def frame_level_db(x: np.ndarray) -> np.ndarray:
    """RMS level of each 32 ms frame, in dB."""
    padded = np.pad(x, (0, (-len(x)) % FRAME)).reshape(-1, FRAME)
    return 10 * np.log10(np.mean(padded**2, axis=1) + 1e-10)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame indices of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def smooth(mask: np.ndarray, fill_gap_s: float = 0.3, min_run_s: float = 0.12) -> np.ndarray:
    """Close short gaps inside speech, then drop blips too short to be a syllable."""
    out = mask.copy()
    runs = _runs(out)
    for (_, e0), (s1, _) in itertools.pairwise(runs):
        if (s1 - e0) * FRAME_S < fill_gap_s:
            out[e0:s1] = True
    for s, e in _runs(out):
        if (e - s) * FRAME_S < min_run_s:
            out[s:e] = False
    return out


def spans(mask: np.ndarray) -> list[Span]:
    return [Span(start=round(s * FRAME_S, 2), end=round(e * FRAME_S, 2)) for s, e in _runs(mask)]


def hysteresis(prob: np.ndarray, threshold: float, release: float = 0.15) -> np.ndarray:
    """Speech starts where the probability reaches ``threshold`` and lasts while it stays above
    ``threshold - release`` (as Silero's own segmenter does), so a softly spoken word mid-sentence stays in."""
    low = prob >= max(0.01, threshold - release)
    high = prob >= threshold
    out = np.zeros_like(low)
    for s, e in _runs(low):
        if high[s:e].any():
            out[s:e] = True
    return out


def voice_masks(audio: DecodedAudio, vad_threshold: float, crosstalk_db: float) -> list[np.ndarray]:
    """One boolean frame mask per channel: where that channel's own speaker is talking."""
    probs = [hysteresis(speech_probability(ch), vad_threshold) for ch in audio.samples]
    if audio.channels == 1:
        return [smooth(probs[0])]
    levels = [frame_level_db(ch) for ch in audio.samples]
    masks = []
    for me, other in ((0, 1), (1, 0)):
        own = levels[me] >= levels[other] - crosstalk_db
        masks.append(smooth(probs[me] & own))
    return masks


def mid_call_silences(masks: list[np.ndarray], min_seconds: float) -> list[Span]:
    """Stretches of at least ``min_seconds`` where nobody speaks, after the first voice and before the last."""
    voice = np.logical_or.reduce(masks)
    runs = _runs(voice)
    gaps = []
    for (_, e0), (s1, _) in itertools.pairwise(runs):
        if (s1 - e0) * FRAME_S >= min_seconds:
            gaps.append(Span(start=round(e0 * FRAME_S, 2), end=round(s1 * FRAME_S, 2)))
    return gaps


def audio_facts(audio: DecodedAudio, masks: list[np.ndarray], roles: list[str],
                dead_air_seconds: float) -> AudioFacts:
    if not any(m.any() for m in masks):
        raise InputError("E006", audio.path)
    return AudioFacts(
        duration=round(audio.duration, 2),
        sample_rate=audio.source_rate,
        channels=audio.channels,
        speech={role: spans(m) for role, m in zip(roles, masks, strict=True)},
        silences=mid_call_silences(masks, dead_air_seconds),
    )
