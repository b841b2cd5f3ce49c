"""Evaluation: metrics, a model under recording conditions, and scoring labels through the nightly path.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['held_out', 'metrics', 'robustness', 'sessions', 'truth'],
    submod_attrs={
        'held_out': ['HeldOut', 'predict_held_out', 'evaluation_groups'],
        'metrics': ['expected_calibration_error', 'evaluate', 'write_evaluation_report'],
        'robustness': ['ConditionResult', 'degraded_features', 'evaluate_conditions', 'pool_results', 'condition_row', 'conditions_markdown'],
        'sessions': ['SESSION_TRUTH_COLUMNS', 'SessionArchive', 'assemble_session_archive', 'evaluate_sessions', 'score_warehouse'],
        'truth': ['Agreement', 'load_truth', 'agreement'],
    },
)
