"""Transcripts scored the way the product writes them: sessions labelled by the nightly run,
the warehouse's transcripts matched to the clips they were cut from (by session and time, as
:func:`.sessions.score_warehouse` matches labels) and compared with what each clip says
(RAVDESS names its sentence in the file name). Word error rate by ``jiwer``, after lower-casing
and removing punctuation on both sides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from ser_pipeline.settings import Settings


def normalise(text: str) -> str:
    """Lower case, words only (apostrophes kept), single spaces: what WER compares."""
    return " ".join(re.sub(r"[^\w' ]+", " ", str(text).lower()).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus-level WER (edits over reference words) of normalised texts; an empty
    hypothesis counts every reference word as deleted."""
    import jiwer

    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses) if normalise(r)]
    if not pairs:
        return float("nan")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def score_transcripts(warehouse_path: str | Path, truth: pd.DataFrame, *, settings: Settings,
                      model: str | None = None) -> dict[str, Any]:
    """Transcript coverage and WER of ``truth``'s sessions (``truth`` with ``session_id,
    start_s, end_s, text``: :attr:`.sessions.SessionArchive.truth`).

    ``coverage``: of the labelled utterances matched to a clip, the share whose transcript has
    words; ``wer``: over the clips with a reference text and a labelled utterance, each
    clip's transcripts joined in time order against its text (an empty one counts as all
    words missed). ``model``: the transcription model (default: the latest that wrote to
    these sessions). Also ``n_utterances`` (labelled, matched), ``n_with_words``,
    ``empty_reasons`` ({reason: count}), ``n_clips_scored`` and ``model``."""
    from ser_pipeline.evaluation.sessions import _assign
    from ser_pipeline.warehouse import run_query

    truth = truth.reset_index(drop=True)
    sessions = sorted(truth["session_id"].astype(str).unique())
    rows = run_query(
        warehouse_path,
        "SELECT u.utterance_id, u.session_id, u.start_s, u.end_s, t.model, t.text, t.empty_reason, t.transcribed_at "
        "FROM utterances u JOIN predictions p USING (utterance_id) "
        "LEFT JOIN transcripts t ON t.utterance_id = u.utterance_id "
        "WHERE u.session_id IN (SELECT unnest($sessions)) AND p.model_version = (SELECT model_version FROM v_current_model)",
        {"sessions": sessions}, settings=settings,
    )
    if model is None and rows["model"].notna().any():
        model = rows.sort_values("transcribed_at")["model"].dropna().iloc[-1]
    rows = rows[rows["model"].isna() | (rows["model"] == model)].drop_duplicates("utterance_id")
    rows = rows.assign(clip=_assign(rows, truth)).query("clip >= 0").sort_values(["session_id", "start_s"])
    has_words = rows["text"].fillna("").str.strip() != ""
    reasons = rows["empty_reason"].where(rows["text"].notna(), "no transcript row").dropna()
    texts = truth.get("text", pd.Series(None, index=truth.index))
    hypotheses = rows.assign(text=rows["text"].fillna("")).groupby("clip")["text"].agg(" ".join)
    scored = [i for i in hypotheses.index if isinstance(texts.iloc[i], str) and texts.iloc[i].strip()]
    return {
        "model": model,
        "coverage": float(has_words.mean()) if len(rows) else float("nan"),
        "wer": word_error_rate([texts.iloc[i] for i in scored], [hypotheses[i] for i in scored]),
        "n_utterances": int(len(rows)), "n_with_words": int(has_words.sum()),
        "empty_reasons": reasons.value_counts().to_dict(), "n_clips_scored": len(scored),
    }
