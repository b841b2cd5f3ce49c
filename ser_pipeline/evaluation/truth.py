"""Scoring the warehouse's labels against a generated archive's known truth.

Generated archives (``synth.generate_archive``) carry ``_truth.csv`` per survey: the emotion
each turn was synthesised with. This joins those turns to the warehouse's utterances by
session and start time and reports how often the stored labels agree, for the model's own
label and for the context-refined one. Real archives have no truth file; this is for the
demo and for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ser_pipeline import storage
from ser_pipeline.settings import Settings


@dataclass(frozen=True)
class Agreement:
    utterances: int
    matched: int
    accuracy: float
    context_accuracy: float
    model_version: str | None


def load_truth(archive_url: str, settings: Settings | None = None) -> pd.DataFrame:
    """Every ``_truth.csv`` under the archive, concatenated (empty frame when there is none)."""
    frames = []
    for url in storage.list_files(archive_url, settings=settings):
        if url.rsplit("/", 1)[-1] == "_truth.csv":
            with storage.open_url(url, "rb", settings=settings) as fh:
                frames.append(pd.read_csv(fh))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def agreement(con, truth: pd.DataFrame, tolerance_s: float = 0.05) -> Agreement:
    """Agreement of the current model's stored labels with ``truth`` on the turns both have."""
    stored = con.execute(
        """
        SELECT u.session_id, u.start_s, p.label, p.context_label, p.model_version
        FROM utterances u JOIN predictions p USING (utterance_id)
        WHERE p.model_version = (SELECT model_version FROM v_current_model)
        """
    ).df()
    if stored.empty or truth.empty:
        return Agreement(len(stored), 0, float("nan"), float("nan"), None)
    merged = pd.merge_asof(
        stored.sort_values("start_s"),
        truth[["session_id", "start_s", "emotion"]].sort_values("start_s"),
        on="start_s", by="session_id", tolerance=tolerance_s, direction="nearest",
    ).dropna(subset=["emotion"])
    return Agreement(
        utterances=len(stored),
        matched=len(merged),
        accuracy=float((merged["label"] == merged["emotion"]).mean()) if len(merged) else float("nan"),
        context_accuracy=float((merged["context_label"] == merged["emotion"]).mean()) if len(merged) else float("nan"),
        model_version=str(stored["model_version"].iloc[0]),
    )

