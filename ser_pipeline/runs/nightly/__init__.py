"""The nightly labeling run as plain functions: archive in, warehouse rows out.

``flows/nightly.py`` wraps each step below in one Prefect task; :func:`run_nightly` runs the
same steps in order without Prefect, for a notebook or a test. The steps:

1. :func:`discover` -- every survey of the archive: the raw manifest is checked by the GX
   ``manifest`` suite, then read with ``manifest.read_survey`` (participants, sidecar turns).
   A manifest wrong as a whole quarantines its survey; a row wrong only about itself
   quarantines that session, and the others go on; a folder of recordings without a
   manifest is reported. Quarantine makes the run ``partial``, not failed.
2. :func:`load_surveys` -- surveys, sessions and pseudonymised participants into DuckDB.
3. :func:`plan` -- each session recording is hashed (streamed, sha256; cached per
   object version, so unchanged recordings are not re-read every night) and cut into
   utterances: sidecar turns when present, else energy VAD (``segmentation``). An
   utterance's id is fixed by the recording's content hash and its span, so "already done"
   means "the warehouse holds this id's prediction by this model"; those are skipped,
   the rest are grouped into batches of whole sessions (session context needs a session's
   utterances together); a session longer than a batch is cut into parts of at most
   ``batch_size`` utterances, so memory never grows with a recording's length. Unreadable
   recordings are quarantined.
4. per batch, :func:`label_batch` (the unit a task runner spreads over workers; in one
   process, :func:`label_batches_in_order` extracts the next batch's features while
   :func:`label_extracted_batch` labels the current one):
   :func:`extract_batch` (decode each recording once per stretch and slice the utterances,
   windows, features), then side by side :func:`store_batch_features` (appended to the
   Parquet store), :func:`validate_batch_features` (GX ``features``) and
   :func:`predict_batch` (the model on every window, window probabilities averaged per
   utterance; discarded when the features suite fails), :func:`apply_context` (forward filter along each session),
   :func:`validate_batch_predictions` (GX ``predictions``); then, back in the run, one batch
   at a time, :func:`load_batch` (utterances and predictions, idempotent). A failed suite
   stops that batch's load, is recorded in the warehouse and the report, and the run ends
   failed.
5. :func:`finish` -- the ingest run's status and counts; :func:`nightly_markdown` -- the
   run's report (the flow publishes it as a Prefect artifact).

Re-running is safe at every point: every loader is keyed, the feature store skips stored
content hashes, and the plan skips what the warehouse already holds.

The modules, one idea each: ``records`` (what the steps hand each other, and the
``NightlyReport``), ``discovery`` (1), ``warehouse_steps`` (every write: 2, the loads of 4, 5),
``planning`` (3), ``batch_features`` and ``labelling`` (4), ``report`` (the markdown), ``run``
(:func:`run_nightly`, the story of one night). Their public names are importable from here.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['records', 'discovery', 'planning', 'batch_features', 'labelling', 'warehouse_steps', 'report', 'run'],
    submod_attrs={
        'records': ['INPUT_SUITES', 'RunStart', 'Quarantined', 'RecordingWarning', 'Discovery', 'PlannedUtterance', 'Batch', 'Plan', 'BatchFeatures', 'BatchPredictions', 'BatchLoad', 'NightlyReport', 'Stopwatch', 'LabelledBatch'],
        'discovery': ['discover'],
        'planning': ['HASH_CHUNK_BYTES', 'RECORDING_CACHE_DIR', 'recording_hash', 'plan'],
        'batch_features': ['extract_batch', 'store_batch_features', 'featurise_batch', 'validate_batch_features'],
        'labelling': ['load_trained_model', 'predict_batch', 'apply_context', 'validate_batch_predictions', 'ModelOrVersion', 'model_for', 'label_batch', 'label_extracted_batch', 'LabelBatches', 'label_batches_in_order'],
        'warehouse_steps': ['FLOW_NAME', 'start_run', 'record_quarantine', 'record_warnings', 'record_validations', 'load_surveys', 'load_batch', 'finish'],
        'report': ['nightly_markdown'],
        'run': ['run_settings', 'run_nightly'],
    },
)
