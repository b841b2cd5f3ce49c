"""A nightly batch's utterances written down: the warehouse's ``transcripts`` rows, text judged
(:mod:`.quality`) and redacted (:mod:`.redaction`) before it leaves this function.

The audio is decoded again at 16 kHz, per recording stretch as the features do, and each
utterance goes through the encoder once more for its text. Sharing the emotion embeddings'
encoder pass would save that first pass (benchmarks/nightly.py prints the encode and decode
seconds apart), but a session's language must be known before its first utterance is
decoded, and the labelling model need not be an encoder model at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.transcripts.language import PROBE_UTTERANCES, SessionLanguage, session_language
from ser_pipeline.transcripts.quality import reason_kind
from ser_pipeline.transcripts.whisper import SAMPLE_RATE, Transcriber, detect_language, encode, hear, padded


@dataclass(frozen=True)
class BatchTranscripts:
    """The batch's transcript rows (``warehouse.loads.TRANSCRIPT_COLUMNS``) and the seconds
    spent (``audio``: decode and resample; ``encode`` and ``decode``: summed over threads)."""

    frame: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def empty_reasons(self) -> dict[str, int]:
        """How many utterances were stored empty, per kind of reason (:func:`.quality.reason_kind`)."""
        return self.frame["empty_reason"].dropna().map(reason_kind).value_counts().to_dict()


def transcripts_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    from ser_pipeline.warehouse.loads import TRANSCRIPT_COLUMNS

    return pd.DataFrame(list(rows), columns=list(TRANSCRIPT_COLUMNS))


def _row(utterance_id: str, transcriber: Transcriber, language: SessionLanguage, text: str = "",
         empty_reason: str | None = None, avg_logprob: float | None = None, no_speech_prob: float | None = None,
         n_redacted: int = 0) -> dict[str, Any]:
    return {
        "utterance_id": utterance_id, "model": transcriber.model_id, "text": text,
        "language": language.language, "language_source": language.source,
        "language_probability": language.probability, "avg_logprob": avg_logprob,
        "no_speech_prob": no_speech_prob, "empty_reason": empty_reason, "n_redacted": n_redacted,
    }


def transcribe_utterance(model: Any, transcriber: Transcriber, utterance_id: str, samples: np.ndarray,
                         language: SessionLanguage) -> tuple[dict[str, Any], float, float]:
    """One utterance's row (judged, redacted) and its encode and decode seconds."""
    from ser_pipeline.transcripts.quality import empty_reason
    from ser_pipeline.transcripts.redaction import redact

    if language.refusal:
        return _row(utterance_id, transcriber, language, empty_reason=language.refusal), 0.0, 0.0
    heard = hear(model, samples, transcriber.path, language.language)
    reason = empty_reason(heard)
    logprob = heard.avg_logprob if np.isfinite(heard.avg_logprob) else None
    if reason:
        row = _row(utterance_id, transcriber, language, empty_reason=reason, avg_logprob=logprob,
                   no_speech_prob=heard.no_speech_prob)
    else:
        redacted = redact(heard.text)
        row = _row(utterance_id, transcriber, language, redacted.text, None, logprob, heard.no_speech_prob,
                   redacted.n_redacted)
    return row, heard.encode_s, heard.decode_s


def _probes(model: Any, decoded: Sequence[tuple[Any, Any]]) -> Iterable[dict[str, float]]:
    """Language probabilities of the first utterances (of at least a second) of a session."""
    found = 0
    for _, samples in decoded:
        if found == PROBE_UTTERANCES:
            return
        if len(samples) >= SAMPLE_RATE:
            found += 1
            yield detect_language(model, encode(model, padded(samples)))


def transcribe_batch(settings: Any, batch: Any, transcriber: Transcriber, utterance_ids: Iterable[str] | None = None) -> BatchTranscripts:
    """Transcripts of ``batch``'s utterances (only ``utterance_ids`` when given: those the run
    labelled). Each recording stretch is decoded once at 16 kHz; its utterances are written
    down on ``settings.effective_workers()`` threads, one model replica each."""
    from ser_pipeline.features.encoder import compute_plan, load_whisper
    from ser_pipeline.runs.nightly.batch_features import _decode_group, _decode_groups
    from ser_pipeline.runs.nightly.records import Stopwatch

    wanted = None if utterance_ids is None else set(utterance_ids)
    utterances = [u for u in batch.utterances if wanted is None or u.utterance_id in wanted]
    timings = {"audio": 0.0, "encode": 0.0, "decode": 0.0}
    if not utterances:
        return BatchTranscripts(transcripts_frame([]), timings)
    workers = settings.effective_workers()
    model = load_whisper(str(transcriber.path), *compute_plan(), workers)
    manifest_language = {u.session_id: u.language for u in utterances}
    languages: dict[str, SessionLanguage] = {}
    rows: list[dict[str, Any]] = []
    groups = sorted(_decode_groups(utterances, settings.decode_span_s), key=lambda g: (g[0].session_id, g[0].start_s))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcribe") as pool:
        for group in groups:
            clock = Stopwatch()
            # Audio that fails to decode is the features step's to quarantine: it has no label either.
            decoded = [(u, s) for u, s in _decode_group(group, settings, SAMPLE_RATE) if isinstance(s, np.ndarray)]
            timings["audio"] += clock.elapsed
            for session in dict.fromkeys(u.session_id for u, _ in decoded):
                if session not in languages:
                    clock = Stopwatch()
                    own = [(u, x) for u, x in decoded if u.session_id == session]
                    languages[session] = session_language(transcriber, manifest_language.get(session),
                                                          lambda own=own: _probes(model, own))
                    timings["encode"] += clock.elapsed
            for row, encode_s, decode_s in pool.map(
                lambda item: transcribe_utterance(model, transcriber, item[0].utterance_id, item[1], languages[item[0].session_id]),
                decoded,
            ):
                rows.append(row)
                timings["encode"] += encode_s
                timings["decode"] += decode_s
    return BatchTranscripts(transcripts_frame(rows), timings)
