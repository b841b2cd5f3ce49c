"""Generated emotional speech: training clips and whole focus-group archives, from a seed.

Tests and ``make demo`` need learnable emotional speech without any licensed corpus. The
signal is a source-filter model of speech: a glottal pulse train (with jitter, shimmer and
aspiration noise) through cascaded formant resonators that move through a sequence of
vowel-like syllables, separated by consonant-like noise bursts. Each emotion sets the
prosody (pitch level, range and contour slope, speaking rate, loudness) and voice quality
(jitter, shimmer, breathiness, spectral tilt via the glottal open quotient); every speaker
has its own voice (f0 by gender, vocal-tract length as a formant scale, individual offsets),
and every utterance varies randomly around its emotion's prototype, so the emotions are
separable by MFCC statistics but not trivially.

Everything is deterministic from ``seed``: the same call writes byte-identical files.

File names written by :func:`generate_corpus` (parsed by :func:`ser_pipeline.training.corpora.read_synth`)::

    <url>/SYN_<speaker>_<gender>_<emotion>_<nn>.wav      e.g. SYN_s03_male_angry_04.wav

:func:`generate_archive` writes the layout of docs/ARCHITECTURE.md ("The archive layout").
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, sosfilt

from ser_pipeline.training.corpora import CorpusItem, items_frame, parse_synth, synth_file_name
from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.storage import join, write_bytes_atomic

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "PROSODY",
    "TRUTH_COLUMNS",
    "Prosody",
    "Voice",
    "generate_archive",
    "generate_corpus",
    "make_voice",
    "synthesize_utterance",
]

DEFAULT_SAMPLE_RATE = 22_050


@dataclass(frozen=True)
class Voice:
    """One speaker's voice: what stays the same whatever the emotion.

    ``f0_hz`` is the speaking pitch in neutral speech; ``formant_scale`` the vocal-tract
    length factor (1.0 an average male, ~1.15 female); the rest are individual offsets.
    """

    speaker: str
    gender: str
    f0_hz: float
    formant_scale: float
    rate_factor: float = 1.0
    loudness_db: float = 0.0
    breathiness: float = 0.0
    jitter: float = 0.0
    open_quotient: float = 0.0


def make_voice(speaker: str, gender: str, rng: np.random.Generator) -> Voice:
    """A random voice of ``gender`` (``male``/``female``)."""
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', not {gender!r}")
    male = gender == "male"
    return Voice(
        speaker=speaker,
        gender=gender,
        f0_hz=float((115.0 if male else 205.0) * math.exp(0.12 * rng.standard_normal())),
        formant_scale=float((1.0 if male else 1.15) * math.exp(0.04 * rng.standard_normal())),
        rate_factor=float(math.exp(0.10 * rng.standard_normal())),
        loudness_db=float(1.5 * rng.standard_normal()),
        breathiness=float(abs(0.05 * rng.standard_normal())),
        jitter=float(abs(0.004 * rng.standard_normal())),
        open_quotient=float(0.04 * rng.standard_normal()),
    )


@dataclass(frozen=True)
class Prosody:
    """An emotion's prototype. Pitch in ratio/semitones, rate in syllables/s, loudness in dB."""

    f0_ratio: float  # pitch level relative to the speaker's neutral f0
    range_st: float  # pitch movement between syllables (semitones, peak to peak)
    slope_st_s: float  # overall contour slope (semitones per second)
    rate_syl_s: float
    loudness_db: float
    jitter: float  # relative cycle-to-cycle f0 perturbation
    shimmer: float  # relative cycle-to-cycle amplitude perturbation
    breathiness: float  # aspiration noise relative to the voiced source
    open_quotient: float  # glottal open phase (large: soft and dark; small: pressed and bright)
    formant_shift: float = 1.0  # smiling raises formants, a lowered larynx lowers them
    tremor_hz: float = 0.0
    tremor_st: float = 0.0
    consonant_level: float = 0.35


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 2.0, -1.0, 4.2, 0.0, 0.008, 0.03, 0.06, 0.60),
    "calm": Prosody(0.93, 1.2, -1.5, 3.3, -5.0, 0.006, 0.02, 0.16, 0.72, 0.98),
    "happy": Prosody(1.25, 6.0, 1.0, 4.9, 4.0, 0.010, 0.04, 0.05, 0.50, 1.06),
    "sad": Prosody(0.90, 1.0, -2.5, 2.8, -7.0, 0.020, 0.06, 0.30, 0.78, 0.95, 5.0, 0.3),
    "angry": Prosody(1.30, 5.0, -2.0, 5.3, 8.0, 0.020, 0.08, 0.03, 0.38, 1.02, consonant_level=0.5),
    "fearful": Prosody(1.45, 3.5, 2.0, 5.8, -1.0, 0.035, 0.07, 0.25, 0.55, 1.03, 7.0, 0.8),
    "disgust": Prosody(0.92, 3.0, -3.0, 3.1, 1.0, 0.040, 0.09, 0.10, 0.48, 0.96, consonant_level=0.45),
    "surprised": Prosody(1.40, 9.0, 5.0, 4.5, 4.0, 0.010, 0.04, 0.08, 0.50, 1.04),
}

