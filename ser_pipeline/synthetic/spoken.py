"""Spoken sentences with real words: espeak-ng (the library and voice data inside the
``espeakng-loader`` wheel; nothing is downloaded) says one line of a market-research script in
a speaker's voice, acted in an emotion.

Why: the formant synthesiser (:mod:`.speech`) has no phonetics, so a speech encoder trained on
real speech hears it poorly, and no transcript can be checked against it. (A probe: whisper-base
embeddings standardised per speaker, a linear classifier, 4-fold speaker CV over 24 voices x 2
takes x 8 emotions, a random line per take: UAR ~0.69 formant, ~0.78 spoken; over 96 voices,
~0.79 and ~0.89.) Here the words are real English, and the emotion
changes what an actor changes. Whisper's encoder barely registers voice colour (formants,
spectral tilt, loudness: it is built to ignore the speaker), but it does hear timing and
phonation, so the emotions differ most in those: the speaking rate, the rhythm within the
sentence (:func:`word_tempo`), pauses (:data:`PAUSES`), emphasis (:func:`word_emphasis`),
breathiness; then pitch level, range and contour, the final tune (:data:`ENDINGS`),
and voice quality (tilt, roughness, pitch instability).

How espeak-ng is driven: through ctypes, in synchronous mode, a callback collecting its 16-bit
samples at 22.05 kHz, the sentence given as SSML (a pitch, rate and emphasis per word, breaks
between words). Each utterance gets its own voice file: the accent's language file, the
speaker's espeak variant with its formants scaled by the speaker's vocal tract and the
emotion's formant shift, then the emotion's pitch span, breath, flutter, roughness, consonant
level and spectral tilt (:func:`voice_file_text`).

Where espeak-ng runs: never in the calling process. libespeak-ng keeps synthesis state (filters,
pitch, its noise generator) in globals that ``espeak_Terminate`` does not reset, so a library
kept loaded would give different samples for the same call depending on what was spoken
before. This module used to load the library afresh for each utterance and unload it with
``dlclose``; the full test suite then died of a segmentation fault inside these tests (which
pass alone) in a process holding TensorFlow, torch, CTranslate2, numba's LLVM and Prefect's
worker threads. Unloading native code from such a process is unsafe in general, and each load
also ran everything else the library does to its host in the caller: ``setlocale`` on every
initialisation (not thread-safe), its allocations and any memory error of its own. So a small
helper process is started on first use (``_espeak_helper.py`` run by the same Python with
``-I -S``: standard library only, single-threaded); it loads and initialises libespeak-ng once
and, for each utterance, forks a child that sets up the voice, synthesises, writes the int16
samples back through a pipe and exits. Every child starts from the same library state, the one
just after ``espeak_Initialize`` (the samples are bit-identical to the old load-per-utterance
ones), with the noise seed drawn from the caller's generator: the same call gives the same
samples whatever was spoken before, nothing is ever unloaded, and a crash in espeak kills only
the child. Forking a single-threaded process is safe; the round trip adds a few milliseconds an
utterance. A lock serialises the calls from the caller's threads (Dask's included); a process
forked from the caller starts its own helper. If the helper or its child dies, the call raises
naming the speaker, emotion and words, and the next call starts a new helper. The helper is
shut down at exit, and exits by itself when the caller's end of its stdin closes.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.synthetic.speech import _vary
from ser_pipeline.synthetic.voices import DEFAULT_SAMPLE_RATE, PROSODY, Prosody, Voice

ESPEAK_SAMPLE_RATE = 22_050

SCRIPT: tuple[str, ...] = (
    "the price is too high for what it does",
    "i would buy it again tomorrow",
    "the new pack is hard to open",
    "i did not expect the app to be this fast",
    "nobody told us about the extra fees",
    "my kids love the taste of it",
    "the support line kept me waiting for an hour",
    "it looks cheaper than the old one",
    "i would switch if the range was better",
    "the loyalty card is the only reason i stay",
    "the adverts in the cheap plan drive me mad",
    "charging at home was easier than i thought",
    "the coffee tasted burnt this morning",
    "i cancelled after the second month",
    "the colours on the box look fresh and clean",
    "i never know which button to press",
    "it works well enough for the money",
    "my friend told me about it last week",
    "the bottle leaks when you carry it in a bag",
    "the test drive was over far too quickly",
    "i watch most shows on my phone now",
    "the new cup sizes are confusing",
    "logging in takes me three tries every time",
    "i would tell my sister to try it",
    "the shop was loud and the music was awful",
    "they changed the recipe without asking anyone",
    "the screen is bright and easy to read",
    "i only use it on the weekend",
    "the delivery came two days late",
    "i think the old design was better",
    "it is exactly what i was hoping for",
    "the fees went up again in january",
)
"""Short answers a focus-group participant might give; none of them tied to one emotion."""

ACCENTS: tuple[str, ...] = ("gmw/en-US", "gmw/en", "gmw/en-GB-x-rp", "gmw/en-US-nyc")
"""Language files (under the data's ``lang/``) a speaker's accent is drawn from."""

VARIANTS: dict[str, tuple[str, ...]] = {
    "male": ("m1", "m2", "m3", "m4", "m6", "m7"),
    "female": ("f1", "f2", "f3", "f4", "f5"),
}
"""espeak voice variants (under ``voices/!v/``) that give each gender its timbres."""

PAUSES: dict[str, tuple[float, float]] = {
    "neutral": (0.05, 0.15),
    "calm": (0.02, 0.20),
    "happy": (0.0, 0.10),
    "sad": (0.35, 0.50),
    "angry": (0.50, 0.10),
    "fearful": (0.15, 0.20),
    "disgust": (0.10, 0.25),
    "surprised": (0.08, 0.20),
}
"""Per emotion: the chance of a pause after a word and its mean length (s, exponential). Sadness
halts, fear hesitates, anger clips its words apart, happiness flows."""

ENDINGS: dict[str, str] = {
    "neutral": ".", "calm": ".", "happy": "!", "sad": ".",
    "angry": "!", "fearful": "?", "disgust": ".", "surprised": "?",
}
"""Per emotion: the closing punctuation, which picks espeak's final tune (statement falling,
exclamation, question rising)."""

_FUNCTION_WORDS = frozenset(
    "a an the i it is was to of for in on at my me we us our you your and or but if than that this "
    "what which when with by be are am do does did not no so too as about after from".split()
)
_DROPPED_KEYS = frozenset({"name", "language", "gender", "pitch", "formant", "maintainer", "status"})
_TONE_HZ = (600, 1200, 2000, 3000)
_TONE_DEFAULT = (170, 135, 110, 110)

_HELPER_SCRIPT = Path(__file__).with_name("_espeak_helper.py")
_LENGTH = struct.Struct("<Q")
_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class Spoken:
    """One spoken sentence: float32 mono ``samples`` ``(n,)`` at ``sample_rate`` and its ``text``
    (lower case, words separated by single spaces, no punctuation)."""

    samples: np.ndarray
    text: str
    sample_rate: int

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


@dataclass(frozen=True)
class Delivery:
    """One utterance's voice settings in espeak's terms: ``rate_wpm`` words per minute, pitch span
    ``pitch_base_hz``..``pitch_top_hz``, ``wordgap`` in 10 ms units, ``breath``, ``flutter``,
    ``roughness`` and ``consonants`` as in espeak voice files, ``tilt`` the spectral tilt (>0
    darker, <0 brighter), ``formant_shift`` the factor on all formants, ``ending`` the closing
    punctuation, ``level_db`` the speech RMS (dBFS); ``slope_st_s`` and ``accent_st`` shape the
    per-word pitch contour, ``syllables_s`` estimates the tempo for it."""

    rate_wpm: int
    pitch_base_hz: float
    pitch_top_hz: float
    wordgap: int
    breath: float
    flutter: float
    roughness: int
    consonants: int
    tilt: float
    formant_shift: float
    ending: str
    level_db: float
    slope_st_s: float
    accent_st: float
    syllables_s: float


def delivery(prosody: Prosody, voice: Voice, emotion: str = "neutral") -> Delivery:
    """Map an (already varied) emotion prosody and a speaker's voice onto espeak's controls.

    The formant synthesiser's prototypes (:data:`PROSODY`) are the input, their differences
    from neutral widened because the encoder hears them less than they are: the pitch ratio to
    the 1.5th power, the rate ratio (syllables/s over neutral's 4.2, espeak's default 175 wpm)
    to the 1.3th, slow speech also spacing its words; the semitone range becomes espeak's
    pitch span (at most 16 semitones), placed so the speaker's f0 times the ratio sits at 60 %
    of it; breathiness, jitter and tremor, shimmer, consonant level and open quotient become
    breath, flutter, roughness, consonant amplitude and spectral tilt. The rate stops at 250 wpm,
    beyond which espeak's words blur even for Whisper.
    """
    f0 = voice.f0_hz * prosody.f0_ratio**1.5
    span_st = min(1.0 + 2.5 * prosody.range_st, 16.0)
    base = f0 * 2 ** (-0.6 * span_st / 12)
    rate = (prosody.rate_syl_s / 4.2) ** 1.3
    return Delivery(
        rate_wpm=int(round(np.clip(175.0 * rate * voice.rate_factor, 80, 250))),
        pitch_base_hz=float(base),
        pitch_top_hz=float(base * 2 ** (span_st / 12)),
        wordgap=int(round(max(0.0, 4.0 * (1.0 / rate - 1.0)))),
        breath=float(250.0 * (prosody.breathiness + voice.breathiness) ** 1.3),
        flutter=float(1.0 + 100.0 * (prosody.jitter + voice.jitter) + 8.0 * prosody.tremor_st),
        roughness=int(np.clip(round(90.0 * prosody.shimmer), 0, 7)),
        consonants=int(round(100.0 * (prosody.consonant_level / 0.35) ** 2)),
        tilt=float(2.5 * (prosody.open_quotient + voice.open_quotient - 0.6) / 0.2),
        formant_shift=float(prosody.formant_shift),
        ending=ENDINGS[emotion],
        level_db=float(-26.0 + prosody.loudness_db + voice.loudness_db),
        slope_st_s=float(prosody.slope_st_s),
        accent_st=float(0.5 * prosody.range_st),
        syllables_s=float(4.2 * rate),
    )


def word_tempo(emotion: str, words: list[str], rng: np.random.Generator) -> np.ndarray:
    """Rate multipliers ``(n_words,)``, the emotion's rhythm on top of its overall rate: sadness
    slows down towards the end, disgust drawls the content words and hurries the rest, surprise
    stretches the last word, fear rushes unevenly, happiness bounces (quick small words,
    lingering content words), anger clips every word alike, calm draws every word out a little,
    neutral speech stays even (5 % jitter on all)."""
    n = len(words)
    position = np.arange(n) / max(n - 1, 1)
    content = np.array([w not in _FUNCTION_WORDS for w in words])
    jitter = np.exp(0.05 * rng.standard_normal(n))
    if emotion == "sad":
        tempo = 1.15 - 0.45 * position
    elif emotion == "disgust":
        tempo = np.where(content, 0.5, 1.4)
    elif emotion == "surprised":
        tempo = np.where(position == 1.0, 0.5, 1.1)
    elif emotion == "fearful":
        tempo = np.exp(0.3 * rng.standard_normal(n))
    elif emotion == "happy":
        tempo = np.where(content, 0.85, 1.25)
    elif emotion == "angry":
        tempo = np.full(n, 1.1)
    elif emotion == "calm":
        tempo = np.full(n, 0.9)
    else:
        tempo = np.ones(n)
    return tempo * jitter


def word_emphasis(emotion: str, words: list[str]) -> np.ndarray:
    """Which words get SSML emphasis, ``(n_words,)`` bool: every content word in anger (the
    hammered "the PRICE is TOO HIGH"), the last word in surprise, none otherwise."""
    n = len(words)
    if emotion == "angry":
        return np.array([w not in _FUNCTION_WORDS for w in words])
    if emotion == "surprised":
        return np.arange(n) == n - 1
    return np.zeros(n, bool)


def ssml(words: list[str], emotion: str, d: Delivery, rng: np.random.Generator) -> str:
    """The sentence as SSML, one ``<prosody>`` per word: a pitch offset (the delivery's contour
    slope over the sentence's estimated length, 1.3 syllables a word, plus a random accent of up
    to ``accent_st`` semitones peak to peak, half the prosody's range: a wider one blurs the
    words), the emotion's tempo and emphasis, and its pauses as ``<break>`` after words. The
    closing punctuation stays inside the last word's element: outside it espeak reads it out
    ("dot")."""
    n = len(words)
    duration = 1.3 * n / d.syllables_s
    position = (np.arange(n) + 0.5) / n - 0.5
    semitones = d.slope_st_s * duration * position + rng.uniform(-0.5, 0.5, n) * d.accent_st
    chance, mean_s = PAUSES[emotion]
    breaks = (rng.random(n) < chance) * rng.exponential(mean_s, n)
    breaks[-1] = 0.0
    tempo = word_tempo(emotion, words, rng)
    emphasis = word_emphasis(emotion, words)
    said = [*words[:-1], words[-1] + d.ending]
    parts = [
        f'<prosody pitch="{100 * (2 ** (st / 12) - 1):+.0f}%" rate="{100 * r:.0f}%">'
        + (f"<emphasis>{w}</emphasis>" if e else w)
        + "</prosody>"
        + (f'<break time="{1000 * b:.0f}ms"/>' if b > 0.02 else "")
        for w, st, b, r, e in zip(said, semitones, breaks, tempo, emphasis)
    ]
    return "<speak>" + " ".join(parts) + "</speak>"


@lru_cache(maxsize=1)
def _espeak_paths() -> tuple[str, str]:
    """(shared library, data directory) inside the espeakng-loader wheel."""
    import espeakng_loader

    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


@lru_cache(maxsize=64)
def _data_file(relative: str) -> str:
    return (Path(_espeak_paths()[1]) / relative).read_text()


def timbre(voice: Voice) -> tuple[str, str]:
    """(accent, variant) of ``voice``, fixed by its speaker id (crc32) so a speaker keeps them."""
    key = zlib.crc32(voice.speaker.encode())
    variants = VARIANTS[voice.gender]
    return ACCENTS[key % len(ACCENTS)], variants[(key // len(ACCENTS)) % len(variants)]


def _formant_lines(variant_text: str, factor: float) -> list[str]:
    """The variant's ``formant n freq% height% width% [add]`` lines with freq% times ``factor``
    (formants the variant leaves out start at 100 %). One factor for all formants, as a
    vocal tract's length or a smile shifts them: shifting F2 against F1 would change the vowels."""
    table = {n: [100, 100, 100] for n in range(9)}
    for line in variant_text.splitlines():
        parts = line.split("//")[0].split()
        if len(parts) >= 5 and parts[0] == "formant":
            table[int(parts[1])] = [int(p) for p in parts[2:]]
    return [
        "formant " + " ".join(str(v) for v in [n, int(round(values[0] * factor)), *values[1:]])
        for n, values in sorted(table.items())
    ]


