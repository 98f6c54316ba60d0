"""How each voiced stretch of a mono recording sounds: features to tell two voices apart.

A phone line gives little to go on. Per stretch we keep the lower-quartile log-F0 (robust to the octave
jumps of an autocorrelation tracker) and the mean MFCCs of its louder frames, standardised over the call.
On their own they separate agent from resident only ~80% of the time; ``roles.label_atoms`` uses them
once the words have said which voice is whose.
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


def _mel_filterbank(n_fft: int = 512, bands: int = 24, lo: float = 250.0, hi: float = 3600.0) -> np.ndarray:
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595 * np.log10(1 + np.asarray(f) / 700)

    edges = 700 * (10 ** (np.linspace(mel(lo), mel(hi), bands + 2) / 2595) - 1)
    bins = np.floor((n_fft + 1) * edges / SAMPLE_RATE).astype(int)
    fb = np.zeros((bands, n_fft // 2 + 1))
    for i in range(bands):
        a, b, c = bins[i], bins[i + 1], bins[i + 2]
        fb[i, a:b] = (np.arange(a, b) - a) / max(1, b - a)
        fb[i, b:c] = (c - np.arange(b, c)) / max(1, c - b)
    return fb


_FB = _mel_filterbank()


def cepstra(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MFCC 1–12 and frame energy every 10 ms (25 ms windows), within the telephone band."""
    from scipy.fft import dct

    win, hop = 400, HOP
    if len(x) < win:
        return np.zeros((0, 12)), np.zeros(0)
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hamming(win), 512)) ** 2
    logmel = np.log(power @ _FB.T + 1e-10)
    return dct(logmel, type=2, axis=1, norm="ortho")[:, 1:13], logmel.mean(axis=1)


def voice_features(x: np.ndarray, stretches: Sequence[tuple[float, float]]) -> np.ndarray:
    """Per stretch: lower-quartile log-F0 (robust to octave jumps) and mean MFCCs of its louder frames,
    standardised over the call. Rows of NaN where a stretch is too short to say."""
    track = pitch_track(x)
    cep, energy = cepstra(x)
    rows = []
    for s, e in stretches:
        a, b = int(s * 100), int(e * 100)
        f0 = track[a:b]
        voiced = f0[f0 > 0]
        en = energy[a:b]
        if len(voiced) < 5 or len(en) < 5:
            rows.append(np.full(13, np.nan))
            continue
        loud = en > np.percentile(en, 40)
        rows.append(np.concatenate([[np.log(np.percentile(voiced, 25))], cep[a:b][loud].mean(axis=0)]))
    feats = np.array(rows)
    mean, std = np.nanmean(feats, axis=0), np.nanstd(feats, axis=0) + 1e-6
    return (feats - mean) / std
