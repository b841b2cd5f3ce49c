"""Messy archives for reliability tests: hand-written surveys whose recordings are broken in
known ways, written with the layout of docs/ARCHITECTURE.md (manifest.csv, participants.csv,
one recording per session, no sidecars, so the nightly run segments them by energy VAD)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22_050
PARTICIPANT = "P001"


def speech(seconds_each: tuple[float, ...] = (2.0, 2.5, 1.8), sr: int = SR, seed: int = 0) -> np.ndarray:
    """A short recording: generated utterances separated by 0.8 s pauses over quiet room tone,
    float32 mono in [-1, 1] at ``sr``."""
    from ser_pipeline import synthetic as synth

    rng = np.random.default_rng(seed)
    voice = synth.make_voice(f"V{seed}", "female", rng)
    pause = np.zeros(int(0.8 * sr), np.float32)
    pieces = [pause]
    for k, seconds in enumerate(seconds_each):
        emotion = ("happy", "angry", "sad", "neutral")[k % 4]
        pieces += [synth.synthesize_utterance(emotion, voice, seconds, rng, sr), pause]
    y = np.concatenate(pieces).astype(np.float32)
    return y + (rng.standard_normal(len(y)) * 10 ** (-62 / 20)).astype(np.float32)  # room tone


def wav_bytes(samples: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV", subtype=subtype)
    return buffer.getvalue()


def write_survey(
    archive: Path,
    survey_id: str,
    recordings: Mapping[str, tuple[str, bytes | Path | None]],
    manifest_rows: list[dict] | None = None,
    participant_per_session: bool = False,
) -> Path:
    """Write survey ``survey_id`` under ``archive``: ``recordings`` maps a session id to
    ``(audio_file, content)`` (bytes, or a file to copy; ``None`` writes nothing, for a
    manifest row pointing at a missing file). One participant speaks in every session.
    ``manifest_rows`` are appended to the manifest as they are (for duplicate ids)."""
    import pandas as pd

    folder = archive / survey_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, people = [], []
    for i, (session_id, (audio_file, content)) in enumerate(recordings.items()):
        participant = f"P{i + 1:03d}" if participant_per_session else PARTICIPANT
        if participant not in people:
            people.append(participant)
        if isinstance(content, Path):
            (folder / audio_file).write_bytes(content.read_bytes())
        elif content is not None:
            (folder / audio_file).write_bytes(content)
        rows.append({
            "session_id": session_id, "survey_id": survey_id, "audio_file": audio_file,
            "recorded_at": f"2026-03-{1 + i % 28:02d}T10:00:00+01:00", "moderator": "M1", "market": "DE",
            "location": "Berlin", "participants": participant, "metadata": json.dumps({"case": session_id}),
        })
    rows += manifest_rows or []
    pd.DataFrame([{"participant_id": p, "age_band": "25-34", "gender": "female", "market": "DE", "segment": "A"} for p in people]).to_csv(
        folder / "participants.csv", index=False)
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def write_long_wav(path: Path, hours: float, sr: int = 16_000, speech_every_s: float = 20.0, seed: int = 0) -> int:
    """Write a ``hours``-long PCM-16 WAV block by block (never more than eight periods in memory):
    one generated utterance every ``speech_every_s`` seconds over room tone. Returns the
    number of utterances written."""
    rng = np.random.default_rng(seed)
    period = int(speech_every_s * sr)
    periods = []
    for k in range(8):  # eight different utterances (voices and emotions), repeated
        block = speech((2.5,), sr=sr, seed=seed * 100 + k)
        quiet = (rng.standard_normal(period - len(block)) * 10 ** (-62 / 20)).astype(np.float32)
        periods.append(np.concatenate([block, quiet]))
    minute = np.concatenate(periods)  # 8 periods: a few minutes, written again and again
    total = int(hours * 3600 * sr)
    written = 0
    with sf.SoundFile(path, "w", sr, 1, "PCM_16", format="WAV") as out:
        while written < total:
            chunk = minute[: total - written]
            out.write(chunk)
            written += len(chunk)
    return int(round(hours * 3600 / speech_every_s))
