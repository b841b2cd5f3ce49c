"""Data-quality gates: the Great Expectations suites in ``expectations/`` run on DataFrames.

Three suites guard the three hand-overs of the nightly run:

* ``manifest``: the archive's ``manifest.csv`` rows (required columns, unique session ids,
  valid timestamps, referenced audio files present; optional columns checked when present);
* ``features``: a per-window summary of a feature batch (shapes as in the FeatureSpec, finite
  values, plausible ranges per family, one row per utterance window);
* ``predictions``: probabilities in [0, 1] summing to 1, labels in the label set, and a batch
  not collapsed onto one class.

Suites live as JSON (GX Core 1.x ``ExpectationSuite`` serialisation) so they are reviewed
like code. Some expectations need values the raw frame does not hold (does the file exist, do
the probabilities sum to 1); the runner for each suite adds those *computed columns* before
validating, and the suite's ``meta.notes`` names them. Thresholds that depend on the run (the
FeatureSpec's shape, the model's label set) are GX suite parameters (``{"$PARAMETER": ...}``).

Great Expectations is imported lazily (a few seconds) and runs in an ephemeral, in-memory
context: nothing is written to disk, and the result is returned as a plain
:class:`ValidationResult` that the warehouse and the flow artifact record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.errors import ValidationFailed
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.resources import EXPECTATIONS_DIR
from ser_pipeline.settings import Settings

SUITES = ("manifest", "features", "predictions")

# Default collapse rule for prediction batches (see expectations/predictions.json meta.notes).
MIN_ROWS_TO_JUDGE = 50
MAX_LABEL_SHARE = 0.95


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold, with what GX observed."""

    expectation: str  # GX expectation type, e.g. "expect_column_values_to_be_unique"
    column: str | None
    why: str | None  # the suite's own explanation (meta.why)
    kwargs: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: tuple[Any, ...] = ()
    exception: str | None = None
    # "row": a failure names the rows it is about (meta.scope), and only they are set aside;
    # "table": the whole batch is judged.
    scope: str = "table"
    rows: tuple[int, ...] = ()  # 0-based positions of the unexpected rows (row scope)

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        parts = [f"{self.expectation}{where}"]
        if self.why:
            parts.append(f"({self.why})")
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} unexpected, e.g. {list(self.unexpected_examples)[:3]}")
        elif self.observed is not None:
            parts.append(f"observed {self.observed!r}")
        if self.exception:
            parts.append(f"error: {self.exception}")
        return " ".join(parts)


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of one suite on one batch."""

    suite: str
    success: bool
    rows: int
    evaluated: int
    failed: tuple[FailedExpectation, ...] = ()
    skipped: tuple[str, ...] = ()  # expectations not applicable to this batch, with the reason

    @property
    def failed_expectations(self) -> list[str]:
        return [f.expectation for f in self.failed]

    def summary(self) -> str:
        head = f"suite {self.suite}: {'passed' if self.success else 'FAILED'} ({self.evaluated} expectations on {self.rows} rows"
        head += f", {len(self.skipped)} skipped)" if self.skipped else ")"
        return "\n".join([head, *(f"  - {f.describe()}" for f in self.failed)])

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @property
    def table_failures(self) -> tuple[FailedExpectation, ...]:
        """Failures that judge the whole batch (a manifest that cannot be trusted at all); a
        row-scoped one that names no row (GX raised) counts here too."""
        return tuple(f for f in self.failed if f.scope != "row" or not f.rows)

    def row_failures(self) -> dict[int, list[FailedExpectation]]:
        """Row-scoped failures by 0-based row: what each failing row got wrong."""
        by_row: dict[int, list[FailedExpectation]] = {}
        for f in self.failed:
            if f.scope == "row":
                for row in f.rows:
                    by_row.setdefault(row, []).append(f)
        return dict(sorted(by_row.items()))

    def raise_for_failure(self) -> None:
        if not self.success:
            raise ValidationFailed(self.summary())


# -- suites and the GX runner ---------------------------------------------------------------


@lru_cache(maxsize=None)
def _suite_text(name: str) -> str:
    path = EXPECTATIONS_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"expectation suite {name!r} not found at {path}")
    return path.read_text()


def load_suite(name: str) -> dict[str, Any]:
    """The suite ``name`` as its JSON dict (``name``, ``expectations``, ``meta``)."""
    return json.loads(_suite_text(name))


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return parameters[value["$PARAMETER"]]
    return value


def _applicable(suite: dict[str, Any], df: pd.DataFrame, parameters: Mapping[str, Any], families: set[str] | None,
                spec_families: set[str] | None = None) -> tuple[list[dict], list[str]]:
    """Split the suite's expectations into those that apply to this batch and skip notes.

    Expectations of a family the batch's FeatureSpec does not have (``spec_families``) do
    not apply at all; those of a spec family missing from the batch are skipped, with a note.
    So are those marked ``meta.optional`` whose column the batch does not have (an optional
    column keeps its value checks only when present: GX would fail them on a missing column)."""
    keep, skipped = [], []
    for exp in suite["expectations"]:
        meta = exp.get("meta", {})
        column = exp["kwargs"].get("column")
        name = f"{exp['type']}({column or ''})"
        if meta.get("optional") and column and column not in df.columns:
            skipped.append(f"{name}: optional column {column} absent")
            continue
        if spec_families is not None and meta.get("family") and meta["family"] not in spec_families:
            continue
        if families is not None and meta.get("family") and meta["family"] not in families:
            skipped.append(f"{name}: family {meta['family']} not in batch")
            continue
        if "min_rows" in meta:
            min_rows = int(_resolve(meta["min_rows"], parameters))
            if len(df) < min_rows:
                skipped.append(f"{name}: batch of {len(df)} rows is below {min_rows} rows needed to judge")
                continue
        keep.append(exp)
    return keep, skipped


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a GX result value (numpy scalars, NaN)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def run_suite(
    name: str,
    df: pd.DataFrame,
    parameters: Mapping[str, Any] | None = None,
    *,
    families: set[str] | None = None,
    spec_families: set[str] | None = None,
) -> ValidationResult:
    """Validate ``df`` (already holding any computed columns) against suite ``name``."""
    from great_expectations.core import ExpectationSuite

    parameters = dict(parameters or {})
    suite = load_suite(name)
    expectations, skipped = _applicable(suite, df, parameters, families, spec_families)
    gx_suite = ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta"))
    context = _gx_context()
    df = df.reset_index(drop=True)  # GX's unexpected_index_list are then row positions
    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(f"{name}_frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    # Row-scoped suites need every failing row, not GX's first 20 examples.
    row_scoped = any(e.get("meta", {}).get("scope") == "row" for e in expectations)
    result = batch.validate(gx_suite, result_format="COMPLETE" if row_scoped else "SUMMARY", expectation_parameters=parameters)
    failed = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        res = r.result or {}
        exc = r.exception_info or {}
        failed.append(
            FailedExpectation(
                expectation=config.type,
                column=kwargs.get("column"),
                why=(config.meta or {}).get("why"),
                kwargs=_plain(kwargs),
                # table-column expectations name what is missing in details.mismatched
                observed=_plain((res.get("details") or {}).get("mismatched") or res.get("observed_value")),
                unexpected_count=res.get("unexpected_count"),
                unexpected_examples=tuple(_plain(res.get("partial_unexpected_list") or [])[:10]),
                exception=exc.get("exception_message") if exc.get("raised_exception") else None,
                scope=(config.meta or {}).get("scope", "table"),
                rows=tuple(int(i) for i in (res.get("unexpected_index_list") or [])) if row_scoped else (),
            )
        )
    return ValidationResult(
        suite=name,
        success=bool(result.success),
        rows=len(df),
        evaluated=len(result.results),
        failed=tuple(failed),
        skipped=tuple(skipped),
    )


# -- manifest ---------------------------------------------------------------------------------


def _timestamp_valid(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return False
    return ts.tzinfo is not None


def manifest_check_frame(df: pd.DataFrame, survey_url: str | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """``df`` plus the manifest suite's computed columns ``recorded_at_valid`` and ``audio_file_exists``.

    Audio files are looked up at ``audio_url`` when the frame has that column (as
    ``manifest.py`` resolves them), else at ``survey_url``/``audio_file``. Rows of a JSON
    manifest are taken as they are documented: a ``participants`` list is checked as its
    ``;``-joined ids, a ``metadata`` object as its JSON text.
    """
    from ser_pipeline.storage import filesystem, join

    out = df.copy()
    if "participants" in out:
        out["participants"] = [";".join(map(str, v)) if isinstance(v, (list, tuple)) else v for v in out["participants"]]
    if "metadata" in out:
        out["metadata"] = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in out["metadata"]]
    out["recorded_at_valid"] = [_timestamp_valid(v) for v in out["recorded_at"]] if "recorded_at" in out else False
    if "audio_url" in out:
        urls = list(out["audio_url"])
    elif "audio_file" in out and survey_url is not None:
        urls = [join(survey_url, str(f)) if isinstance(f, str) and f else None for f in out["audio_file"]]
    elif "audio_file" in out:
        raise ValueError("validate_manifest needs survey_url (or an audio_url column) to check that audio files exist")
    else:
        urls = [None] * len(out)
    exists = []
    for url in urls:
        if not url:
            exists.append(False)
            continue
        fs, path = filesystem(url, settings)
        exists.append(bool(fs.isfile(path)))
    out["audio_file_exists"] = exists
    return out


def manifest_columns() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(required, optional)`` manifest columns as the ``manifest`` suite states them:
    required are those it expects to exist, optional those its ``meta.optional_columns`` names.
    ``manifest.py`` and docs/WAREHOUSE.md are checked against this (tests/test_validation.py)."""
    suite = load_suite("manifest")
    required = tuple(e["kwargs"]["column"] for e in suite["expectations"] if e["type"] == "expect_column_to_exist")
    return required, tuple(suite.get("meta", {}).get("optional_columns", ()))


