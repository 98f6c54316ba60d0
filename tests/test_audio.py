"""Audio (``pipeline.audio``): decoding, voice activity with crosstalk gating, mid-call silences."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly
from zhijian_testing import AUDIO, read_wav, refs, sidecar, write_wav

from pipeline import audio
from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.schema import AudioFacts

REFS = refs()
STEREO_ID = sidecar("stereo_short")["id"]
DEAD_AIR_ID = sidecar("dead_air")["id"]


def source_seconds(path: Path) -> float:
    """Duration as the file itself says (frames / rate), independent of the pipeline's decoder."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        frames = sum(f.samples for f in c.decode(s))
        return frames / s.rate


def frames(t: float) -> int:
    return int(t / audio.FRAME_S)


def voiced_share(mask: np.ndarray, start: float, end: float) -> float:
    seg = mask[frames(start) : frames(end)]
    return float(seg.mean()) if len(seg) else 0.0


@pytest.fixture(scope="module")
def stereo() -> audio.DecodedAudio:
    return audio.decode(AUDIO / "stereo_short.flac")


@pytest.fixture(scope="module")
def stereo_masks(stereo: audio.DecodedAudio, settings: Settings) -> list[np.ndarray]:
    return audio.voice_masks(stereo, settings.audio.vad_threshold, settings.audio.crosstalk_db)


# -- decoding ---------------------------------------------------------------------------------------

def test_decode_keeps_two_channels_at_16k(stereo: audio.DecodedAudio) -> None:
    assert audio.SAMPLE_RATE == 16000
    assert stereo.samples.dtype == np.float32
    assert stereo.channels == 2 and stereo.samples.shape[0] == 2
    assert stereo.source_rate == 8000
    assert stereo.duration == pytest.approx(source_seconds(AUDIO / "stereo_short.flac"), abs=0.02)
    assert stereo.samples.shape[1] == pytest.approx(stereo.duration * 16000, abs=1)
    # the channels are kept apart, not mixed down: agent and customer differ
    assert not np.allclose(stereo.samples[0], stereo.samples[1])
    assert np.abs(stereo.samples).max() <= 1.0


def test_decode_mono_wav() -> None:
    decoded = audio.decode(AUDIO / "mono_short.wav")
    assert decoded.channels == 1
    assert decoded.source_rate == 8000
    assert decoded.duration == pytest.approx(source_seconds(AUDIO / "mono_short.wav"), abs=0.02)


@pytest.mark.parametrize("rate", [11025, 44100])
def test_odd_sample_rates_decode(rate: int, tmp_path: Path, settings: Settings) -> None:
    x, src = read_wav(AUDIO / "mono_short.wav")
    g = np.gcd(rate, src)
    path = write_wav(tmp_path / f"call_{rate}.wav", samples=resample_poly(x, rate // g, src // g, axis=1),
                     rate=rate)

    decoded = audio.decode(path)

    assert decoded.source_rate == rate
    assert decoded.channels == 1
    assert decoded.duration == pytest.approx(x.shape[1] / src, abs=0.02)
    # still speech after resampling: the voice is found where it is at 8 kHz
    mask = audio.voice_masks(decoded, settings.audio.vad_threshold, settings.audio.crosstalk_db)[0]
    first = REFS[sidecar("mono_short")["id"]][0]
    assert voiced_share(mask, first["start"], first["end"]) > 0.5


def test_low_sample_rate_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "low.wav", samples=0.1 * np.ones(6000), rate=2000)
    with pytest.raises(InputError) as e:
        audio.decode(path)
    assert e.value.code == "E005" and "2000 Hz" in str(e.value) and str(path) in str(e.value)


