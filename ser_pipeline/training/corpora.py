"""Readers for the labelled training corpora, by each corpus's published file-name convention.

Every reader lists the audio files under a URL (any fsspec URL: local path, ``file://``,
``s3://``), parses each file's name into a :class:`CorpusItem` with the unified emotion label
(the mapping is the table in :mod:`ser_pipeline.labels`), and reports every file it cannot
parse as a :class:`SkippedFile` with the reason, so that nothing is ever silently
mislabelled. Readers return the parsed items; pass a list as ``skipped`` to collect the
skipped files (they are also logged at WARNING level).

Conventions (file stem, without extension; any audio format is accepted):

- ``ravdess``: ``03-01-EE-II-SS-RR-AA`` — modality 03 (audio-only), vocal channel 01
  (speech), emotion 01..08, intensity 01 normal / 02 strong, statement 01/02, repetition,
  actor 01..24 (odd male, even female). Song (channel 02) and video modalities are skipped.
- ``crema_d``: ``1001_DFA_ANG_XX`` — actor, sentence code (12), emotion
  ANG DIS FEA HAP NEU SAD, level LO MD HI XX (XX: unspecified, intensity ``None``). Sex and
  age come from ``VideoDemographics.csv`` found beside the audio or one folder up; without
  it gender and age are ``None``.
- ``savee``: ``DC_a01`` or ``DC/a01`` (speaker folder) — speakers DC JE JK KL, all male;
  emotion code a d f h n sa su followed by the sentence number.
- ``tess``: ``OAF_word_emotion`` — speakers OAF (aged 64) and YAF (aged 26), both female;
  emotion angry disgust fear happy neutral ps sad (``ps``: pleasant surprise), matched
  case-insensitively (the published set has ``_Fear``-style casing slips). The word is the
  ``sentence``. ``folder__file`` names (as in ``quirks/``) use the part after ``__``.
- ``synth``: ``SYN_<speaker>_<gender>_<emotion>_<nn>`` as written by
  :func:`ser_pipeline.synthetic.generate_corpus`, e.g. ``SYN_s03_female_angry_02.wav``.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields

import pandas as pd

from ser_pipeline.labels import EMOTIONS, LabelSet
from ser_pipeline.settings import Settings
from ser_pipeline.storage import AUDIO_EXTENSIONS, filesystem, list_files, open_url

log = logging.getLogger(__name__)

CORPORA: tuple[str, ...] = ("ravdess", "crema_d", "savee", "tess", "synth")


@dataclass(frozen=True)
class CorpusItem:
    """One labelled clip of a training corpus.

    ``speaker`` is corpus-qualified (``ravdess:01``, ``tess:OAF``); ``utterance_id`` is
    ``f"{corpus}:{file stem}"``; ``emotion`` is one of :data:`labels.EMOTIONS`. ``gender``
    (``male``/``female``), ``intensity``, ``sentence`` and ``age`` (years) are ``None`` where
    the corpus does not say.
    """

    path: str
    corpus: str
    speaker: str
    gender: str | None
    emotion: str
    intensity: str | None
    sentence: str | None
    utterance_id: str
    age: int | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file found under a corpus URL that does not follow the corpus's naming convention."""

    path: str
    reason: str


class _Skip(Exception):
    """Raised by a name parser: the file does not follow the convention (message = reason)."""


def _stem(url: str) -> str:
    base = posixpath.basename(url)
    return base.rsplit(".", 1)[0] if "." in base else base


def _parent_name(url: str) -> str:
    return posixpath.basename(posixpath.dirname(url))


# --- RAVDESS -------------------------------------------------------------------------------

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAVDESS_INTENSITY = {"01": "normal", "02": "strong"}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def _parse_ravdess(url: str) -> CorpusItem:
    stem = _stem(url)
    m = _RAVDESS_RE.match(stem)
    if not m:
        raise _Skip("name is not MM-VV-EE-II-SS-RR-AA")
    modality, channel, emo, intensity, statement, _rep, actor = m.groups()
    if modality != "03":
        raise _Skip(f"modality {modality} is not 03 (audio-only)")
    if channel != "01":
        raise _Skip(f"vocal channel {channel} is not 01 (speech)")
    if emo not in RAVDESS_EMOTIONS:
        raise _Skip(f"unknown emotion code {emo}")
    if intensity not in RAVDESS_INTENSITY:
        raise _Skip(f"unknown intensity code {intensity}")
    if statement not in RAVDESS_STATEMENTS:
        raise _Skip(f"unknown statement code {statement}")
    actor_no = int(actor)
    if not 1 <= actor_no <= 24:
        raise _Skip(f"actor {actor} outside 01..24")
    return CorpusItem(
        path=url,
        corpus="ravdess",
        speaker=f"ravdess:{actor}",
        gender="male" if actor_no % 2 else "female",
        emotion=RAVDESS_EMOTIONS[emo],
        intensity=RAVDESS_INTENSITY[intensity],
        sentence=RAVDESS_STATEMENTS[statement],
        utterance_id=f"ravdess:{stem}",
    )


