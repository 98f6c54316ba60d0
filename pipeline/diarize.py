"""Who spoke when on a mono recording: two voices told apart by pitch.

A phone line gives little to go on, but the voice's fundamental frequency (F0) is robust to the
300–3400 Hz band: the median log-F0 of each voiced stretch is clustered into two voices. When the two
clusters are not clearly apart (one speaker, or two similar voices), everything is one voice and
roles come from what is said (``roles_from_text``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipeline.audio import SAMPLE_RATE

log = logging.getLogger("zhijian")

F0_MIN, F0_MAX = 70.0, 400.0
WIN = 640  # 40 ms
HOP = 160  # 10 ms
MIN_SEPARATION = 0.08  # natural-log units (≈ 1.4 semitones) between the two voices' centres


def pitch_track(x: np.ndarray) -> np.ndarray:
    """F0 in Hz every 10 ms (0 where unvoiced), by normalised autocorrelation."""
    if len(x) < WIN:
        return np.zeros(0, np.float32)
    n = 1 + (len(x) - WIN) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(WIN)[None, :]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2048, axis=1)
    acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :WIN]
    energy = acf[:, 0] + 1e-12
    lo, hi = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    band = acf[:, lo:hi] / energy[:, None]
    lag = np.argmax(band, axis=1)
    peak = band[np.arange(n), lag]
    loud = 10 * np.log10(energy) > 10 * np.log10(np.median(energy) + 1e-12) - 10
    f0 = SAMPLE_RATE / (lag + lo)
    return np.where((peak > 0.45) & loud, f0, 0.0).astype(np.float32)


def span_pitch(track: np.ndarray, start: float, end: float) -> float | None:
    """Median log-F0 of the voiced frames in [start, end) s, or None when too few are voiced."""
    seg = track[int(start * 100) : int(end * 100)]
    voiced = seg[seg > 0]
    if len(voiced) < 8:
        return None
    return float(np.median(np.log(voiced)))


def two_voices(values: Sequence[float | None]) -> list[int] | None:
    """Cluster pitches into voice 0 (higher) and 1 (lower); None when one voice explains them."""
    known = np.array([v for v in values if v is not None])
    if len(known) < 2:
        return None
    centres = np.percentile(known, [75, 25])
    for _ in range(20):
        labels = np.abs(known[:, None] - centres[None, :]).argmin(axis=1)
        new = np.array([known[labels == k].mean() if (labels == k).any() else centres[k] for k in (0, 1)])
        if np.allclose(new, centres):
            break
        centres = new
    if abs(centres[0] - centres[1]) < MIN_SEPARATION or min((labels == 0).sum(), (labels == 1).sum()) == 0:
        return None
    out: list[int] = []
    last = 0
    for v in values:
        if v is None:
            out.append(last)  # an unpitched blip belongs to whoever was talking
        else:
            last = int(np.abs(v - centres).argmin())
            out.append(last)
    return out


def voices(x: np.ndarray, stretches: Sequence[tuple[float, float]]) -> list[int] | None:
    """A voice number (0/1) for each voiced stretch of a mono channel, or None if only one voice."""
    track = pitch_track(x)
    return two_voices([span_pitch(track, s, e) for s, e in stretches])