def test_three_channels_are_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "three.wav", seconds=1.0, channels=3)
    with pytest.raises(InputError) as e:
        audio.decode(path)
    assert e.value.code == "E004" and str(path) in str(e.value)


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    data = (AUDIO / "mono_short.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        audio.decode(path)
    assert e.value.code == "E003" and str(path) in str(e.value)


def test_empty_and_non_audio_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("不是音频\n" * 100, encoding="utf-8")
    for path, code in ((empty, "E001"), (text, "E002")):
        with pytest.raises(InputError) as e:
            audio.decode(path)
        assert e.value.code == code and str(path) in str(e.value)


# -- voice activity ---------------------------------------------------------------------------------

def test_voice_masks_find_both_speakers(stereo_masks: list[np.ndarray]) -> None:
    roles = {"agent": 0, "customer": 1}  # stereo_agent_left
    for ref in REFS[STEREO_ID]:
        own = stereo_masks[roles[ref["role"]]]
        other = stereo_masks[1 - roles[ref["role"]]]
        assert voiced_share(own, ref["start"], ref["end"]) > 0.5, ref
        # the speaker's own voice is heard on the other channel (crosstalk) but not taken as speech there
        assert voiced_share(other, ref["start"], ref["end"]) < 0.1, ref


def test_crosstalk_is_gated(stereo: audio.DecodedAudio, stereo_masks: list[np.ndarray], settings: Settings) -> None:
    """The customer channel carries a faint copy of the agent: Silero alone hears speech there."""
    greeting = REFS[STEREO_ID][0]
    assert greeting["role"] == "agent"
    raw = audio.smooth(audio.speech_probability(stereo.samples[1]) >= settings.audio.vad_threshold)
    assert voiced_share(raw, greeting["start"], greeting["end"]) > 0.3  # the fixture has crosstalk
    assert voiced_share(stereo_masks[1], greeting["start"], greeting["end"]) == 0.0


def test_no_speech_outside_reference_turns(stereo_masks: list[np.ndarray]) -> None:
    """Every stretch of detected speech lies inside (or right next to) a reference turn of that role."""
    for ch, role in enumerate(("agent", "customer")):
        turns = [r for r in REFS[STEREO_ID] if r["role"] == role]
        for span in audio.spans(stereo_masks[ch]):
            assert any(span.start >= t["start"] - 0.3 and span.end <= t["end"] + 0.3 for t in turns), (role, span)


def test_silent_recording_has_no_speech(tmp_path: Path, settings: Settings) -> None:
    decoded = audio.decode(write_wav(tmp_path / "silent.wav", seconds=3.0, channels=2))
    masks = audio.voice_masks(decoded, settings.audio.vad_threshold, settings.audio.crosstalk_db)
    assert not any(m.any() for m in masks)
    with pytest.raises(InputError) as e:
        audio.audio_facts(decoded, masks, ["agent", "customer"], settings.audio.dead_air_seconds)
    assert e.value.code == "E006"


# -- audio facts: dead air --------------------------------------------------------------------------

def facts(name: str, settings: Settings) -> AudioFacts:
    decoded = audio.decode(AUDIO / name)
    masks = audio.voice_masks(decoded, settings.audio.vad_threshold, settings.audio.crosstalk_db)
    return audio.audio_facts(decoded, masks, ["agent", "customer"], settings.audio.dead_air_seconds)


def test_dead_air_silence_found(settings: Settings) -> None:
    f = facts("dead_air.flac", settings)
    assert f.channels == 2 and f.sample_rate == 8000
    assert len(f.silences) == 1
    [gap] = f.silences
    assert gap.end - gap.start >= 10.0
    # in the middle of the call: someone spoke before it and after it
    assert f.speech["agent"][0].start < gap.start and f.speech["agent"][-1].end > gap.end
    # where the script put it: between the customer's question and the agent's answer
    turns = REFS[DEAD_AIR_ID]
    before = max(t["end"] for t in turns if t["end"] <= gap.end)
    after = min(t["start"] for t in turns if t["start"] >= gap.start)
    assert gap.start == pytest.approx(before, abs=0.5)
    assert gap.end == pytest.approx(after, abs=0.5)


def test_no_dead_air_in_a_brisk_call(settings: Settings) -> None:
    f = facts("stereo_short.flac", settings)
    assert f.silences == []
    assert f.speech["agent"] and f.speech["customer"]
    assert f.duration == pytest.approx(16.38, abs=0.05)
