"""Runs: the jobs the CLI and the flows start (the nightly labelling, training, cross-validation, recovery).

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['crossval', 'nightly', 'recovery', 'retrain'],
    submod_attrs={
        'crossval': ['HeldOut', 'Fold', 'CrossValidation', 'predict_held_out', 'evaluation_groups', 'cross_validate'],
        'nightly': ['FLOW_NAME', 'HASH_CHUNK_BYTES', 'INPUT_SUITES', 'RECORDING_CACHE_DIR', 'Step', 'Quarantined', 'RecordingWarning', 'Discovery', 'PlannedUtterance', 'Batch', 'Plan', 'BatchFeatures', 'BatchPredictions', 'BatchLoad', 'NightlyReport', 'run_settings', 'RunStart', 'start_run', 'record_quarantine', 'record_warnings', 'record_validations', 'discover', 'load_surveys', 'recording_hash', 'plan', 'extract_batch', 'store_batch_features', 'featurise_batch', 'validate_batch_features', 'load_trained_model', 'predict_batch', 'apply_context', 'validate_batch_predictions', 'load_batch', 'finish', 'render_markdown', 'LabelledBatch', 'model_for', 'label_batch', 'label_features', 'LabelBatches', 'label_in_order', 'add_labelled', 'add_load', 'run_nightly', 'apply_plan'],
        'recovery': ['Recovery', 'process_alive', 'recover_abandoned'],
        'retrain': ['Step', 'TrainingSet', 'Registration', 'TrainingRun', 'training_spec', 'load_training_set', 'SPLIT_FRACTIONS', 'make_split', 'fit', 'evaluate_held_out', 'register', 'promote', 'train_and_register', 'render_markdown'],
    },
)
