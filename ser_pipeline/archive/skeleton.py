"""A first ``manifest.csv`` and ``participants.csv`` for a folder of recordings, to be edited.

A survey folder the nightly run can read needs a manifest (docs/WAREHOUSE.md, Manifest
schema). For a folder that holds only recordings, :func:`manifest_skeleton` proposes one row
per recording found directly in the folder (the extensions of ``storage.AUDIO_EXTENSIONS``;
names starting with ``.`` are ignored, subfolders are not searched):

* ``session_id``: the file name's stem, reduced to letters, digits, ``_ - .`` (accents
  dropped, other characters become ``_``; a clash gets ``-2``, ``-3``, ...);
* ``survey_id``: the folder's name (which must already be a valid id: it cannot be renamed here);
* ``audio_file``: the file name;
* ``recorded_at``: a WAV/BWF file's ``bext`` origination date and time when it has one (a
  recorder's local wall-clock time, read in the time zone given), else the file's modification
  time (which a copy may have reset: check it), as ISO 8601 with an explicit offset;
* ``participants``: one participant per recording (``<session_id>-p1``), or ``n`` of them,
  or the same given ids for every session; ``participants.csv`` lists each once;
* the optional columns (``moderator``, ``market``, ``location``, ``metadata``) blank.

:func:`write_manifest_skeleton` writes both files (participants first, so the folder never
holds a manifest naming participants it lacks) and refuses to replace an existing manifest or
participants file unless ``force``. Local paths and any fsspec URL (``s3://``) work alike.
"""

from __future__ import annotations

import posixpath
import re
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pandas as pd

from ser_pipeline.errors import ManifestError
from ser_pipeline.archive.manifest import _SAFE_ID, MANIFEST_COLUMNS, PARTICIPANT_COLUMNS, resolve_inside
from ser_pipeline.settings import Settings
from ser_pipeline.storage import AUDIO_EXTENSIONS, filesystem, join, write_bytes_atomic

# Files whose presence means the folder already has a manifest or participants (CSV wins over JSON).
_EXISTING = ("manifest.csv", "manifest.json", "participants.csv", "participants.json")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.\-]+")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")


@dataclass(frozen=True)
class ManifestSkeleton:
    """The proposed manifest and participants of one survey folder.

    ``manifest``: one row per recording, columns ``MANIFEST_COLUMNS`` (strings; optional
    columns None). ``participants``: columns ``PARTICIPANT_COLUMNS``, one row per participant
    id. ``recorded_at_sources``: per manifest row, ``"bext"`` or ``"mtime"``. ``skipped``:
    audio files not used, each with the reason.
    """

    survey_url: str
    survey_id: str
    manifest: pd.DataFrame
    participants: pd.DataFrame
    recorded_at_sources: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    @property
    def manifest_url(self) -> str:
        return join(self.survey_url, "manifest.csv")

    @property
    def participants_url(self) -> str:
        return join(self.survey_url, "participants.csv")

    def manifest_csv(self) -> str:
        return self.manifest.to_csv(index=False, lineterminator="\n")

    def participants_csv(self) -> str:
        return self.participants.to_csv(index=False, lineterminator="\n")