def voice_file_text(voice: Voice, d: Delivery) -> str:
    """The espeak voice file of one utterance: the accent's language file, the speaker's variant
    (formants scaled by the speaker's vocal-tract factor relative to its gender and by the
    delivery's shift), then the delivery's pitch span, breath (aspiration noise, half on F1),
    flutter, roughness, consonant level and spectral tilt (``tone``: espeak's default amplitudes
    at 600..3000 Hz times (f/600)^(-tilt/2))."""
    accent, variant = timbre(voice)
    variant_text = _data_file(f"voices/!v/{variant}")
    keep = [
        line for line in variant_text.splitlines()
        if line.split() and line.split()[0] not in _DROPPED_KEYS and not line.startswith("//")
    ]
    scale = voice.formant_scale / (1.0 if voice.gender == "male" else 1.15)
    tone = [int(np.clip(a * (f / 600.0) ** (-0.5 * d.tilt), 20, 255)) for f, a in zip(_TONE_HZ, _TONE_DEFAULT)]
    breath = [0] + [int(round(d.breath * w)) for w in (0.5, 1, 1, 1, 1, 1, 1)]
    lines = [
        _data_file(f"lang/{accent}"),
        f"gender {voice.gender}",
        *keep,
        *_formant_lines(variant_text, scale * d.formant_shift),
        f"pitch {int(round(d.pitch_base_hz))} {int(round(d.pitch_top_hz))}",
        "breath " + " ".join(map(str, breath)),
        f"flutter {int(round(d.flutter))}",
        f"roughness {d.roughness}",
        f"consonants {d.consonants} {d.consonants}",
        "tone " + " ".join(f"{f} {a}" for f, a in zip(_TONE_HZ, tone)),
    ]
    return "\n".join(lines) + "\n"


