"""An utterance's 16 kHz samples to Whisper's text and its own confidence, through the same
CTranslate2 model (and replicas) as the emotion embeddings.

Why the decoder reads the *unpadded* encoder output, and stops on its own repetition: Whisper
was trained on 30-second windows, and pads a shorter one with silence; the silence is what
tells its decoder that the speech has ended. Padding a 3-second utterance to 30 s makes the
encoder do ten times the work. Without the padding the decoder never emits its end token: it
writes the sentence, then writes it again from the start until ``max_length``. Measured on 48
RAVDESS clips (whisper-base, int8, 2 cores, 2026-12-07): padded to 30 s, WER 0.3% at 3.2x
real time; unpadded, capped at ``10 + 7 x seconds`` tokens and cut where the text restarts
its own first words, WER 0.7% at 11.6x. So: encode the utterance at its own length (at most
30 s per chunk; a longer utterance is cut into back-to-back chunks), decode greedily under
that cap, and keep the text up to where it starts over (:func:`cut_restart`).

On degraded audio the unpadded reading is the weaker one (sessions of RAVDESS clips under
simulated reverberation: WER 40% unpadded, 21% padded), and Whisper's own confidence says
when: a decode whose mean log-probability is below :data:`DOUBTFUL_LOGPROB`, or that did not
come to an end, is read again with 4 s of silence after it (:data:`REREAD_PAD_S`) and
Whisper's 5 beams. Measured (whisper-base, 2 cores, machine shared): on 96 session clips with
a noise floor, WER 10.2% with every utterance padded to 30 s (2.6x real time); re-reads
padded to 30 s 10.6% (8.4x), to 10 s 10.9% (10.9x), to +4 s 9.0% (11.7x). Under
reverberation (24 clips) the long padding does help: 20.8% at 30 s, 27.1% at +6 s, 29.2% at
+4 s. The nightly path's 8x goal with transcripts (benchmarks/nightly.py) decided: re-reads
padded to 30 s left it at 7.1x, the encoder of the re-reads two thirds of the time. Whisper's
language detection reads chunks padded to 30 s (three per session, :func:`padded`).

A genuine utterance that repeats its own first words later on is cut there too; rare in
answers to a moderator, and written down in docs/WAREHOUSE.md.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
CHUNK_S = 30.0
RESTART_WORDS = 3
"""How many of the transcript's first words must recur for the text to count as restarted."""
DOUBTFUL_LOGPROB = -0.5
"""Below this mean log-probability (or when it did not come to an end) an unpadded decode is
read again with silence after it: see the module docstring."""


@dataclass(frozen=True)
class Transcriber:
    """The Whisper model that writes transcripts: its CTranslate2 directory and identity."""

    name: str
    sha256: str
    path: Path

    @property
    def model_id(self) -> str:
        """What the warehouse's ``transcripts.model`` says: ``name@sha256[:12]``."""
        return f"{self.name}@{self.sha256[:12]}"

    @property
    def english_only(self) -> bool:
        return not _multilingual(str(self.path))


@lru_cache(maxsize=8)
def transcriber_for(encoder: str, home: Path | str) -> Transcriber:
    """The transcriber of a ``SER_ENCODER`` value (a bundled name or a CTranslate2 Whisper
    directory), assembled under ``home`` like the encoder (:func:`features.encoder.resolve_encoder`)."""
    from ser_pipeline.features.encoder import resolve_encoder

    source = resolve_encoder(encoder, home)
    return Transcriber(source.name, source.sha256, Path(source.path))


@dataclass(frozen=True)
class Heard:
    """What Whisper wrote for one utterance, before any judgement or redaction.

    ``avg_logprob``: mean log-probability per generated token (over everything it generated,
    the repetition included); ``no_speech_prob``: the probability of Whisper's no-speech token
    at the first step; ``ended``: the decoder came to an end by itself (its end token, or the
    text starting over and cut there) rather than running into its cap; ``n_tokens``: tokens
    generated (the weight of its log-probability when chunks are joined); ``encode_s``,
    ``decode_s``: the seconds each stage took."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    ended: bool
    n_tokens: int
    encode_s: float = 0.0
    decode_s: float = 0.0


@lru_cache(maxsize=4)
def _multilingual(path: str) -> bool:
    """Whisper's own rule: a multilingual model's vocabulary has at least 51 865 tokens
    (English-only: 51 864), one more than GPT-2's, which puts its end-of-text at 50 257 rather
    than 50 256. The converted ``config.json`` cannot tell: tiny.en's lists language ids too."""
    return _hf_tokenizer(path).token_to_id("<|endoftext|>") == 50_257


@lru_cache(maxsize=4)
def _hf_tokenizer(path: str) -> Any:
    import tokenizers

    return tokenizers.Tokenizer.from_file(str(Path(path) / "tokenizer.json"))


@lru_cache(maxsize=32)
def tokenizer(path: Path | str, language: str | None) -> Any:
    """faster-whisper's tokenizer of the model at ``path``, transcribing in ``language``
    (ignored by an English-only model)."""
    from faster_whisper.tokenizer import Tokenizer

    multilingual = _multilingual(str(path))
    return Tokenizer(_hf_tokenizer(str(path)), multilingual, task="transcribe", language=(language or "en") if multilingual else None)


