"""Session scoring: measure a model the way the product uses it, on whole recordings.

Corpus metrics score one clean acted clip at a time. The product instead labels focus-group
recordings: several people taking turns over room noise, cut into utterances by the turns,
labelled by the nightly run and read back from the warehouse. This module builds such
recordings from real labelled clips whose emotion is known (:func:`assemble_session_archive`),
runs the real nightly path on them (:func:`evaluate_sessions`) and scores what the warehouse
holds against the clips (:func:`score_warehouse`), so the figure includes segmentation,
recording condition, session context and the warehouse's own bookkeeping.

Each corpus speaker becomes one participant (ids stable across sessions, so a participant
appears in several sessions); a speaker's clips are dealt in runs sharing one emotion
(``context.assemble_sessions``), so session context has something real to use. The archive is
written exactly as ``manifest.read_survey`` reads one (docs/ARCHITECTURE.md, "The archive
layout"), plus ``_truth.csv``, which the pipeline ignores.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.training.corpora import CorpusItem
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.settings import Settings, override
from ser_pipeline.storage import join, write_bytes_atomic
from ser_pipeline.synthetic import _csv_bytes, _encode, _room_tone

__all__ = ["SESSION_TRUTH_COLUMNS", "SessionArchive", "assemble_session_archive", "evaluate_sessions", "score_warehouse"]

SESSION_TRUTH_COLUMNS = (
    "survey_id", "session_id", "turn_index", "participant_id", "speaker", "gender", "corpus",
    "utterance_id", "source_path", "emotion", "condition", "start_s", "end_s", "text",
)  # fmt: skip
_TURNS = ("rttm", "csv")
_P = [f"p_{e}" for e in EMOTIONS]
_CTX_P = [f"ctx_p_{e}" for e in EMOTIONS]


@dataclass(frozen=True)
class SessionArchive:
    """What :func:`assemble_session_archive` wrote: the archive root, its one survey, and the
    truth, one row per placed clip (:data:`SESSION_TRUTH_COLUMNS`; ``speaker`` is the corpus
    speaker, e.g. ``ravdess:11``; ``start_s``/``end_s`` the clip's place in the recording, as
    written in the turns)."""

    archive_url: str
    survey_id: str
    truth: pd.DataFrame


def _deal_sessions(clips: Sequence[CorpusItem], speakers_per_session: int, utterances_per_session: int,
                   mean_run: float, rng: np.random.Generator, seed: int) -> list[list[int]]:
    """Clip indices per session, in speaking order. Every clip is placed once: each speaker's
    clips in emotion runs, the speakers with most clips left speak next, and within a session
    turns alternate at random between its speakers (nobody follows themselves when avoidable)."""
    from ser_pipeline.inference.context import assemble_sessions

    order, chains = assemble_sessions([c.emotion for c in clips], [c.speaker for c in clips],
                                      mean_run=mean_run, session_length=max(1, len(clips)), seed=seed)
    queues: dict[str, list[int]] = {}
    for index, chain in zip(order, chains):
        queues.setdefault(str(chain).rsplit("#", 1)[0], []).append(int(index))
    sessions: list[list[int]] = []
    while any(queues.values()):
        left = [s for s in queues if queues[s]]
        ties = rng.permutation(len(left))
        chosen = [left[i] for i in sorted(range(len(left)), key=lambda i: (-len(queues[left[i]]), ties[i]))][:speakers_per_session]
        quota = {s: utterances_per_session // len(chosen) + (k < utterances_per_session % len(chosen)) for k, s in enumerate(chosen)}
        mine = {s: [queues[s].pop(0) for _ in range(min(quota[s], len(queues[s])))] for s in chosen}
        turns, previous = [], None
        while any(mine.values()):
            ready = [s for s in chosen if mine[s]]
            who = str(rng.choice([s for s in ready if s != previous] or ready))
            turns.append(mine[who].pop(0))
            previous = who
        sessions.append(turns)
    return sessions


def _outsiders(clips: Sequence[CorpusItem], i: int, sample_rate: int, settings: Settings) -> list[np.ndarray]:
    """Babble for a session where ``clips[i]``'s speaker talks alone: the first clip of up to
    six other speakers of ``clips`` (empty when there is nobody else)."""
    from ser_pipeline.audio.decode import load_audio

    firsts = {c.speaker: c for c in reversed(clips) if c.speaker != clips[i].speaker}
    pool = [firsts[s] for s in sorted(firsts)[:6]]
    return [load_audio(c.path, sample_rate, settings=settings).samples for c in pool]


def assemble_session_archive(
    clips: Sequence[CorpusItem],
    archive_url: str,
    *,
    speakers_per_session: int = 4,
    utterances_per_session: int = 20,
    pause_s: tuple[float, float] = (0.4, 1.5),
    noise_floor_dbfs: float = -54.0,
    condition: str = "reverb",
    seed: int = 0,
    sample_rate: int = 22050,
    turns: str = "rttm",
    survey_id: str = "EVAL",
    mean_run: float = 4.0,
    settings: Settings,
) -> SessionArchive:
    """Write focus-group recordings built from ``clips`` under ``archive_url``/``survey_id``.

    Sessions ``<survey_id>-S01``.. hold up to ``utterances_per_session`` clips of up to
    ``speakers_per_session`` speakers, as many sessions as it takes to place every clip once.
    Each clip goes through ``conditions.apply_condition(..., condition, rng, babble)`` (its rng
    from ``conditions.condition_rng(seed, condition, utterance_id)``; the babble pool, used by
    ``babbleN``/``snrN``/``mix``, is the session's other speakers' clips, or other speakers'
    from ``clips`` when the speaker talks alone), is placed after a pause drawn
    from ``pause_s`` seconds, and the whole recording lies over room tone whose RMS is
    ``noise_floor_dbfs``. ``turns`` is ``"rttm"`` (``<session>.rttm``, as a diarizer writes) or
    ``"csv"`` (``<session>.turns.csv``), one turn per clip. Audio and sidecars are written
    first, ``manifest.csv`` last, each atomically (``storage``: ``file://`` and ``s3://``).
    """
    from ser_pipeline.audio import conditions
    from ser_pipeline.audio.decode import load_audio

    if turns not in _TURNS:
        raise ValueError(f"turns must be one of {_TURNS}, not {turns!r}")
    if not clips or speakers_per_session < 1 or utterances_per_session < 1:
        raise ValueError("need clips, speakers_per_session >= 1 and utterances_per_session >= 1")
    rng = np.random.default_rng([seed, 20])
    speakers = sorted({c.speaker for c in clips})
    pid = {s: f"{survey_id}-P{i + 1:02d}" for i, s in enumerate(speakers)}
    gender = {c.speaker: c.gender for c in clips}
    survey_url = join(archive_url, survey_id)
    start = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    sessions, truth = [], []
    for k, placed in enumerate(_deal_sessions(clips, speakers_per_session, utterances_per_session, mean_run, rng, seed)):
        session_id = f"{survey_id}-S{k + 1:02d}"
        raw = [load_audio(clips[i].path, sample_rate, settings=settings).samples for i in placed]
        audio, alone = [], None
        for i, samples in zip(placed, raw):
            others = [r for j, r in zip(placed, raw) if clips[j].speaker != clips[i].speaker]
            if not others:  # one speaker in the session: the same outsiders for all of its clips
                alone = _outsiders(clips, i, sample_rate, settings) if alone is None else alone
                others = alone
            crng = conditions.condition_rng(seed, condition, clips[i].utterance_id)
            audio.append(conditions.apply_condition(samples, sample_rate, condition, crng, babble=others or None))
        pauses = [int(round(rng.uniform(*pause_s) * sample_rate)) for _ in range(len(placed) + 1)]
        recording = _room_tone(sum(pauses) + sum(len(a) for a in audio), rng, noise_floor_dbfs)
        cursor = 0
        for turn, (i, samples, pause) in enumerate(zip(placed, audio, pauses)):
            cursor += pause
            recording[cursor : cursor + len(samples)] += samples
            c = clips[i]
            truth.append({"survey_id": survey_id, "session_id": session_id, "turn_index": turn, "participant_id": pid[c.speaker],
                          "speaker": c.speaker, "gender": c.gender, "corpus": c.corpus, "utterance_id": c.utterance_id,
                          "source_path": c.path, "emotion": c.emotion, "condition": condition,
                          "start_s": round(cursor / sample_rate, 3), "end_s": round((cursor + len(samples)) / sample_rate, 3), "text": c.sentence})
            cursor += len(samples)
        write_bytes_atomic(join(survey_url, f"{session_id}.wav"), _encode(np.clip(recording, -1.0, 1.0), sample_rate, "wav"), settings)
        rows = [t for t in truth if t["session_id"] == session_id]
        if turns == "csv":
            frame = pd.DataFrame(rows, columns=["start_s", "end_s", "participant_id"])
            write_bytes_atomic(join(survey_url, f"{session_id}.turns.csv"), _csv_bytes(frame), settings)
        else:
            lines = [f"SPEAKER {session_id} 1 {t['start_s']:.3f} {t['end_s'] - t['start_s']:.3f} <NA> <NA> {t['participant_id']} <NA> <NA>\n"
                     for t in rows]
            write_bytes_atomic(join(survey_url, f"{session_id}.rttm"), "".join(lines).encode(), settings)
        people = list(dict.fromkeys(t["participant_id"] for t in rows))
        sessions.append({
            "session_id": session_id, "survey_id": survey_id, "audio_file": f"{session_id}.wav",
            "recorded_at": (start + timedelta(days=k)).isoformat(), "moderator": None, "market": None, "location": None,
            "participants": ";".join(people),
            "metadata": json.dumps({"assembled_from": sorted({t["corpus"] for t in rows}), "condition": condition, "seed": seed,
                                    "noise_floor_dbfs": noise_floor_dbfs, "turns": turns}, sort_keys=True),
        })
    truth_frame = pd.DataFrame(truth, columns=list(SESSION_TRUTH_COLUMNS))
    participants = pd.DataFrame([{"participant_id": pid[s], "age_band": None, "gender": gender[s], "market": None, "segment": None}
                                 for s in speakers])
    write_bytes_atomic(join(survey_url, "_truth.csv"), _csv_bytes(truth_frame), settings)
    write_bytes_atomic(join(survey_url, "participants.csv"), _csv_bytes(participants), settings)
    write_bytes_atomic(join(survey_url, "manifest.csv"), _csv_bytes(pd.DataFrame(sessions)), settings)
    return SessionArchive(archive_url, survey_id, truth_frame)


def _assign(utts: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """For each utterance, the position in ``truth`` of the clip of its session it overlaps
    longest in time; -1 where it overlaps none."""
    out = np.full(len(utts), -1, dtype=np.int64)
    t_session = truth["session_id"].astype(str).to_numpy()
    t_start, t_end = truth["start_s"].to_numpy(float), truth["end_s"].to_numpy(float)
    u_start, u_end = utts["start_s"].to_numpy(float), utts["end_s"].to_numpy(float)
    for session, rows in utts.groupby(utts["session_id"].astype(str)).indices.items():
        clips = np.flatnonzero(t_session == session)
        if not len(clips):
            continue
        overlap = np.minimum(u_end[rows, None], t_end[None, clips]) - np.maximum(u_start[rows, None], t_start[None, clips])
        best = overlap.argmax(axis=1)
        hit = overlap[np.arange(len(rows)), best] > 0
        out[rows[hit]] = clips[best[hit]]
    return out


def _scores(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[float, float]:
    """(accuracy, UAR): UAR is the macro recall over the emotions present in ``y_true``."""
    from sklearn.metrics import recall_score

    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    if not len(y_true):
        return float("nan"), float("nan")
    labels = [e for e in EMOTIONS if e in set(y_true)]
    return float(np.mean(y_true == y_pred)), float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def score_warehouse(warehouse_path: str | Path, truth: pd.DataFrame, model_version: str | None = None, *,
                    settings: Settings) -> dict[str, Any]:
    """Score the labels a warehouse holds for ``truth``'s sessions against ``truth``.

    ``truth``: one row per placed clip with ``session_id, start_s, end_s, emotion`` (and
    ``gender`` for the per-gender figures), e.g. :attr:`SessionArchive.truth`. Participant
    keys are pseudonymised, so each warehouse utterance is matched by session and time: to
    the clip it overlaps longest. A clip split into several utterances is scored once, by
    the argmax of its utterances' mean ``p_*`` (``ctx_p_*`` for the context label; context
    figures cover the clips that have context columns). The model is ``model_version``, else
    the one the views report (``v_current_model``).

    Returns ``accuracy``/``uar`` (clip level, raw label), ``context_accuracy``/``context_uar``,
    ``utterance_accuracy``/``utterance_context_accuracy`` (each matched labelled utterance
    on its own), ``uar_by_gender``/``context_uar_by_gender`` ({gender: UAR}), the counts
    ``n_truth_clips``, ``n_labelled`` (clips with at least one labelled utterance),
    ``n_unlabelled`` (the rest; left out of the figures, never dropped silently),
    ``n_utterances`` (in truth's sessions), ``n_utterances_labelled``, ``n_unmatched_utterances``
    (overlapping no clip), ``labels`` (the emotions UAR averages over: those of the scored
    clips) and ``model_version``. ``settings``: the caller's, for the warehouse connection.
    """
    from ser_pipeline.warehouse import run_query

    truth = truth.reset_index(drop=True)
    sessions = sorted(truth["session_id"].astype(str).unique())
    utts = run_query(
        warehouse_path,
        "SELECT u.utterance_id, u.session_id, u.start_s, u.end_s, p.label, p.context_label, "
        f"{', '.join('p.' + c for c in _P + _CTX_P)}, (SELECT model_version FROM v_current_model) AS scored_version "
        "FROM utterances u LEFT JOIN predictions p ON p.utterance_id = u.utterance_id "
        "AND p.model_version = (SELECT model_version FROM v_current_model) "
        "WHERE u.session_id IN (SELECT unnest($sessions)) ORDER BY u.session_id, u.start_s, u.utterance_id",
        {"sessions": sessions}, model_version=model_version, settings=settings,
    )
    utts["clip"] = _assign(utts, truth)
    labelled = utts[utts["label"].notna() & (utts["clip"] >= 0)]
    emotion = truth["emotion"].astype(str).to_numpy()

    def pooled(columns: list[str]) -> pd.Series:
        probs = labelled[columns].astype(float)
        mean = probs.fillna(0.0).groupby(labelled["clip"]).mean()
        has = probs.notna().any(axis=1).groupby(labelled["clip"]).any()
        return pd.Series([EMOTIONS[i] for i in mean.to_numpy().argmax(axis=1)], index=mean.index)[has[mean.index].to_numpy()]

    raw, ctx = pooled(_P), pooled(_CTX_P)
    genders = truth["gender"].fillna("unknown").astype(str).to_numpy() if "gender" in truth else np.full(len(truth), "unknown")
    result: dict[str, Any] = {"model_version": None if utts.empty else utts["scored_version"].iloc[0]}
    for prefix, pred in (("", raw), ("context_", ctx)):
        idx = pred.index.to_numpy(dtype=np.int64)
        result[f"{prefix}accuracy"], result[f"{prefix}uar"] = _scores(emotion[idx], pred.to_numpy())
        result[f"{prefix}uar_by_gender"] = {g: _scores(emotion[idx][genders[idx] == g], pred.to_numpy()[genders[idx] == g])[1]
                                            for g in sorted(set(genders[idx]))}
    clip_of = labelled["clip"].to_numpy(dtype=np.int64)
    result["utterance_accuracy"] = _scores(emotion[clip_of], labelled["label"].to_numpy())[0]
    with_ctx = labelled["context_label"].notna().to_numpy()
    result["utterance_context_accuracy"] = _scores(emotion[clip_of[with_ctx]], labelled["context_label"].to_numpy()[with_ctx])[0]
    result.update(
        n_truth_clips=len(truth), n_labelled=len(raw), n_unlabelled=len(truth) - len(raw), n_utterances=len(utts),
        n_utterances_labelled=int(utts["label"].notna().sum()), n_unmatched_utterances=int((utts["clip"] < 0).sum()),
        labels=[e for e in EMOTIONS if e in set(emotion[raw.index.to_numpy(dtype=np.int64)])],
    )
    return result


def evaluate_sessions(
    settings: Settings,
    clips: Sequence[CorpusItem],
    workdir: str | Path,
    *,
    model: str = "champion",
    condition: str = "reverb",
    seed: int = 0,
    **assemble_kwargs: Any,
) -> dict[str, Any]:
    """Assemble sessions from ``clips``, label them with the real nightly run, score the result.

    ``workdir`` is a local folder (created; must not hold a warehouse yet) that receives the
    archive (``archive/``), the feature store (``features/``) and a fresh warehouse
    (``warehouse.duckdb``); only ``settings.registry_url`` (where ``model`` comes from) and the
    other knobs are taken from ``settings``, so the caller's archive and warehouse stay
    untouched. ``assemble_kwargs`` go to :func:`assemble_session_archive` (its sample rate
    defaults to ``settings.sample_rate``). Returns :func:`score_warehouse`'s dict plus
    ``condition``, ``seed``, ``run_status``, ``error`` (the run's, or None), ``utterances_labelled``, ``quarantined``,
    ``elapsed_s`` (the whole call), ``stage_seconds`` (the nightly run's), ``archive_url``,
    ``warehouse_path`` and ``run`` (the nightly report's summary), and with transcription on
    ``transcripts`` (:func:`.transcripts.score_transcripts`: coverage and WER).
    """
    from ser_pipeline.runs.nightly import run_nightly

    clock = _time.perf_counter()
    root = Path(workdir).resolve()
    warehouse_path = root / "warehouse.duckdb"
    if warehouse_path.exists():
        raise FileExistsError(f"{warehouse_path} exists; evaluate_sessions needs a fresh workdir")
    root.mkdir(parents=True, exist_ok=True)
    run = override(settings, archive_url=(root / "archive").as_uri(), feature_store_url=(root / "features").as_uri(),
                   warehouse_path=warehouse_path)
    assemble_kwargs.setdefault("sample_rate", settings.sample_rate)
    archive = assemble_session_archive(clips, run.archive_url, condition=condition, seed=seed, settings=run, **assemble_kwargs)
    report = run_nightly(model=model, settings=run)
    scores = score_warehouse(warehouse_path, archive.truth, model_version=report.model_version, settings=run)
    if report.transcribe:
        from ser_pipeline.evaluation.transcripts import score_transcripts

        scores["transcripts"] = score_transcripts(warehouse_path, archive.truth, settings=run)
    return {
        **scores, "condition": condition, "seed": seed, "run_status": report.status, "error": report.error,
        "utterances_labelled": report.predictions_loaded, "quarantined": len(report.quarantined),
        "elapsed_s": _time.perf_counter() - clock, "archive_url": run.archive_url, "warehouse_path": str(warehouse_path),
        "stage_seconds": dict(report.stage_seconds), "run": report.summary(),
    }
