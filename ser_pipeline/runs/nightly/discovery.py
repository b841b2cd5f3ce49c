"""Step 1 of the nightly run: find the archive's surveys and read the sessions their manifests
vouch for; what a manifest gets wrong is set aside (quarantined) with the reason, by survey or
by session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ser_pipeline.errors import ManifestError
from ser_pipeline.runs.nightly.records import Discovery, Quarantined, Stopwatch
from ser_pipeline.settings import Settings
from ser_pipeline.validation import ValidationResult


def _read_manifest_frame(survey_url: str, settings: Settings) -> pd.DataFrame:
    """The survey's raw manifest rows as strings (CSV or JSON), for the manifest suite."""
    import io
    import json

    from ser_pipeline.storage import filesystem, join, read_bytes

    csv_url, json_url = join(survey_url, "manifest.csv"), join(survey_url, "manifest.json")
    fs, csv_path = filesystem(csv_url, settings)
    if fs.exists(csv_path):
        return pd.read_csv(io.BytesIO(read_bytes(csv_url, settings)), dtype=str, keep_default_na=False).replace({"": None})
    data = json.loads(read_bytes(json_url, settings))
    rows = data.get("sessions", data) if isinstance(data, dict) else data
    frame = pd.DataFrame(rows)
    if "metadata" in frame:
        frame["metadata"] = [json.dumps(m) if isinstance(m, (dict, list)) else m for m in frame["metadata"]]
    return frame.astype(object)


def _missing_audio(frame: pd.DataFrame, result: ValidationResult) -> str:
    """The audio files the manifest names but the archive lacks, when that is among what
    failed (GX reports only ``[False]``; whoever reads the quarantine needs the names)."""
    rows = sorted({r for f in result.failed if f.column == "audio_file_exists" for r in f.rows})
    if not rows or "audio_file" not in frame:
        return ""
    missing = [str(frame.iloc[r]["audio_file"]) for r in rows]
    return f"\n  missing audio files: {', '.join(missing[:20])}" + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")


# Computed columns of the manifest suite, and the column a person edits to fix them.
_COMPUTED_FROM = {"audio_file_exists": "audio_file", "recorded_at_valid": "recorded_at"}


def _row_reason(frame: pd.DataFrame, row: int, failures: Sequence[Any]) -> str:
    """What one manifest row got wrong, with the value written there."""
    parts = []
    for f in failures:
        column = _COMPUTED_FROM.get(f.column, f.column)
        value = frame.iloc[row][column] if column in frame.columns else None
        parts.append(f"{f.expectation} on {f.column} ({f.why}): {column} = {value!r}")
    return "manifest suite: " + "; ".join(parts)


def _no_manifest(folder: str, n_audio: int) -> Quarantined:
    files = f"{n_audio} audio file{'' if n_audio == 1 else 's'}"
    return Quarantined("manifest", folder, f"no manifest.csv; {files} not labelled; write one with `ser manifest init {folder}`")


def discover(settings: Settings) -> Discovery:
    """Every survey of ``settings.archive_url`` with the sessions it can read.

    What makes a manifest untrustworthy as a whole (it does not parse, a required column is
    missing, a row names no session or another survey, a session id repeats) quarantines the
    survey (stage ``manifest``). A row wrong only about itself (its recording missing, its
    timestamp, participants, metadata or turns file) quarantines that session (stage
    ``session``) and the survey's other sessions go on. A folder holding recordings but no
    manifest is reported (stage ``manifest``) every night until it has one."""
    from ser_pipeline.archive.manifest import read_survey, scan_archive
    from ser_pipeline.validation import validate_manifest

    clock = Stopwatch()
    scan = scan_archive(settings.archive_url, settings)
    surveys, validations = [], []
    quarantined = [_no_manifest(folder, n) for folder, n in scan.without_manifest.items()]
    for survey_url in scan.surveys:
        try:
            frame = _read_manifest_frame(survey_url, settings)
            result = validate_manifest(frame, survey_url, settings=settings)
            validations.append((survey_url, result))
            if result.table_failures:
                quarantined.append(Quarantined("manifest", survey_url, result.summary() + _missing_audio(frame, result)))
                continue
            set_aside = {row: _row_reason(frame, row, failures) for row, failures in result.row_failures().items()}
            survey = read_survey(survey_url, settings, strict=False, set_aside=set_aside)
            quarantined.extend(Quarantined("session", r.source, f"session {r.session_id} (manifest row {r.row}): {r.reason}")
                               for r in survey.rejected)
            surveys.append(survey)
        except (ManifestError, ValueError, KeyError, OSError) as exc:
            quarantined.append(Quarantined("manifest", survey_url, f"{type(exc).__name__}: {exc}"))
    return Discovery(tuple(surveys), tuple(quarantined), tuple(validations), clock.elapsed)