class _Helper:
    """The caller's end of one ``_espeak_helper.py`` process (see the module docstring)."""

    def __init__(self) -> None:
        library, data = _espeak_paths()
        command = [sys.executable, "-I", "-S", str(_HELPER_SCRIPT), library, data]
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as err:
            raise RuntimeError(f"could not start the espeak-ng helper {command[:4]}: {err}") from err
        self.pid = os.getpid()
        try:
            status, payload = self._reply()
        except BaseException:
            self.close(timeout_s=0.0)
            raise
        if status != b"O":
            self.close(timeout_s=0.0)
            raise RuntimeError(f"the espeak-ng helper failed to start: {payload.decode(errors='replace')}")

    def _reply(self) -> tuple[bytes, bytes]:
        head = self.process.stdout.read(1 + _LENGTH.size)
        if len(head) == 1 + _LENGTH.size:
            n = _LENGTH.unpack(head[1:])[0]
            payload = self.process.stdout.read(n)
            if len(payload) == n:
                return head[:1], payload
        self.close(timeout_s=1.0)
        raise _HelperDied(f"the espeak-ng helper process (pid {self.process.pid}) died "
                          f"({_exit_description(self.process.returncode)})")

    def ask(self, request: dict) -> tuple[bytes, bytes]:
        body = json.dumps(request).encode()
        try:
            self.process.stdin.write(_LENGTH.pack(len(body)) + body)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            self.close(timeout_s=1.0)
            raise _HelperDied(f"the espeak-ng helper process (pid {self.process.pid}) died "
                              f"({_exit_description(self.process.returncode)})") from err
        return self._reply()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.process.poll() is None

    def close(self, timeout_s: float = 5.0) -> None:
        """Close its stdin (it exits at the end of its loop), wait, kill it if it lingers."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _HelperDied(RuntimeError):
    pass


def _exit_description(code: int | None) -> str:
    if code is None:
        return "still running, killed"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


_helper: _Helper | None = None


def _shutdown() -> None:
    """At exit: stop this process's helper."""
    global _helper
    helper, _helper = _helper, None
    if helper is not None and helper.pid == os.getpid():
        helper.close()


