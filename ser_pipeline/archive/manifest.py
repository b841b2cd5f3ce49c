"""Reading an archive's metadata: surveys, sessions, participants and speaker turns.

The layout is described in docs/ARCHITECTURE.md::

    <archive>/<survey_id>/manifest.csv  (or manifest.json)      one row per session
    <archive>/<survey_id>/participants.csv (or participants.json)
    <archive>/<survey_id>/<session_id>.<audio ext>
    <archive>/<survey_id>/<session_id>.turns.csv   optional: start_s,end_s,participant_id,question
    <archive>/<survey_id>/<session_id>.rttm        optional: diarization output

Speaker turns come from ``<session>.turns.csv`` when present (it can carry the question),
else from ``<session>.rttm`` (what diarization tools write; the speaker field is the
participant id), else the session has no turns and the pipeline segments its audio.

A manifest needs only ``session_id, survey_id, audio_file, recorded_at, participants``;
``moderator``, ``market``, ``location``, ``language`` and ``metadata`` are optional (absent or
blank: None, and ``{}`` for metadata). ``language`` is the ISO 639-1 code the session is spoken
in (``en``, ``de``): transcripts are written in it; blank, it is detected per session. ``ser manifest init`` writes a skeleton from the recordings of a
folder (:mod:`ser_pipeline.archive.skeleton`).

Every problem raises :class:`~ser_pipeline.errors.ManifestError` naming the file and the
cause: missing columns, duplicate ids, timestamps without a UTC offset, unknown
participants, and any path that would leave the survey folder (``..``, absolute paths,
URLs, symlinks pointing outside on local disks). The nightly run reads with
``strict=False``: a problem of one row sets that session aside (``Survey.rejected``) and the
others are read; what makes the whole manifest untrustworthy still raises.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ser_pipeline.errors import ManifestError
from ser_pipeline.settings import Settings
from ser_pipeline.storage import AUDIO_EXTENSIONS, filesystem, join, to_url

# The contract of docs/WAREHOUSE.md and expectations/manifest.json (tests check all three agree):
# a manifest needs only the required columns; the optional ones may be absent or blank.
REQUIRED_MANIFEST_COLUMNS = ("session_id", "survey_id", "audio_file", "recorded_at", "participants")
OPTIONAL_MANIFEST_COLUMNS = ("moderator", "market", "location", "language", "metadata")
MANIFEST_COLUMNS = ("session_id", "survey_id", "audio_file", "recorded_at", "moderator", "market", "location", "language", "participants", "metadata")
PARTICIPANT_COLUMNS = ("participant_id", "age_band", "gender", "market", "segment")
TURN_COLUMNS = ("start_s", "end_s", "participant_id")

# Ids become file names (<session_id>.turns.csv) and folder names, so they stay plain.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Participant:
    participant_id: str  # raw id as in participants.csv; the warehouse stores only its pseudonym
    age_band: str | None = None
    gender: str | None = None
    market: str | None = None
    segment: str | None = None


@dataclass(frozen=True)
class Turn:
    """One speaker turn of a session recording, in seconds from the recording's start."""

    start_s: float
    end_s: float
    participant_id: str | None
    question: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Session:
    session_id: str
    survey_id: str
    audio_url: str
    recorded_at: datetime  # timezone-aware
    moderator: str | None
    market: str | None
    location: str | None
    participant_ids: tuple[str, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    turns: tuple[Turn, ...] = ()
    turns_source: str | None = None  # "turns.csv", "rttm" or None
    language: str | None = None  # ISO 639-1, from the manifest; None: detected when transcribing


@dataclass(frozen=True)
class RejectedSession:
    """A manifest row :func:`read_survey` set aside instead of reading (``strict=False``)."""

    row: int  # 1-based, as the messages say "row 3"
    session_id: str
    source: str  # the recording the row names, else the manifest and row
    reason: str


@dataclass(frozen=True)
class Survey:
    survey_id: str
    url: str
    sessions: tuple[Session, ...]
    participants: tuple[Participant, ...]
    rejected: tuple[RejectedSession, ...] = ()  # sessions set aside (read_survey(strict=False))

    def participant(self, participant_id: str) -> Participant:
        for p in self.participants:
            if p.participant_id == participant_id:
                return p
        raise KeyError(participant_id)


# --------------------------------------------------------------------------------------------
# Low-level readers


def _blank_to_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _read_text(url: str, settings: Settings | None) -> str:
    fs, path = filesystem(url, settings)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise ManifestError(url, "file not found") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(url, f"not UTF-8 text ({exc})") from exc


def _csv_rows(url: str, text: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ManifestError(url, f"missing columns {missing}; found {header}")
    reader.fieldnames = header
    rows = []
    for line_no, row in enumerate(reader, start=2):
        if None in row:
            raise ManifestError(url, f"line {line_no}: more fields than the header has")
        rows.append({k: _blank_to_none(v) for k, v in row.items()})
    return rows


def _json_rows(url: str, text: str, required: tuple[str, ...], list_key: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(url, f"invalid JSON ({exc})") from exc
    if isinstance(data, Mapping):
        data = data.get(list_key)
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise ManifestError(url, f"expected a list of objects (or {{\"{list_key}\": [...]}})")
    for i, row in enumerate(data):
        missing = [c for c in required if c not in row]
        if missing:
            raise ManifestError(url, f"record {i}: missing fields {missing}")
    return [{k: _blank_to_none(v) for k, v in row.items()} for row in data]


def _read_table(folder: str, stem: str, required: tuple[str, ...], list_key: str, settings: Settings | None) -> tuple[str, list[dict[str, Any]]]:
    fs, path = filesystem(folder, settings)
    csv_url, json_url = join(folder, f"{stem}.csv"), join(folder, f"{stem}.json")
    if fs.exists(posixpath.join(path, f"{stem}.csv")):
        return csv_url, _csv_rows(csv_url, _read_text(csv_url, settings), required)
    if fs.exists(posixpath.join(path, f"{stem}.json")):
        return json_url, _json_rows(json_url, _read_text(json_url, settings), required, list_key)
    raise ManifestError(csv_url, f"no {stem}.csv or {stem}.json in the survey folder")


def _float(url: str, where: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ManifestError(url, f"{where}: {name} {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ManifestError(url, f"{where}: {name} {value!r} is not finite")
    return number


def _check_turn(url: str, where: str, start: float, end: float) -> None:
    if start < 0:
        raise ManifestError(url, f"{where}: start_s {start} is negative")
    if end <= start:
        raise ManifestError(url, f"{where}: end_s {end} is not after start_s {start}")


def read_turns_csv(url: str, settings: Settings | None = None) -> list[Turn]:
    """Speaker turns from a ``<session>.turns.csv``: ``start_s,end_s,participant_id[,question]``."""
    rows = _csv_rows(url, _read_text(url, settings), TURN_COLUMNS)
    turns = []
    for line_no, row in enumerate(rows, start=2):
        where = f"line {line_no}"
        start = _float(url, where, "start_s", row["start_s"])
        end = _float(url, where, "end_s", row["end_s"])
        _check_turn(url, where, start, end)
        turns.append(Turn(start, end, row["participant_id"], row.get("question")))
    return sorted(turns, key=lambda t: (t.start_s, t.end_s))


def read_rttm(url: str, settings: Settings | None = None) -> list[Turn]:
    """Speaker turns from an RTTM file (NIST Rich Transcription Time Marked).

    Only ``SPEAKER`` records are used: ``SPEAKER <file> <chan> <onset> <duration> <NA> <NA>
    <speaker> <NA> <NA>``; the speaker name is taken as the participant id. Comment lines
    (``;;``) and other record types are skipped.
    """
    turns = []
    for line_no, line in enumerate(_read_text(url, settings).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;") or fields[0].upper() != "SPEAKER":
            continue
        where = f"line {line_no}"
        if len(fields) < 8:
            raise ManifestError(url, f"{where}: a SPEAKER record needs at least 8 fields, found {len(fields)}")
        start = _float(url, where, "onset", fields[3])
        duration = _float(url, where, "duration", fields[4])
        _check_turn(url, where, start, start + duration)
        turns.append(Turn(start, start + duration, fields[7], None))
    return sorted(turns, key=lambda t: (t.start_s, t.end_s))


# --------------------------------------------------------------------------------------------
# Path checks


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def resolve_inside(folder: str, relative: str, source: str, settings: Settings | None = None) -> str:
    """The URL of ``relative`` inside ``folder``; raise when it would leave the folder.

    Rejects absolute paths, URLs, ``..`` components and (on local disks) symlinks whose
    target lies outside the folder.
    """
    if relative is None or not str(relative).strip():
        raise ManifestError(source, "empty path")
    relative = str(relative).strip()
    if "://" in relative or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise ManifestError(source, f"path {relative!r} is absolute; paths must be relative to the survey folder")
    parts = re.split(r"[\\/]+", relative)
    if ".." in parts:
        raise ManifestError(source, f"path {relative!r} leaves the archive root ('..')")
    url = join(folder, *[p for p in parts if p not in ("", ".")])
    fs, path = filesystem(url, settings)
    if _is_local(fs):
        _, root = filesystem(folder, settings)
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise ManifestError(source, f"path {relative!r} resolves outside the survey folder (symlink to {real})")
    return url


# --------------------------------------------------------------------------------------------
# Surveys


def _parse_recorded_at(url: str, where: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except (TypeError, ValueError):
            raise ManifestError(url, f"{where}: recorded_at {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ManifestError(url, f"{where}: recorded_at {value!r} has no UTC offset (write e.g. 2026-03-02T10:00:00+01:00)")
    return parsed


def _parse_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        items = [v.strip() for v in str(value).split(";")]
    return tuple(v for v in items if v)


def _parse_language(url: str, where: str, value: Any) -> str | None:
    """An ISO 639-1 code, lower case (``en``, ``de``), or None when blank."""
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return None
    code = str(value).strip().lower()
    if not re.fullmatch(r"[a-z]{2}", code):
        raise ManifestError(url, f"{where}: language {value!r} is not a two-letter ISO 639-1 code (en, de, fr, ...)")
    return code


def _parse_metadata(url: str, where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ManifestError(url, f"{where}: metadata is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ManifestError(url, f"{where}: metadata must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _check_id(url: str, where: str, name: str, value: Any) -> str:
    if value is None:
        raise ManifestError(url, f"{where}: {name} is empty")
    value = str(value)
    if not _SAFE_ID.match(value):
        raise ManifestError(url, f"{where}: {name} {value!r} may hold only letters, digits, '_', '-', '.'")
    return value


def _read_participants(folder: str, settings: Settings | None) -> tuple[Participant, ...]:
    url, rows = _read_table(folder, "participants", ("participant_id",), "participants", settings)
    seen: set[str] = set()
    participants = []
    for i, row in enumerate(rows):
        where = f"row {i + 1}"
        pid = row.get("participant_id")
        if pid is None:
            raise ManifestError(url, f"{where}: participant_id is empty")
        pid = str(pid)
        if pid in seen:
            raise ManifestError(url, f"duplicate participant_id {pid!r}")
        seen.add(pid)
        participants.append(Participant(pid, *(None if row.get(c) is None else str(row[c]) for c in PARTICIPANT_COLUMNS[1:])))
    return tuple(participants)


def _session_turns(folder: str, session_id: str, participant_ids: tuple[str, ...], settings: Settings | None) -> tuple[tuple[Turn, ...], str | None]:
    fs, path = filesystem(folder, settings)
    for suffix, reader, source in ((".turns.csv", read_turns_csv, "turns.csv"), (".rttm", read_rttm, "rttm")):
        name = f"{session_id}{suffix}"
        if not fs.exists(posixpath.join(path, name)):
            continue
        url = resolve_inside(folder, name, join(folder, name), settings)
        turns = reader(url, settings)
        unknown = sorted({t.participant_id for t in turns if t.participant_id and t.participant_id not in participant_ids})
        if unknown:
            raise ManifestError(url, f"speakers {unknown} are not participants of session {session_id} ({list(participant_ids)})")
        return tuple(turns), source
    return (), None


def _session(folder: str, survey_id: str, manifest_url: str, where: str, session_id: str, row: Mapping[str, Any],
             known: set[str], settings: Settings | None) -> Session:
    """One manifest row as a session; raises ManifestError for what only this row gets wrong."""
    _check_id(manifest_url, where, "session_id", session_id)
    audio_url = resolve_inside(folder, row.get("audio_file"), manifest_url, settings)
    ids = _parse_list(row.get("participants"))
    if len(set(ids)) != len(ids):
        raise ManifestError(manifest_url, f"{where}: participants list {list(ids)} repeats an id")
    unknown = [p for p in ids if p not in known]
    if unknown:
        raise ManifestError(manifest_url, f"{where}: participants {unknown} are not in participants.csv")
    recorded_at = _parse_recorded_at(manifest_url, where, row.get("recorded_at"))
    metadata = _parse_metadata(manifest_url, where, row.get("metadata"))
    language = _parse_language(manifest_url, where, row.get("language"))
    turns, turns_source = _session_turns(folder, session_id, ids, settings)
    return Session(
        session_id=session_id,
        survey_id=survey_id,
        audio_url=audio_url,
        recorded_at=recorded_at,
        moderator=row.get("moderator"),
        market=row.get("market"),
        location=row.get("location"),
        participant_ids=ids,
        metadata=metadata,
        turns=turns,
        turns_source=turns_source,
        language=language,
    )


def _row_source(folder: str, manifest_url: str, where: str, row: Mapping[str, Any], settings: Settings | None) -> str:
    """What a set-aside row is reported as: the recording it names when that lies inside the
    survey folder, else the manifest and row (a path that leaves the folder names nothing)."""
    try:
        return resolve_inside(folder, row.get("audio_file"), manifest_url, settings)
    except ManifestError:
        return f"{manifest_url} {where}"


def read_survey(
    url: str,
    settings: Settings | None = None,
    *,
    strict: bool = True,
    set_aside: Mapping[int, str] | None = None,
) -> Survey:
    """Read one survey folder: its manifest, participants and every session's speaker turns.

    What makes the whole manifest untrustworthy always raises: an unreadable manifest or
    participants file, a missing required column, a row without a session id, a repeated
    session id, a ``survey_id`` other than the folder's name. A problem of one row alone (its
    recording's path, its participants, its timestamp, metadata or turns file) raises too when
    ``strict``; otherwise that session is set aside in ``Survey.rejected`` and the others are
    read. ``set_aside`` (0-based manifest row -> reason: rows a caller has already judged,
    such as the manifest suite's failures) puts those rows in ``rejected`` unread.
    """
    folder = str(url).rstrip("/")
    survey_id = _check_id(folder, "folder", "survey id", posixpath.basename(folder))
    manifest_url, rows = _read_table(folder, "manifest", REQUIRED_MANIFEST_COLUMNS, "sessions", settings)
    participants = _read_participants(folder, settings)
    known = {p.participant_id for p in participants}
    set_aside = dict(set_aside or {})
    sessions, rejected = [], []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"row {i + 1}"
        if row.get("session_id") is None:
            raise ManifestError(manifest_url, f"{where}: session_id is empty")
        session_id = str(row["session_id"])
        if session_id in seen:
            raise ManifestError(manifest_url, f"duplicate session_id {session_id!r}")
        seen.add(session_id)
        if str(row.get("survey_id")) != survey_id:
            raise ManifestError(manifest_url, f"{where}: survey_id {row.get('survey_id')!r} differs from the folder name {survey_id!r}")
        source = _row_source(folder, manifest_url, where, row, settings)
        if i in set_aside:
            rejected.append(RejectedSession(i + 1, session_id, source, set_aside[i]))
            continue
        try:
            sessions.append(_session(folder, survey_id, manifest_url, where, session_id, row, known, settings))
        except ManifestError as exc:
            if strict:
                raise
            rejected.append(RejectedSession(i + 1, session_id, source, str(exc)))
    return Survey(survey_id=survey_id, url=folder, sessions=tuple(sessions), participants=participants,
                  rejected=tuple(rejected))


def _survey_folders(archive_url: str, settings: Settings | None) -> list[tuple[Any, str, list[str]]]:
    """``(fs, folder path, file names)`` of each folder directly under the archive (names
    starting with ``_`` or ``.`` are ignored)."""
    fs, root = filesystem(archive_url, settings)
    if not fs.exists(root):
        return []
    found = []
    for entry in fs.ls(root, detail=True):
        name = posixpath.basename(entry["name"].rstrip("/"))
        if entry["type"] != "directory" or name.startswith(("_", ".")):
            continue
        files = [posixpath.basename(e["name"].rstrip("/")) for e in fs.ls(entry["name"], detail=True) if e["type"] == "file"]
        found.append((fs, entry["name"], files))
    return sorted(found, key=lambda f: f[1])


def _has_manifest(files: list[str]) -> bool:
    return any(f"manifest.{ext}" in files for ext in ("csv", "json"))


@dataclass(frozen=True)
class ArchiveScan:
    """One listing of an archive: survey folders (with a manifest) and folders holding
    recordings but no manifest (``{folder URL: number of audio files}``)."""

    surveys: tuple[str, ...]
    without_manifest: Mapping[str, int]


def scan_archive(archive_url: str, settings: Settings | None = None) -> ArchiveScan:
    """List the archive once: its survey folders, and the folders of recordings that lack a
    manifest (``storage.AUDIO_EXTENSIONS``, names starting with ``.`` ignored), which the
    nightly run reports since nothing in them is labelled until a manifest exists."""
    surveys, without = [], {}
    for fs, path, files in _survey_folders(archive_url, settings):
        if _has_manifest(files):
            surveys.append(to_url(fs, path))
            continue
        audio = [f for f in files if not f.startswith(".") and f.lower().endswith(AUDIO_EXTENSIONS)]
        if audio:
            without[to_url(fs, path)] = len(audio)
    return ArchiveScan(tuple(surveys), without)


def list_surveys(archive_url: str, settings: Settings | None = None) -> list[str]:
    """The survey folders of an archive (those holding a manifest), as URLs; names starting
    with ``_`` or ``.`` are ignored."""
    return list(scan_archive(archive_url, settings).surveys)


def read_archive(archive_url: str, settings: Settings | None = None) -> list[Survey]:
    """Every survey of an archive."""
    return [read_survey(url, settings) for url in list_surveys(archive_url, settings)]