# --- CREMA-D -------------------------------------------------------------------------------

CREMA_D_EMOTIONS = {"NEU": "neutral", "HAP": "happy", "SAD": "sad", "ANG": "angry", "FEA": "fearful", "DIS": "disgust"}
CREMA_D_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": None}
CREMA_D_SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
_CREMA_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
CREMA_D_DEMOGRAPHICS = "VideoDemographics.csv"


@dataclass(frozen=True)
class _Demographic:
    gender: str | None
    age: int | None


def _read_crema_demographics(url: str, settings: Settings | None) -> dict[str, _Demographic]:
    """``VideoDemographics.csv`` beside the audio or one folder up, keyed by ActorID; {} if absent."""
    fs, root = filesystem(url, settings)
    for folder in (root.rstrip("/"), posixpath.dirname(root.rstrip("/"))):
        if not folder:
            continue  # the audio sits at a bucket's root: there is no folder above it
        path = posixpath.join(folder, CREMA_D_DEMOGRAPHICS)
        if not fs.exists(path):
            continue
        with open_url(fs.unstrip_protocol(path), "rb", settings) as fh:
            frame = pd.read_csv(fh, dtype=str)
        missing = {"ActorID", "Age", "Sex"} - set(frame.columns)
        if missing:
            log.warning("%s lacks columns %s; CREMA-D gender and age left unknown", path, sorted(missing))
            return {}
        out: dict[str, _Demographic] = {}
        for row in frame.itertuples(index=False):
            sex = str(row.Sex).strip().lower()
            age = str(row.Age).strip()
            out[str(row.ActorID).strip()] = _Demographic(
                gender=sex if sex in ("male", "female") else None,
                age=int(age) if age.isdigit() else None,
            )
        return out
    return {}


def _crema_parser(demographics: dict[str, _Demographic]) -> Callable[[str], CorpusItem]:
    def parse(url: str) -> CorpusItem:
        stem = _stem(url)
        m = _CREMA_RE.match(stem)
        if not m:
            raise _Skip("name is not ActorID_Sentence_Emotion_Level")
        actor, sentence, emo, level = m.groups()
        if sentence not in CREMA_D_SENTENCES:
            raise _Skip(f"unknown sentence code {sentence}")
        if emo not in CREMA_D_EMOTIONS:
            raise _Skip(f"unknown emotion code {emo}")
        if level not in CREMA_D_LEVELS:
            raise _Skip(f"unknown level {level}")
        demo = demographics.get(actor, _Demographic(None, None))
        return CorpusItem(
            path=url,
            corpus="crema_d",
            speaker=f"crema_d:{actor}",
            gender=demo.gender,
            emotion=CREMA_D_EMOTIONS[emo],
            intensity=CREMA_D_LEVELS[level],
            sentence=CREMA_D_SENTENCES[sentence],
            utterance_id=f"crema_d:{stem}",
            age=demo.age,
        )

    return parse


# --- SAVEE ---------------------------------------------------------------------------------

SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_EMOTIONS = {
    "n": "neutral",
    "h": "happy",
    "sa": "sad",
    "a": "angry",
    "f": "fearful",
    "d": "disgust",
    "su": "surprised",
}
_SAVEE_CODE = r"(sa|su|a|d|f|h|n)(\d{2})"
_SAVEE_FLAT_RE = re.compile(rf"^([A-Z]{{2}})_{_SAVEE_CODE}$")
_SAVEE_FOLDER_RE = re.compile(rf"^{_SAVEE_CODE}$")


