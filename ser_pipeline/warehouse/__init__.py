"""The DuckDB warehouse: schema migrations, idempotent loaders and read-only queries.

DuckDB lets one process write a database file at a time, and a writer also blocks readers in
other processes. So writers hold the file only briefly (open, write one transaction, close:
see :func:`writing`), and :func:`connect` retries with backoff while another process holds
it, then raises :class:`~ser_pipeline.errors.WarehouseBusy` naming the holder.

Every loader runs one transaction per batch and is idempotent: rows are keyed (see
``sql/schema.sql``) and a key already present is left alone, so re-running a batch inserts
nothing twice. Predictions are keyed by ``(utterance_id, model_version)``, so a new model
version adds its rows beside the old ones.

Participants are stored only as ``participant_key = HMAC-SHA256(pseudonym_key, id)``
(:func:`pseudonymise`); raw participant ids never reach the warehouse.

The modules, one idea each: ``connection`` (opening the file, transactions), ``schema``
(migrations, views, :func:`writing`), ``pseudonyms``, ``loads`` (the loaders and the
quarantine), ``models`` (model versions, promotion, pin), ``ingest_runs`` (run bookkeeping,
warnings, validation outcomes), ``queries`` (the read side and :func:`status`) and
``report`` (the HTML report). Their public names are importable from here; each module is
imported on first use (lazy_loader).
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['connection', 'schema', 'pseudonyms', 'loads', 'models', 'ingest_runs', 'queries', 'report'],
    submod_attrs={
        'connection': ['connect', 'transaction'],
        'schema': ['MIGRATIONS_DIR', 'VIEWS_FILE', 'Migration', 'migrations', 'schema_version', 'migrate', 'writing'],
        'pseudonyms': ['pseudonymise', 'rotate_pseudonym_key'],
        # _insert_new: tests/test_faults.py wraps it to die mid-transaction.
        'loads': ['PROBABILITY_COLUMNS', 'CONTEXT_PROBABILITY_COLUMNS', 'PREDICTION_COLUMNS', 'UTTERANCE_COLUMNS', 'WarehouseLoadError', 'LoadResult', 'quarantine', 'load_survey', 'load_utterances', 'load_predictions', 'TRANSCRIPT_COLUMNS', 'load_transcripts', '_insert_new'],
        'models': ['record_model_version', 'promote_model', 'pin_model', 'current_model'],
        'ingest_runs': ['start_ingest_run', 'heartbeat', 'RunningRun', 'running_runs', 'abandon_run', 'record_warnings', 'finish_ingest_run', 'record_validation'],
        'queries': ['QUERIES_DIR', 'run_query', 'NamedQuery', 'named_queries', 'run_named_query', 'status'],
    },
)