def validate_manifest(df: pd.DataFrame, survey_url: str | None = None, *, settings: Settings | None = None) -> ValidationResult:
    """Run the ``manifest`` suite on manifest rows (``survey_url``: the folder they are relative to).

    Only the required columns must exist; checks on an optional column (``metadata`` parses as
    JSON) run when the frame has it and are listed in ``result.skipped`` when it does not."""
    return run_suite("manifest", manifest_check_frame(df, survey_url, settings))


# -- features ---------------------------------------------------------------------------------


def feature_summary_frame(keys: pd.DataFrame, feats: Mapping[str, np.ndarray], window_column: str = "window") -> pd.DataFrame:
    """One row per window: ``utterance_id``, ``window`` and per family ``<family>_rows``,
    ``_frames``, ``_nonfinite``, ``_min``, ``_max`` (min/max over finite values).

    ``keys`` has one row per window (``utterance_id`` and ``window_column``), aligned with the
    first axis of every array in ``feats`` (``{family: (n, rows, frames)}``).
    """
    n = len(keys)
    out = pd.DataFrame(
        {
            "utterance_id": keys["utterance_id"].to_numpy() if "utterance_id" in keys else [None] * n,
            "window": keys[window_column].to_numpy() if window_column in keys else [None] * n,
        }
    )
    for family, arr in feats.items():
        arr = np.asarray(arr)
        if arr.ndim != 3 or arr.shape[0] != n:
            raise ValueError(f"features[{family!r}] has shape {arr.shape}; expected ({n}, rows, frames) to match {n} key rows")
        flat = arr.reshape(n, -1)
        nonfinite = flat.shape[1] - np.isfinite(flat).sum(axis=1)
        with np.errstate(all="ignore"):
            lo, hi = flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)
        for i in np.flatnonzero(nonfinite):  # rare: min/max over the finite values only
            finite = flat[i][np.isfinite(flat[i])]
            lo[i], hi[i] = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
        out[f"{family}_rows"] = arr.shape[1]
        out[f"{family}_frames"] = arr.shape[2]
        out[f"{family}_nonfinite"] = nonfinite
        out[f"{family}_min"] = lo
        out[f"{family}_max"] = hi
    return out