def _forget_helper_after_fork() -> None:
    """In a child forked from the caller: the parent's helper and lock are the parent's. Close
    this copy of the helper's pipes (so the helper still sees its stdin close when the parent
    exits; the file objects are kept, never to close those descriptor numbers again) and start
    afresh on first use."""
    global _helper, _LOCK
    helper, _helper = _helper, None
    _LOCK = threading.Lock()
    if helper is not None:
        _orphans.append(helper)
        for stream in (helper.process.stdin, helper.process.stdout):
            try:
                os.close(stream.fileno())
            except (OSError, ValueError):
                pass


_orphans: list[_Helper] = []
atexit.register(_shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper_after_fork)


def _said(markup: str) -> str:
    """The words of an SSML ``markup``, for error messages."""
    return " ".join(re.sub(r"<[^>]*>", " ", markup).split())


def synthesize(markup: str, voice_text: str, rate_wpm: int, wordgap: int, volume: int, seed: int) -> np.ndarray:
    """espeak-ng's int16 samples ``(n,)`` at 22.05 kHz for SSML ``markup`` in the voice file
    ``voice_text``, from the library's state just after initialisation with its noise generator
    started at ``seed`` (in a child of the helper process; see the module docstring)."""
    global _helper
    request = {"markup": markup, "voice": voice_text, "rate": int(rate_wpm), "wordgap": int(wordgap),
               "volume": int(volume), "seed": int(seed)}
    with _LOCK:
        if _helper is None or not _helper.alive():
            _helper = _Helper()
        helper = _helper
        try:
            status, payload = helper.ask(request)
        except _HelperDied as err:
            _helper = None
            raise RuntimeError(f"espeak-ng could not say {_said(markup)!r}: {err}") from None
        except BaseException:
            # Interrupted half-way (KeyboardInterrupt, ...): the pipe is out of step, start afresh.
            _helper = None
            helper.close(timeout_s=0.0)
            raise
    if status != b"O":
        raise RuntimeError(f"espeak-ng could not say {_said(markup)!r}: {payload.decode(errors='replace')}")
    return np.frombuffer(payload, dtype=np.int16).copy()