def supported_languages(path: Path | str) -> tuple[str, ...]:
    """ISO 639-1 codes the model can write (``("en",)`` for an English-only model)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES) if _multilingual(str(path)) else ("en",)


def chunks(samples: np.ndarray) -> list[np.ndarray]:
    """``samples`` cut into back-to-back pieces of at most 30 s (the encoder's window)."""
    size = int(CHUNK_S * SAMPLE_RATE)
    return [samples[i : i + size] for i in range(0, max(len(samples), 1), size)]


def padded(samples: np.ndarray, silence_s: float | None = None) -> np.ndarray:
    """``samples`` followed by ``silence_s`` of silence (None: up to 30 s, as Whisper was
    trained), at most 30 s in all."""
    size = int(CHUNK_S * SAMPLE_RATE)
    x = np.asarray(samples, dtype=np.float32)[:size]
    total = size if silence_s is None else min(size, len(x) + int(silence_s * SAMPLE_RATE))
    return np.pad(x, (0, max(0, total - len(x))))


def encode(model: Any, samples: np.ndarray) -> Any:
    """The encoder's output for one chunk at its own length, on the model's device, ready to
    decode (the emotion embeddings' own encoder pass, :func:`features.encoder.encode_window`)."""
    from ser_pipeline.features.encoder import encode_window

    return encode_window(model, samples, to_cpu=False)


def detect_language(model: Any, encoded: Any) -> dict[str, float]:
    """Language probabilities ``{code: p}`` for one encoded chunk (multilingual models only)."""
    pairs = model.detect_language(encoded)[0]
    return {token.strip("<|>"): float(p) for token, p in pairs}


def max_tokens(duration_s: float) -> int:
    """The decoder's cap for ``duration_s`` of speech: room for the text once (even fast
    speech is under 5 tokens a second) and for the first tokens of its restart."""
    return int(10 + 7 * duration_s)


def _word_key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def cut_restart(text: str, capped: bool, min_words: int = RESTART_WORDS) -> tuple[str, bool]:
    """``text`` up to where it begins again, and whether it did: the first word ``p`` from which
    the next ``min_words`` words (case and punctuation aside) are the text's first ones, or its
    first ones after a leading word (the decoder's second pass often drops a "The" or "So").
    When the decode was ``capped`` its tail may hold only the start of the repetition, so a
    shorter match running to the end counts too (at least one word)."""
    words = text.split()
    keys = [_word_key(w) for w in words]
    n = len(words)
    for p in range(1, n):
        for skip in (0, 1):
            head = keys[skip : skip + min_words]
            if p <= skip or len(head) < min(min_words, 2) or (skip and n - skip < min_words):
                continue
            tail = keys[p : p + len(head)]
            if tail == head[: len(tail)] and (len(tail) == len(head) or (capped and p + len(tail) == n)):
                return " ".join(words[:p]), True
    return text, False


BEAM_PADDED = 5
"""The second reading searches 5 beams, as Whisper's reference decoder does."""
REREAD_PAD_S = 4.0
"""Silence after the utterance in the second reading (30 would be Whisper's full window)."""


def decode(model: Any, encoded: Any, duration_s: float, path: Path | str, language: str | None,
           beam_size: int = 1) -> Heard:
    """One encoded chunk in ``language`` (greedy unless ``beam_size``), at most
    :func:`max_tokens` of ``duration_s``, cut where it restarts (see the module docstring)."""
    start = time.perf_counter()
    tok = tokenizer(path, language)
    prompt = list(tok.sot_sequence) + [tok.no_timestamps]
    cap = max_tokens(duration_s)
    result = model.generate(
        encoded, [prompt], beam_size=beam_size, max_length=cap, return_scores=True,
        return_no_speech_prob=True, suppress_blank=True,
    )[0]
    generated = [i for i in result.sequences_ids[0] if i < tok.eot]
    capped = len(prompt) + len(result.sequences_ids[0]) >= cap
    # Even a decode that ends by itself may have started over first ("The dogs ... Dogs are ...").
    text, restarted = cut_restart(tok.decode(generated).strip(), capped)
    # CTranslate2's score is the cumulative log-probability divided by the length (length_penalty 1).
    avg_logprob = float(result.scores[0]) if generated else -math.inf
    return Heard(text, avg_logprob, float(result.no_speech_prob), restarted or not capped, len(generated),
                 decode_s=time.perf_counter() - start)


def hear(model: Any, samples: np.ndarray, path: Path | str, language: str | None) -> Heard:
    """One utterance (16 kHz float32 ``(n,)``) written down: each 30 s chunk encoded and
    decoded, the texts joined; the confidence is the token-weighted mean log-probability and
    the lowest no-speech probability of the chunks (speech anywhere is speech)."""
    parts, encode_s, decode_s = [], 0.0, 0.0
    for chunk in chunks(samples):
        start = time.perf_counter()
        encoded = encode(model, chunk)
        encode_s += time.perf_counter() - start
        heard = decode(model, encoded, len(chunk) / SAMPLE_RATE, path, language)
        decode_s += heard.decode_s
        if heard.avg_logprob < DOUBTFUL_LOGPROB or not heard.ended:
            start = time.perf_counter()
            encoded = encode(model, padded(chunk, REREAD_PAD_S))
            encode_s += time.perf_counter() - start
            heard = decode(model, encoded, len(chunk) / SAMPLE_RATE, path, language, beam_size=BEAM_PADDED)
            decode_s += heard.decode_s
        parts.append(heard)
    n = sum(p.n_tokens for p in parts)
    logprob = sum(p.avg_logprob * p.n_tokens for p in parts) / n if n else parts[0].avg_logprob
    return Heard(" ".join(p.text for p in parts if p.text), logprob, min(p.no_speech_prob for p in parts),
                 all(p.ended for p in parts), n, encode_s, decode_s)