def _parse_savee(url: str) -> CorpusItem:
    stem = _stem(url)
    flat = _SAVEE_FLAT_RE.match(stem)
    if flat:
        speaker, code, number = flat.groups()
    else:
        folder = _SAVEE_FOLDER_RE.match(stem)
        if not folder:
            raise _Skip("name is neither SPEAKER_<code><nn> nor <speaker folder>/<code><nn>")
        speaker = _parent_name(url)
        code, number = folder.groups()
    if speaker not in SAVEE_SPEAKERS:
        raise _Skip(f"unknown SAVEE speaker {speaker!r} (known: {', '.join(SAVEE_SPEAKERS)})")
    return CorpusItem(
        path=url,
        corpus="savee",
        speaker=f"savee:{speaker}",
        gender="male",
        emotion=SAVEE_EMOTIONS[code],
        intensity=None,
        sentence=None,
        utterance_id=f"savee:{stem if flat else f'{speaker}_{code}{number}'}",
    )


# --- TESS ----------------------------------------------------------------------------------

TESS_SPEAKERS = {"OAF": 64, "YAF": 26}
TESS_EMOTIONS = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fear": "fearful",
    "disgust": "disgust",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
}
_TESS_RE = re.compile(
    r"^(OAF|YAF)_(.+?)_(" + "|".join(sorted(TESS_EMOTIONS, key=len, reverse=True)) + r")$",
    re.IGNORECASE,
)


def _parse_tess(url: str) -> CorpusItem:
    stem = _stem(url)
    name = stem.rsplit("__", 1)[-1]  # "OAF_angry__OAF_back_angry": folder__file
    m = _TESS_RE.match(name)
    if not m:
        raise _Skip("name is not {OAF|YAF}_<word>_<emotion> with a known emotion")
    speaker, word, emo = m.group(1).upper(), m.group(2), m.group(3).lower()
    return CorpusItem(
        path=url,
        corpus="tess",
        speaker=f"tess:{speaker}",
        gender="female",
        emotion=TESS_EMOTIONS[emo],
        intensity=None,
        sentence=word.lower(),
        utterance_id=f"tess:{stem}",
        age=TESS_SPEAKERS[speaker],
    )


# --- synth ---------------------------------------------------------------------------------

_SYNTH_RE = re.compile(r"^SYN_([A-Za-z0-9]+)_(male|female)_([a-z]+)_(\d+)$")


def synth_file_name(speaker: str, gender: str, emotion: str, number: int, ext: str = "wav") -> str:
    """The file name :func:`read_synth` parses: ``SYN_<speaker>_<gender>_<emotion>_<nn>.<ext>``."""
    if not re.fullmatch(r"[A-Za-z0-9]+", speaker):
        raise ValueError(f"synth speaker id {speaker!r} must be letters and digits only")
    if gender not in ("male", "female") or emotion not in EMOTIONS:
        raise ValueError(f"bad synth label gender={gender!r} emotion={emotion!r}")
    return f"SYN_{speaker}_{gender}_{emotion}_{number:02d}.{ext}"


def parse_synth(url: str) -> CorpusItem:
    """The item a generated clip's file name describes (``synth.generate_corpus`` writes them)."""
    stem = _stem(url)
    m = _SYNTH_RE.match(stem)
    if not m:
        raise _Skip("name is not SYN_<speaker>_<gender>_<emotion>_<nn>")
    speaker, gender, emotion, _number = m.groups()
    if emotion not in EMOTIONS:
        raise _Skip(f"unknown emotion {emotion!r}")
    return CorpusItem(
        path=url,
        corpus="synth",
        speaker=f"synth:{speaker}",
        gender=gender,
        emotion=emotion,
        intensity=None,
        sentence=None,
        utterance_id=f"synth:{stem}",
    )


# --- reading -------------------------------------------------------------------------------


def _audio_files(url: str, settings: Settings | None) -> list[str]:
    return list_files(url, AUDIO_EXTENSIONS, settings)


def _is_hidden(url: str, root: str) -> bool:
    rel = url[len(root) :] if url.startswith(root) else posixpath.basename(url)
    return any(part.startswith((".", "_")) for part in rel.split("/") if part)


def _read(url: str, corpus: str, parse: Callable[[str], CorpusItem], skipped: list[SkippedFile] | None,
          settings: Settings | None) -> list[CorpusItem]:
    files = _audio_files(url, settings)
    fs, base = filesystem(url, settings)
    base_url = fs.unstrip_protocol(base.rstrip("/"))
    items: list[CorpusItem] = []
    seen: dict[str, str] = {}
    for path in files:
        if _is_hidden(path, base_url):
            continue  # temporary and private files (".tmp-…", "_truth.csv"), as in archive discovery
        try:
            item = parse(path)
        except _Skip as why:
            reason = f"not a {corpus} file name: {why}"
        else:
            if item.utterance_id in seen:
                reason = f"duplicate utterance_id {item.utterance_id} (also {seen[item.utterance_id]})"
            else:
                seen[item.utterance_id] = path
                items.append(item)
                continue
        log.warning("skipping %s: %s", path, reason)
        if skipped is not None:
            skipped.append(SkippedFile(path, reason))
    return items