def _active(x: np.ndarray, sample_rate: int, floor_db: float = -35.0) -> np.ndarray:
    """Boolean ``(n,)``: the samples of 10 ms frames within ``floor_db`` of the loudest frame."""
    hop = max(1, sample_rate // 100)
    n = len(x) // hop * hop
    if n == 0:
        return np.ones(len(x), bool)
    energy = (x[:n].reshape(-1, hop) ** 2).mean(axis=1)
    loud = energy > energy.max() * 10 ** (floor_db / 10)
    return np.concatenate([np.repeat(loud, hop), np.full(len(x) - n, loud[-1])])


def speak(
    emotion: str,
    voice: Voice,
    rng: np.random.Generator,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    text: str | None = None,
) -> Spoken:
    """``voice`` says ``text`` (default: a line of :data:`SCRIPT` drawn from ``rng``) in ``emotion``.

    The emotion's :data:`PROSODY` prototype is varied per utterance from ``rng`` as the formant
    synthesiser varies it, then mapped by :func:`delivery` and :func:`ssml`. Samples are float32
    ``(n,)`` at ``sample_rate``: the speech with espeak's own silences trimmed, 30-120 ms of
    silence added before and after, its RMS over active frames at the delivery's level (about
    -26 dBFS for neutral), peaks inside [-1, 1]. Deterministic in ``rng``'s state.
    """
    if emotion not in PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; known: {EMOTIONS}")
    if text is None:
        text = SCRIPT[int(rng.integers(len(SCRIPT)))]
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        raise ValueError(f"nothing to say in {text!r}")
    d = delivery(_vary(PROSODY[emotion], rng), voice, emotion)
    volume = int(round(np.clip(100 * 10 ** ((d.level_db + 26.0) / 40), 50, 200)))
    seed = int(rng.integers(1, 2**31 - 1))
    try:
        raw = synthesize(ssml(words, emotion, d, rng), voice_file_text(voice, d), d.rate_wpm, d.wordgap, volume, seed)
    except RuntimeError as err:
        accent, variant = timbre(voice)
        raise RuntimeError(f"speaker {voice.speaker!r} ({voice.gender}, {accent}, variant {variant}), "
                           f"{emotion}: {err}") from err
    x = raw.astype(np.float64) / 32768.0
    active = np.flatnonzero(_active(x, ESPEAK_SAMPLE_RATE))
    x = x[active[0] : active[-1] + 1] if len(active) else x
    if sample_rate != ESPEAK_SAMPLE_RATE:
        x = soxr.resample(x, ESPEAK_SAMPLE_RATE, sample_rate, quality="HQ")
    lead, trail = (rng.uniform(0.03, 0.12, 2) * sample_rate).astype(int)
    x = np.concatenate([np.zeros(lead), x, np.zeros(trail)])
    rms = math.sqrt(float(np.mean(x[_active(x, sample_rate)] ** 2)) or 1e-24)
    x *= 10 ** (d.level_db / 20) / rms
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.98:
        x *= 0.98 / peak
    return Spoken(samples=x.astype(np.float32), text=" ".join(words), sample_rate=int(sample_rate))
