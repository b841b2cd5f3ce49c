"""What is stored empty instead of invented: Whisper writes fluent text over silence, noise or
music (a hallucination), so a transcript is judged before it is kept.

The thresholds are Whisper's own (its reference decoder's ``no_speech_threshold`` 0.6 with
``logprob_threshold`` -1.0, and ``compression_ratio_threshold`` 2.4 for repetitive text). On
RAVDESS speech decoded unpadded (:mod:`.whisper`) the no-speech probability sits between 0.35
and 0.6 with a mean log-probability near -0.1; over silence or noise it is ~0.9 with ~-1.8.
A reason never quotes the text: reasons reach the run's report and logs.
"""

from __future__ import annotations

import re
import zlib

from ser_pipeline.transcripts.whisper import Heard

NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
SURE_NO_SPEECH_PROB = 0.9
"""Past this no-speech probability a merely middling log-probability (below -0.5) is not speech
either: Whisper's "you" over three seconds of digital silence scores -0.98, just inside its own
-1.0 rule."""
MAX_COMPRESSION_RATIO = 2.4
REPEATS = 4
"""A phrase said this many times in a row is taken for Whisper looping, not for the speaker
(people do say "no, no, no": three times is left alone)."""

_REPEATED_PHRASE = re.compile(r"\b(\w+(?:\W+\w+){0,5}?)(?:\W+\1\b){%d,}" % (REPEATS - 1), re.IGNORECASE)


def reason_kind(reason: str) -> str:
    """An empty reason without its figures: "no speech (no-speech probability 0.70, ...)" ->
    "no speech" (what the report and the demo count by)."""
    for stop in (" (", ":", ";"):
        reason = reason.split(stop, 1)[0]
    return reason


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (Whisper's repetition measure)."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def empty_reason(heard: Heard) -> str | None:
    """Why ``heard`` must not be stored as text, or None when it can."""
    if (heard.no_speech_prob > NO_SPEECH_PROB and heard.avg_logprob < LOW_LOGPROB) or (
            heard.no_speech_prob > SURE_NO_SPEECH_PROB and heard.avg_logprob < LOW_LOGPROB / 2):
        return (f"no speech (no-speech probability {heard.no_speech_prob:.2f}, "
                f"mean log-probability {heard.avg_logprob:.2f})")
    if not re.search(r"\w", heard.text):
        return "no words heard"
    ratio = compression_ratio(heard.text)
    if ratio > MAX_COMPRESSION_RATIO:
        return f"repeated phrase (hallucination-like: compression ratio {ratio:.1f})"
    if _REPEATED_PHRASE.search(heard.text):
        return f"repeated phrase (hallucination-like: a phrase said {REPEATS}+ times in a row)"
    if not heard.ended:
        return f"the decoder did not come to an end within {heard.n_tokens} tokens (hallucination-like)"
    return None