def parse_utc_offset(text: str | None) -> tzinfo | None:
    """The time zone an option names: ``+01:00``, ``-0530``, ``+02``, ``Z`` or ``UTC``
    (a fixed offset), an IANA name such as ``Europe/Berlin`` (its summer time included), or
    ``local``/None/empty for this machine's time zone (returned as None). Raises ValueError."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "local":
        return None
    text = str(text).strip()
    if text.upper() in ("Z", "UTC"):
        return timezone.utc
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match[1], int(match[2]), int(match[3] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"UTC offset {text!r} is out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if sign == "-" else delta)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(text)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"{text!r} is neither a UTC offset (+01:00, -05:30, Z), a time zone name (Europe/Berlin) nor 'local'") from None


def session_id_from_name(name: str) -> str:
    """A session id from a file name: its stem with accents dropped and every run of characters
    other than letters, digits, ``_ - .`` replaced by ``_``; it starts with a letter or digit
    (``session`` when nothing is left)."""
    stem = posixpath.splitext(posixpath.basename(name))[0]
    ascii_stem = unicodedata.normalize("NFKD", stem.replace("ß", "ss")).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_RUN.sub("_", ascii_stem).lstrip("_.-").rstrip("_")
    return cleaned or "session"


def _bext_origination(fh: Any) -> datetime | None:
    """The ``bext`` chunk's OriginationDate and OriginationTime of a RIFF/RF64/BW64 WAV
    (naive: the recorder's wall clock), or None when the file has none or they do not parse."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    for _ in range(64):  # a WAV has a handful of chunks; do not walk a corrupt file forever
        header = fh.read(8)
        if len(header) < 8:
            return None
        chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk == b"bext":
            body = fh.read(min(size, 338))
            if len(body) < 338:
                return None
            date = re.match(rb"^(\d{4})\D(\d{2})\D(\d{2})$", body[320:330])
            time = re.match(rb"^(\d{2})\D(\d{2})\D(\d{2})$", body[330:338])
            if not (date and time):
                return None
            try:
                return datetime(*(int(x) for x in date.groups() + time.groups()))
            except ValueError:
                return None
        if size == 0xFFFFFFFF:  # RF64 data chunk: its size lives in ds64; bext comes before it in practice
            return None
        fh.seek(size + (size & 1), 1)
    return None


def _modified(fs: Any, path: str, info: dict[str, Any]) -> datetime:
    value = info.get("mtime") or info.get("LastModified") or info.get("modified") or info.get("created")
    if value is None:
        value = fs.modified(path)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    raise ValueError(f"unexpected modification time {value!r}")


def _recorded_at(fs: Any, path: str, info: dict[str, Any], tz: tzinfo | None) -> tuple[str, str]:
    """``(ISO 8601 timestamp with offset, source)`` for one recording; ``tz`` None: local time."""
    if path.lower().endswith(".wav"):
        try:
            with fs.open(path, "rb") as fh:
                origination = _bext_origination(fh)
        except (OSError, struct.error):
            origination = None
        if origination is not None:
            # A wall-clock time: attach the zone (None: this machine's, its summer time included).
            aware = origination.replace(tzinfo=tz) if tz is not None else origination.astimezone()
            return aware.isoformat(timespec="seconds"), "bext"
    return _modified(fs, path, info).astimezone(tz).isoformat(timespec="seconds"), "mtime"


def _check_participant_id(value: str) -> str:
    value = str(value).strip()
    if not value or re.search(r"[;\s,]", value):
        raise ValueError(f"participant id {value!r} must be non-empty, without spaces, ';' or ','")
    return value


def manifest_skeleton(
    survey_url: str,
    *,
    tz: tzinfo | None = None,
    participants_per_recording: int = 1,
    participant_ids: Sequence[str] | None = None,
    session_prefix: str = "",
    settings: Settings | None = None,
) -> ManifestSkeleton:
    """Propose a manifest and participants for the recordings directly in ``survey_url``.

    ``tz``: the time zone of the written timestamps and of BWF wall-clock times (None: this
    machine's local zone; see :func:`parse_utc_offset`). ``participants_per_recording``: how
    many participants (``<session_id>-p1`` … ``-pN``) each session gets, unless
    ``participant_ids`` gives the ids every session lists. ``session_prefix`` is put before
    every session id (ids must be unique across the archive, not just the folder).

    Raises :class:`ManifestError` (naming the folder) when the folder does not exist, its name
    is not a valid survey id, or it holds no recordings; ValueError on bad arguments.
    """
    if participant_ids is not None:
        participant_ids = [_check_participant_id(p) for p in participant_ids]
        if not participant_ids:
            raise ValueError("participant_ids is empty; give at least one id or None")
        if len(set(participant_ids)) != len(participant_ids):
            raise ValueError(f"participant ids {participant_ids} repeat an id")
    if int(participants_per_recording) < 1:
        raise ValueError(f"participants_per_recording must be at least 1, got {participants_per_recording}")
    if session_prefix and not _SAFE_ID.match(session_prefix):
        raise ValueError(f"session prefix {session_prefix!r} may hold only letters, digits, '_', '-', '.' and must start with a letter or digit")

    folder = str(survey_url).rstrip("/")
    fs, root = filesystem(folder, settings)
    if not fs.isdir(root):
        raise ManifestError(folder, "folder not found")
    survey_id = posixpath.basename(root.rstrip("/"))
    if not _SAFE_ID.match(survey_id):
        raise ManifestError(folder, f"folder name {survey_id!r} is not a valid survey id (letters, digits, '_', '-', '.'); rename the folder first")

    entries = sorted(fs.ls(root, detail=True), key=lambda e: e["name"])
    recordings, skipped = [], []
    for entry in entries:
        name = posixpath.basename(entry["name"].rstrip("/"))
        if name.startswith(".") or not name.lower().endswith(AUDIO_EXTENSIONS):
            continue
        if entry.get("type") != "file" and not (entry.get("islink") and fs.isfile(entry["name"])):  # local symlinks: "other"
            continue
        try:
            resolve_inside(folder, name, join(folder, name), settings)
        except ManifestError as exc:
            skipped.append(f"{name}: {exc.reason}")
            continue
        recordings.append((name, entry))
    if not recordings:
        where = f"; skipped: {'; '.join(skipped)}" if skipped else ""
        raise ManifestError(folder, f"no recordings in the folder (looked for {', '.join(AUDIO_EXTENSIONS)}; subfolders are not searched){where}")

    rows, sources, seen = [], [], set()
    all_participants: list[str] = list(participant_ids or [])
    for name, entry in recordings:
        base = session_prefix + session_id_from_name(name)
        session_id, n = base, 1
        while session_id in seen:
            n += 1
            session_id = f"{base}-{n}"
        seen.add(session_id)
        if participant_ids is None:
            ids = [f"{session_id}-p{i}" for i in range(1, int(participants_per_recording) + 1)]
            all_participants.extend(ids)
        else:
            ids = list(participant_ids)
        recorded_at, source = _recorded_at(fs, entry["name"], entry, tz)
        sources.append(source)
        rows.append({"session_id": session_id, "survey_id": survey_id, "audio_file": name, "recorded_at": recorded_at,
                     "participants": ";".join(ids)})
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(object)
    manifest = manifest.where(manifest.notna(), None)
    participants = pd.DataFrame({"participant_id": all_participants}, columns=list(PARTICIPANT_COLUMNS)).astype(object)
    participants = participants.where(participants.notna(), None)
    return ManifestSkeleton(folder, survey_id, manifest, participants, tuple(sources), tuple(skipped))


def existing_manifest_files(survey_url: str, settings: Settings | None = None) -> list[str]:
    """The manifest and participants files (CSV or JSON) ``survey_url`` already holds, as URLs."""
    fs, root = filesystem(str(survey_url).rstrip("/"), settings)
    return [join(str(survey_url).rstrip("/"), name) for name in _EXISTING if fs.exists(posixpath.join(root, name))]


def write_manifest_skeleton(skeleton: ManifestSkeleton, *, force: bool = False, settings: Settings | None = None) -> tuple[str, str]:
    """Write ``participants.csv`` then ``manifest.csv`` into the skeleton's folder (each atomically);
    returns their URLs. Raises FileExistsError naming the files when the folder already has a
    manifest or participants file (CSV or JSON) and ``force`` is False."""
    existing = existing_manifest_files(skeleton.survey_url, settings)
    if existing and not force:
        raise FileExistsError(f"{skeleton.survey_url} already has {', '.join(posixpath.basename(u) for u in existing)}; not replacing them without force")
    write_bytes_atomic(skeleton.participants_url, skeleton.participants_csv().encode("utf-8"), settings)
    write_bytes_atomic(skeleton.manifest_url, skeleton.manifest_csv().encode("utf-8"), settings)
    return skeleton.manifest_url, skeleton.participants_url


def skeleton_text(skeleton: ManifestSkeleton) -> str:
    """Both files as one text, each under a ``# <url>`` line (what ``--dry-run`` prints)."""
    return f"# {skeleton.manifest_url}\n{skeleton.manifest_csv()}\n# {skeleton.participants_url}\n{skeleton.participants_csv()}"