# Formants F1..F3 (Hz) and bandwidths of five vowels of an average male vocal tract.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [300.0, 870.0, 2240.0],  # u
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
    ]
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_F4 = 3500.0


def _vary(p: Prosody, rng: np.random.Generator) -> Prosody:
    """One utterance's prosody: the emotion's prototype with random variation."""
    n = rng.standard_normal(9)
    return replace(
        p,
        f0_ratio=p.f0_ratio * math.exp(0.07 * n[0]),
        range_st=max(0.3, p.range_st * math.exp(0.25 * n[1])),
        slope_st_s=p.slope_st_s + 1.0 * n[2],
        rate_syl_s=p.rate_syl_s * math.exp(0.10 * n[3]),
        loudness_db=p.loudness_db + 2.0 * n[4],
        jitter=p.jitter * math.exp(0.3 * n[5]),
        shimmer=p.shimmer * math.exp(0.3 * n[6]),
        breathiness=p.breathiness * math.exp(0.3 * n[7]),
        open_quotient=float(np.clip(p.open_quotient + 0.05 * n[8], 0.25, 0.9)),
    )


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Second-order resonators with unit gain at DC, one row per formant, as an SOS cascade."""
    nyq = sample_rate / 2
    freqs = np.minimum(freqs, 0.95 * nyq)
    r = np.exp(-np.pi * bandwidths / sample_rate)
    c = 2 * r * np.cos(2 * np.pi * freqs / sample_rate)
    a1, a2 = -c, r * r
    gain = 1 + a1 + a2
    zeros = np.zeros_like(r)
    return np.stack([gain, zeros, zeros, np.ones_like(r), a1, a2], axis=1)


@lru_cache(maxsize=8)
def _fricative_sos(sample_rate: int) -> np.ndarray:
    return butter(4, min(2500.0, 0.4 * sample_rate) / (sample_rate / 2), btype="high", output="sos")


def synthesize_utterance(
    emotion: str,
    voice: Voice,
    duration_s: float,
    rng: np.random.Generator,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """A speech-like utterance of ``voice`` in ``emotion``: float32 mono ``(round(duration_s*sr),)``.

    Short silences lead and trail; the level is set by the emotion's and voice's loudness
    (RMS about -26 dBFS for neutral speech), peaks stay inside [-1, 1].
    """
    if emotion not in PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; known: {EMOTIONS}")
    p = _vary(PROSODY[emotion], rng)
    sr = int(sample_rate)
    n = max(1, int(round(duration_s * sr)))
    t = np.arange(n) / sr

    # Syllable timeline: [consonant | vowel | gap] repeated from lead to trail silence.
    lead, trail = rng.uniform(0.03, 0.12, 2)
    rate = p.rate_syl_s * voice.rate_factor
    span = max(duration_s - lead - trail, 0.2)
    n_syl = max(1, int(round(span * rate * rng.uniform(0.9, 1.1))))
    lengths = rng.gamma(8.0, 1.0, n_syl)
    bounds = lead + span * np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum()])
    starts, ends = bounds[:-1], bounds[1:]
    syl_len = ends - starts
    cons_len = np.minimum(rng.uniform(0.02, 0.09, n_syl), 0.35 * syl_len)
    gap_len = np.minimum(rng.uniform(0.0, 0.06, n_syl), 0.2 * syl_len)
    vowel_start = starts + cons_len
    vowel_end = ends - gap_len

    syl_idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, n_syl - 1)
    in_span = (t >= starts[0]) & (t < ends[-1])
    voiced = in_span & (t >= vowel_start[syl_idx]) & (t < vowel_end[syl_idx])
    consonant = in_span & (t >= starts[syl_idx]) & (t < vowel_start[syl_idx])

    # Pitch: level, per-syllable accents, overall slope, tremor, then per-cycle jitter.
    f0_mean = voice.f0_hz * p.f0_ratio
    accents = rng.uniform(-0.5, 0.5, n_syl) * p.range_st
    semitones = accents[syl_idx] + p.slope_st_s * (t - duration_s / 2)
    semitones = uniform_filter1d(semitones, size=max(1, int(0.06 * sr)), mode="nearest")
    if p.tremor_hz:
        semitones = semitones + p.tremor_st * np.sin(2 * np.pi * p.tremor_hz * t + rng.uniform(0, 2 * np.pi))
    f0 = f0_mean * np.exp2(semitones / 12.0)
    nominal_cycle = (t * f0_mean).astype(np.int64)
    jitter = p.jitter + voice.jitter
    f0 = f0 * (1.0 + jitter * rng.standard_normal(nominal_cycle[-1] + 1)[nominal_cycle])
    phase = np.cumsum(f0 / sr)
    cycle = phase.astype(np.int64)
    frac = phase - cycle

    # Glottal source: a raised-cosine open phase, differentiated (lip radiation), with shimmer.
    oq = float(np.clip(p.open_quotient + voice.open_quotient, 0.25, 0.9))
    pulse = np.where(frac < oq, np.sin(np.pi * np.minimum(frac / oq, 1.0)) ** 2, 0.0)
    source = np.diff(pulse, prepend=0.0) * (sr / f0_mean)
    source *= 1.0 + p.shimmer * rng.standard_normal(cycle[-1] + 1)[cycle]
    noise = rng.standard_normal(n)
    breath = (p.breathiness + voice.breathiness) * noise * (0.4 + 0.6 * pulse)
    excitation = (source + breath * np.std(source)) * voiced

    # Vowel-dependent formant filters, cross-faded between syllables.
    vowel_of_syl = rng.integers(0, len(_VOWELS), n_syl)
    scale = voice.formant_scale * p.formant_shift
    weights = np.zeros((len(_VOWELS), n))
    weights[vowel_of_syl[syl_idx], np.arange(n)] = 1.0
    weights = uniform_filter1d(weights, size=max(1, int(0.03 * sr)), axis=1, mode="nearest")
    speech = np.zeros(n)
    for v in np.unique(vowel_of_syl):
        freqs = np.append(_VOWELS[v] * scale * np.exp(0.03 * rng.standard_normal(3)), _F4 * scale)
        sos = _resonator_sos(freqs, np.append(_BANDWIDTHS, 250.0), sr)
        speech += weights[v] * sosfilt(sos, excitation)

    # Syllable envelopes (stress, declination), then consonant noise.
    stress = rng.uniform(0.55, 1.0, n_syl)
    declination = np.linspace(1.0, 0.75, n)
    envelope = uniform_filter1d(voiced * stress[syl_idx], size=max(1, int(0.02 * sr)), mode="constant") * declination
    speech *= envelope
    fricative = sosfilt(_fricative_sos(sr), rng.standard_normal(n))
    cons_env = uniform_filter1d(consonant.astype(float), size=max(1, int(0.01 * sr)), mode="constant")
    speech_rms = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    speech += p.consonant_level * speech_rms * fricative / (np.std(fricative) + 1e-12) * cons_env

    target_rms = 10 ** ((-26.0 + p.loudness_db + voice.loudness_db) / 20)
    active = voiced | consonant
    rms = np.sqrt(np.mean(speech[active] ** 2)) if active.any() else 1.0
    speech *= target_rms / max(rms, 1e-12)
    peak = np.max(np.abs(speech))
    if peak > 0.98:
        speech *= 0.98 / peak
    return speech.astype(np.float32)


# --- writing -------------------------------------------------------------------------------

_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "aiff": ("AIFF", "PCM_16")}


def _encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encoded audio bytes; the formats offered are the ones libsndfile writes reproducibly."""
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; choose one of {sorted(_FORMATS)}")
    major, subtype = _FORMATS[fmt]
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=major, subtype=subtype)
    return buf.getvalue()


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def generate_corpus(
    url: str,
    n_speakers: int = 8,
    utterances_per_emotion: int = 6,
    seed: int = 0,
    emotions: Sequence[str] = EMOTIONS,
    duration_s: tuple[float, float] = (1.5, 3.5),
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a labelled training corpus under ``url``; return its :func:`corpora.items_frame`.

    ``progress(done, total)`` is called after each file (the CLI hangs a progress bar on it).

    Speakers ``s01``..``sNN`` alternate male (odd) and female (even). Each file is drawn
    from its own random stream, so a file's content depends only on the seed and its name.
    """
    unknown = set(emotions) - set(PROSODY)
    if unknown:
        raise ValueError(f"unknown emotions {sorted(unknown)}; known: {EMOTIONS}")
    items: list[CorpusItem] = []
    for s in range(1, n_speakers + 1):
        speaker, gender = f"s{s:02d}", ("male" if s % 2 else "female")
        voice = make_voice(speaker, gender, np.random.default_rng([seed, 1, s]))
        for emotion in emotions:
            for k in range(1, utterances_per_emotion + 1):
                rng = np.random.default_rng([seed, 2, s, EMOTIONS.index(emotion), k])
                samples = synthesize_utterance(emotion, voice, rng.uniform(*duration_s), rng, sample_rate)
                name = synth_file_name(speaker, gender, emotion, k)
                path = join(url, name)
                write_bytes_atomic(path, _encode(samples, sample_rate, "wav"))
                if progress is not None:
                    progress(len(items) + 1, n_speakers * len(emotions) * utterances_per_emotion)
                items.append(parse_synth(path))
    return items_frame(items)


# --- archives ------------------------------------------------------------------------------

_MARKETS = (
    ("UK", "London", 0),
    ("DE", "Berlin", 1),
    ("US", "Chicago", -6),
    ("FR", "Lyon", 1),
    ("JP", "Osaka", 9),
)
_TOPICS = (
    ("Packaging redesign", ("First impressions of the new pack", "Ease of opening", "Price expectations", "Would you switch?")),
    ("Streaming service", ("How you watch today", "The new interface", "Ads in the cheaper plan", "Cancelling")),
    ("Banking app", ("Logging in", "Customer support", "Fees", "Recommending it to a friend")),
    ("Electric car", ("Range worries", "Charging at home", "Test drive", "Total cost")),
    ("Coffee chain", ("Morning routine", "The loyalty card", "New cup sizes", "Store atmosphere")),
)
_MODERATORS = ("A. Moreau", "B. Okafor", "C. Lindqvist", "D. Tanaka")
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_SEGMENTS = ("loyal", "lapsed", "prospect")
_SIDECARS = (None, "csv", "rttm", "mixed")

TRUTH_COLUMNS = (
    "survey_id", "session_id", "audio_file", "recorded_at", "market", "turn_index",
    "participant_id", "gender", "question", "start_s", "end_s", "emotion",
)  # fmt: skip


def _emotion_weights(emotions: Sequence[str], negativity: float) -> np.ndarray:
    neg = np.array([e in NEGATIVE_EMOTIONS for e in emotions])
    w = np.where(neg, negativity / max(neg.sum(), 1), (1 - negativity) / max((~neg).sum(), 1))
    return w / w.sum()


def _sidecar_kinds(sidecar: str | None, index: int) -> tuple[bool, bool]:
    """(turns.csv, rttm) for the session at ``index``; "mixed" cycles csv, rttm, both."""
    if sidecar is None:
        return False, False
    if sidecar == "csv":
        return True, False
    if sidecar == "rttm":
        return False, True
    return ((True, False), (False, True), (True, True))[index % 3]


def _room_tone(n: int, rng: np.random.Generator, level_db: float = -62.0) -> np.ndarray:
    """Low background noise (room tone): low-passed hiss at ``level_db`` dBFS RMS."""
    white = rng.standard_normal(n)
    hiss = uniform_filter1d(white, size=8, mode="wrap")
    tone = hiss / (np.std(hiss) + 1e-12)
    return (10 ** (level_db / 20) * tone).astype(np.float32)


def generate_archive(
    url: str,
    n_surveys: int = 2,
    sessions_per_survey: int = 3,
    participants_per_session: int = 4,
    utterances_per_session: int = 12,
    seed: int = 0,
    sidecar: str | None = "csv",
    start: date = date(2026, 1, 5),
    fmt: str = "wav",
    emotions: Sequence[str] = EMOTIONS,
    turn_duration_s: tuple[float, float] = (1.5, 3.5),
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    stickiness: float = 0.7,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a focus-group archive under ``url`` and return the truth, one row per turn.

    Surveys are ``SV01``.., sessions ``SV01-S01``.., participants ``SV01-P001``.. (each
    session has its own participants). A session's recording holds
    ``utterances_per_session`` turns separated by 0.3-1.5 s pauses over room tone; each turn
    answers one of four questions (Q1..Q4, in order). A participant's emotion persists from
    one turn to their next with probability ``stickiness``; otherwise it is drawn from the
    survey's mix, whose share of negative emotions differs between surveys and drifts over
    the weeks. ``progress(done, total)`` is called after each session recording. ``sidecar`` is ``"csv"`` (``<session>.turns.csv``), ``"rttm"``, ``"mixed"``
    (sessions cycle csv, rttm, both) or ``None``. Within a survey the audio and sidecars are
    written first and ``manifest.csv`` last, each file atomically, so a reader never sees a
    manifest pointing at missing audio.
    """
    if sidecar not in _SIDECARS:
        raise ValueError(f"sidecar must be one of {_SIDECARS}, not {sidecar!r}")
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; choose one of {sorted(_FORMATS)}")
    truth_rows: list[dict] = []
    for sv in range(1, n_surveys + 1):
        survey_id = f"SV{sv:02d}"
        rng = np.random.default_rng([seed, 10, sv])
        market, city, utc_offset = _MARKETS[(sv - 1) % len(_MARKETS)]
        topic, questions = _TOPICS[(sv - 1) % len(_TOPICS)]
        survey_start = start + timedelta(days=int(rng.integers(0, 7)))
        base_negativity = float(np.clip(0.2 + 0.45 * rng.random(), 0.05, 0.9))
        drift_per_week = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.08))
        tz = timezone(timedelta(hours=utc_offset))
        survey_url = join(url, survey_id)

        sessions, participants = [], []
        for se in range(1, sessions_per_survey + 1):
            session_id = f"{survey_id}-S{se:02d}"
            srng = np.random.default_rng([seed, 11, sv, se])
            week = (se - 1) * 7 // max(1, sessions_per_survey - 1) if sessions_per_survey > 1 else 0
            day = survey_start + timedelta(weeks=int(week), days=int(srng.integers(0, 3)))
            recorded_at = datetime.combine(day, time(int(srng.integers(10, 19)), int(srng.choice([0, 15, 30, 45]))), tz)
            negativity = float(np.clip(base_negativity + drift_per_week * week, 0.05, 0.95))
            weights = _emotion_weights(emotions, negativity)

            people = []
            for pi in range(participants_per_session):
                pid = f"{survey_id}-P{(se - 1) * participants_per_session + pi + 1:03d}"
                gender = "male" if srng.random() < 0.5 else "female"
                people.append((pid, gender, make_voice(pid.replace("-", ""), gender, srng)))
                participants.append(
                    {
                        "participant_id": pid,
                        "age_band": str(srng.choice(_AGE_BANDS)),
                        "gender": gender,
                        "market": market,
                        "segment": str(srng.choice(_SEGMENTS)),
                    }
                )

            # Turns: speakers rarely follow themselves; emotions run in sticky per-person runs.
            current: dict[str, str] = {}
            pieces: list[np.ndarray] = []
            cursor = int(round(srng.uniform(0.3, 1.0) * sample_rate))
            pieces.append(_room_tone(cursor, srng))
            previous = -1
            turns = []
            for k in range(utterances_per_session):
                choices = [i for i in range(len(people)) if i != previous] or [0]
                who = int(srng.choice(choices))
                previous = who
                pid, gender, voice = people[who]
                if pid not in current or srng.random() >= stickiness:
                    current[pid] = str(srng.choice(list(emotions), p=weights))
                emotion = current[pid]
                question = f"Q{min(4, 1 + k * 4 // max(1, utterances_per_session))}"
                speech = synthesize_utterance(emotion, voice, srng.uniform(*turn_duration_s), srng, sample_rate)
                begin, end = cursor, cursor + len(speech)
                pieces.append(speech + _room_tone(len(speech), srng))
                pause = int(round(srng.uniform(0.3, 1.5) * sample_rate))
                pieces.append(_room_tone(pause, srng))
                cursor = end + pause
                turns.append((k, pid, gender, question, begin, end, emotion))
            recording = np.concatenate(pieces)

            audio_file = f"{session_id}.{fmt}"
            write_bytes_atomic(join(survey_url, audio_file), _encode(recording, sample_rate, fmt))
            if progress is not None:
                progress((sv - 1) * sessions_per_survey + se, n_surveys * sessions_per_survey)
            frame = pd.DataFrame(
                [
                    {
                        "start_s": round(b / sample_rate, 3),
                        "end_s": round(e / sample_rate, 3),
                        "participant_id": pid,
                        "question": q,
                    }
                    for _k, pid, _g, q, b, e, _em in turns
                ]
            )
            want_csv, want_rttm = _sidecar_kinds(sidecar, se - 1)
            if want_csv:
                write_bytes_atomic(join(survey_url, f"{session_id}.turns.csv"), _csv_bytes(frame))
            if want_rttm:
                lines = [
                    f"SPEAKER {session_id} 1 {r.start_s:.3f} {r.end_s - r.start_s:.3f} <NA> <NA> {r.participant_id} <NA> <NA>\n"
                    for r in frame.itertuples()
                ]
                write_bytes_atomic(join(survey_url, f"{session_id}.rttm"), "".join(lines).encode())
            for (k, pid, gender, q, _b, _e, emotion), row in zip(turns, frame.itertuples()):
                truth_rows.append(
                    {
                        "survey_id": survey_id,
                        "session_id": session_id,
                        "audio_file": audio_file,
                        "recorded_at": recorded_at.isoformat(),
                        "market": market,
                        "turn_index": k,
                        "participant_id": pid,
                        "gender": gender,
                        "question": q,
                        "start_s": row.start_s,
                        "end_s": row.end_s,
                        "emotion": emotion,
                    }
                )
            sessions.append(
                {
                    "session_id": session_id,
                    "survey_id": survey_id,
                    "audio_file": audio_file,
                    "recorded_at": recorded_at.isoformat(),
                    "moderator": str(srng.choice(_MODERATORS)),
                    "market": market,
                    "location": city,
                    "participants": ";".join(p[0] for p in people),
                    "metadata": json.dumps(
                        {
                            "topic": topic,
                            "questions": {f"Q{i + 1}": text for i, text in enumerate(questions)},
                            "language": "en",
                            "synthetic": True,
                            "seed": seed,
                        },
                        sort_keys=True,
                    ),
                }
            )

        survey_truth = pd.DataFrame([r for r in truth_rows if r["survey_id"] == survey_id], columns=list(TRUTH_COLUMNS))
        write_bytes_atomic(join(survey_url, "_truth.csv"), _csv_bytes(survey_truth))
        write_bytes_atomic(join(survey_url, "participants.csv"), _csv_bytes(pd.DataFrame(participants)))
        write_bytes_atomic(join(survey_url, "manifest.csv"), _csv_bytes(pd.DataFrame(sessions)))
    return pd.DataFrame(truth_rows, columns=list(TRUTH_COLUMNS))
