"""Inference: class probabilities from a trained model, and session context over them.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['context', 'predict'],
    submod_attrs={
        'context': ['sticky_transitions', 'fit_transitions', 'forward_filter', 'filter_sessions', 'assemble_sessions'],
        'predict': ['spec_of', 'pool_windows', 'predict_batches', 'predict_proba', 'predictions_frame'],
    },
)
