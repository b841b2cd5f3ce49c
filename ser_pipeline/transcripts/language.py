"""The language a session's transcripts are written in: the manifest's ``language`` column
when it gives one (set per survey), else detected per session by the model from the session's
first utterances. A model that cannot write that language (an English-only model and a
German session) refuses the session with a reason: its utterances are stored empty, never
transcribed as English-sounding gibberish.

An English-only model cannot detect a language: without a manifest language it assumes
English and says so (``language_source`` "english-only model"); a survey in another language
names its language in the manifest or uses a multilingual model (whisper-base, the default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ser_pipeline.transcripts.whisper import Transcriber, supported_languages

PROBE_UTTERANCES = 3
"""Utterances of a session (its first ones of at least a second) whose language probabilities are summed."""


@dataclass(frozen=True)
class SessionLanguage:
    """``language`` (ISO 639-1) to write in and where it came from (``source``: manifest,
    detected, english-only model), the detection's mean ``probability``, or ``refusal``: why
    the session is not transcribed (then ``language`` is what it is spoken in, if known)."""

    language: str | None
    source: str
    probability: float | None = None
    refusal: str | None = None


def _refusal(transcriber: Transcriber, language: str, source: str) -> str | None:
    if language in supported_languages(transcriber.path):
        return None
    if transcriber.english_only:
        return f"{transcriber.name} writes English only; the session is in '{language}' ({source})"
    return f"{transcriber.name} cannot write language '{language}' ({source})"


def session_language(transcriber: Transcriber, manifest_language: str | None,
                     probes: Callable[[], Iterable[dict[str, float]]]) -> SessionLanguage:
    """The session's language: ``manifest_language`` when given, else (multilingual models)
    the language with the highest summed probability over ``probes()``, the detection's
    probabilities of the session's first utterances (called only when needed)."""
    if manifest_language:
        return SessionLanguage(manifest_language, "manifest", None, _refusal(transcriber, manifest_language, "manifest"))
    if transcriber.english_only:
        return SessionLanguage("en", "english-only model")
    totals: dict[str, float] = {}
    n = 0
    for probabilities in probes():
        n += 1
        for code, p in probabilities.items():
            totals[code] = totals.get(code, 0.0) + p
    if not totals:
        return SessionLanguage(None, "detected", None, "no utterance long enough to detect the language")
    language = max(totals, key=totals.get)
    return SessionLanguage(language, "detected", totals[language] / n, _refusal(transcriber, language, "detected"))
