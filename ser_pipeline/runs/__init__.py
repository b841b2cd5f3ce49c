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
        'crossval': ['Fold', 'CrossValidation', 'cross_validate'],
        'recovery': ['Recovery', 'process_alive', 'recover_abandoned'],
        'retrain': ['Step', 'TrainingSet', 'Registration', 'TrainingRun', 'training_spec', 'load_training_set', 'TEST_SHARE', 'split_fractions', 'make_split', 'fit', 'evaluate_held_out', 'register', 'promote', 'train_and_register', 'retraining_markdown'],
    },
)
