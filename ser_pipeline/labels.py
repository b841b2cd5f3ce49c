"""The unified emotion label set and the mapping from each corpus's own labels.

Every corpus is mapped onto the eight RAVDESS emotions, the widest set among our corpora:

| unified   | RAVDESS | CREMA-D | SAVEE | TESS    |
|-----------|---------|---------|-------|---------|
| neutral   | 01      | NEU     | n     | neutral |
| calm      | 02      | -       | -     | -       |
| happy     | 03      | HAP     | h     | happy   |
| sad       | 04      | SAD     | sa    | sad     |
| angry     | 05      | ANG     | a     | angry   |
| fearful   | 06      | FEA     | f     | fear    |
| disgust   | 07      | DIS     | d     | disgust |
| surprised | 08      | -       | su    | ps      |

A merge (for example calm into neutral, the usual choice since calm exists only in
RAVDESS) maps labels before training; the warehouse keeps one probability column per
unified emotion, so models trained on merged sets simply leave the merged ones empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)

NEGATIVE_EMOTIONS: frozenset[str] = frozenset({"sad", "angry", "fearful", "disgust"})


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of class labels plus the merge that produced it from EMOTIONS."""

    labels: tuple[str, ...]
    merge: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_merge(cls, merge: Mapping[str, str] | None = None) -> "LabelSet":
        merge = dict(merge or {})
        for src, dst in merge.items():
            if src not in EMOTIONS or dst not in EMOTIONS:
                raise ValueError(f"unknown emotion in merge {src!r} -> {dst!r}; known: {EMOTIONS}")
        labels = tuple(e for e in EMOTIONS if e not in merge)
        return cls(labels=labels, merge=tuple(sorted(merge.items())))

    def map(self, emotion: str) -> str:
        return dict(self.merge).get(emotion, emotion)

    def index(self, emotion: str) -> int:
        return self.labels.index(self.map(emotion))

    def indices(self, emotions: Iterable[str]) -> list[int]:
        return [self.index(e) for e in emotions]

    def __len__(self) -> int:
        return len(self.labels)


def parse_merge(text: str | None) -> dict[str, str]:
    """Parse ``"calm=neutral,surprised=happy"`` into a mapping."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        src, sep, dst = part.partition("=")
        if not sep:
            raise ValueError(f"merge item {part!r} is not of the form source=target")
        out[src.strip()] = dst.strip()
    return out
