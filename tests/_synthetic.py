"""Small synthetic feature sets whose class is visible in the features (for fast model tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

FAMILY_ROWS = {"mfcc": 40, "chroma": 12, "mel": 128, "contrast": 7}


def synthetic_set(
    n_speakers: int = 8, per_class: int = 3, classes=("neutral", "happy", "sad", "angry"), frames: int = 173,
    seed: int = 0, speaker_offset: float = 2.0, families=("mfcc",),
):
    """Feature dict, items frame (utterance_id, speaker, gender, emotion, corpus).

    Each class raises a different band of rows; each speaker adds its own constant offset to
    every row (what per-speaker normalisation removes).
    """
    rng = np.random.default_rng(seed)
    rows = []
    feats = {f: [] for f in families}
    for s in range(n_speakers):
        speaker = f"synth:{s:02d}"
        offset = {f: rng.normal(0, speaker_offset, size=(FAMILY_ROWS[f], 1)) for f in families}
        for c, emotion in enumerate(classes):
            for k in range(per_class):
                for f in families:
                    n_rows = FAMILY_ROWS[f]
                    x = rng.normal(0, 1, size=(n_rows, frames)) + offset[f]
                    band = slice(c * n_rows // len(classes), (c + 1) * n_rows // len(classes))
                    x[band] += 1.5
                    feats[f].append(x.astype(np.float32))
                rows.append({"utterance_id": f"{speaker}:{emotion}:{k}", "speaker": speaker,
                             "gender": "female" if s % 2 else "male", "emotion": emotion, "corpus": "synth"})
    return {f: np.stack(v) for f, v in feats.items()}, pd.DataFrame(rows)


def tiny_trained(architecture: str = "pooled", normalization: str = "speaker", epochs: int = 15, seed: int = 0,
                 families=("mfcc",), input_kind: str = "mfcc", spec_hash: str = "spec-a"):
    """A small model trained on ``synthetic_set`` (32 frames): (trained, feats, items, split)."""
    from ser_pipeline.labels import LabelSet
    from ser_pipeline.training.splits import speaker_split
    from ser_pipeline.training.fit import TrainConfig, train

    feats, items = synthetic_set(frames=32, families=families)
    split = speaker_split(items, seed=0)
    labels = LabelSet(labels=("neutral", "happy", "sad", "angry"))
    config = TrainConfig(architecture=architecture, input_kind=input_kind, normalization=normalization, epochs=epochs,
                         batch_size=16, seed=seed)
    trained = train(feats, items.emotion, items.speaker, split, labels, spec_hash, config,
                    utterance_ids=items.utterance_id, progress=None)
    return trained, feats, items, split