def validate_features(keys: pd.DataFrame, feats: Mapping[str, np.ndarray], spec: Any, *, window_column: str = "window") -> ValidationResult:
    """Run the ``features`` suite on a feature batch made with ``spec`` (a ``FeatureSpec``:
    ``.families`` rows per family, ``.frames`` columns). Families absent from ``feats`` are skipped."""
    summary = feature_summary_frame(keys, feats, window_column)
    parameters: dict[str, Any] = {"n_frames": int(spec.frames)}
    parameters.update({f"{family}_rows": int(rows) for family, rows in spec.families.items()})
    unknown = set(feats) - set(spec.families)
    if unknown:
        raise ValueError(f"feature families {sorted(unknown)} are not in the FeatureSpec ({sorted(spec.families)})")
    return run_suite("features", summary, parameters, families=set(feats), spec_families=set(spec.families))


# -- predictions ------------------------------------------------------------------------------


def predictions_check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the predictions suite's computed columns: ``p_sum``, ``p_min``, ``p_max``
    and the same for ``ctx_p_*`` (NaN-skipping, over the emotions' probability columns), and
    ``label_share``."""
    out = df.copy()
    for prefix in ("p", "ctx_p"):
        values = out[[f"{prefix}_{e}" for e in EMOTIONS if f"{prefix}_{e}" in out]].astype(float)
        for stat in ("sum", "min", "max"):
            out[f"{prefix}_{stat}"] = getattr(values, stat)(axis=1, skipna=True) if values.shape[1] else np.nan
    if "label" in out and len(out):
        out["label_share"] = out["label"].map(out["label"].value_counts(normalize=True)).astype(float)
    else:
        out["label_share"] = np.nan
    return out


def validate_predictions(
    df: pd.DataFrame,
    labels: Sequence[str] = EMOTIONS,
    *,
    min_rows_to_judge: int = MIN_ROWS_TO_JUDGE,
    max_label_share: float = MAX_LABEL_SHARE,
) -> ValidationResult:
    """Run the ``predictions`` suite; ``labels`` is the model's label set.

    Collapse rule: batches of at least ``min_rows_to_judge`` utterances must carry at least
    two labels and no label on more than ``max_label_share`` of them.
    """
    parameters = {"labels": list(labels), "min_rows_to_judge": int(min_rows_to_judge), "max_label_share": float(max_label_share)}
    return run_suite("predictions", predictions_check_frame(df), parameters)