def read_ravdess(url: str, skipped: list[SkippedFile] | None = None, settings: Settings | None = None) -> list[CorpusItem]:
    """RAVDESS speech clips under ``url`` (any folder depth, e.g. ``Actor_01/…``)."""
    return _read(url, "ravdess", _parse_ravdess, skipped, settings)


def read_crema_d(url: str, skipped: list[SkippedFile] | None = None, settings: Settings | None = None) -> list[CorpusItem]:
    """CREMA-D clips under ``url``; sex and age from ``VideoDemographics.csv`` when present."""
    return _read(url, "crema_d", _crema_parser(_read_crema_demographics(url, settings)), skipped, settings)


def read_savee(url: str, skipped: list[SkippedFile] | None = None, settings: Settings | None = None) -> list[CorpusItem]:
    """SAVEE clips under ``url``, flat (``DC_a01.wav``) or in speaker folders (``DC/a01.wav``)."""
    return _read(url, "savee", _parse_savee, skipped, settings)


def read_tess(url: str, skipped: list[SkippedFile] | None = None, settings: Settings | None = None) -> list[CorpusItem]:
    """TESS clips under ``url``; emotions matched case-insensitively."""
    return _read(url, "tess", _parse_tess, skipped, settings)


def read_synth(url: str, skipped: list[SkippedFile] | None = None, settings: Settings | None = None) -> list[CorpusItem]:
    """Clips written by :func:`ser_pipeline.synthetic.generate_corpus`."""
    return _read(url, "synth", parse_synth, skipped, settings)


READERS: dict[str, Callable[..., list[CorpusItem]]] = {
    "ravdess": read_ravdess,
    "crema_d": read_crema_d,
    "savee": read_savee,
    "tess": read_tess,
    "synth": read_synth,
}
_NAME_PARSERS: dict[str, Callable[[str], CorpusItem]] = {
    "ravdess": _parse_ravdess,
    "crema_d": _crema_parser({}),
    "savee": _parse_savee,
    "tess": _parse_tess,
    "synth": parse_synth,
}
_ALIASES = {"crema-d": "crema_d", "cremad": "crema_d", "crema": "crema_d", "syn": "synth"}


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in READERS:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)} (or 'auto')")
    return key


def detect_corpus(url: str, settings: Settings | None = None) -> str:
    """The corpus whose naming convention matches most of the audio files under ``url``.

    Raises ``ValueError`` when there is no audio or no convention matches at least half of it.
    """
    files = _audio_files(url, settings)
    if not files:
        raise ValueError(f"{url}: no audio files found")
    counts = {name: 0 for name in _NAME_PARSERS}
    for path in files:
        for name, parse in _NAME_PARSERS.items():
            try:
                parse(path)
            except _Skip:
                continue
            counts[name] += 1
    best = max(counts, key=lambda n: counts[n])
    if counts[best] * 2 < len(files):
        raise ValueError(
            f"{url}: cannot tell the corpus; names matching each convention out of {len(files)} files: {counts}"
        )
    return best


def read_corpus(name: str, url: str, skipped: list[SkippedFile] | None = None,
                settings: Settings | None = None) -> list[CorpusItem]:
    """Read corpus ``name`` (``ravdess``, ``crema_d``, ``savee``, ``tess``, ``synth`` or ``auto``)
    with the caller's ``settings`` (the store's options; None: fsspec's defaults, see ``storage``)."""
    key = detect_corpus(url, settings) if name.strip().lower() == "auto" else _canonical(name)
    return READERS[key](url, skipped, settings)


ITEM_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CorpusItem))


def items_frame(items: Iterable[CorpusItem], label_set: LabelSet | None = None) -> pd.DataFrame:
    """One row per item, columns :data:`ITEM_COLUMNS` (plus ``label``, the merged class, when
    ``label_set`` is given). ``age`` is a nullable integer column."""
    frame = pd.DataFrame([asdict(i) for i in items], columns=list(ITEM_COLUMNS))
    frame["age"] = frame["age"].astype("Int64")
    if label_set is not None:
        frame["label"] = [label_set.map(e) for e in frame["emotion"]]
    return frame
