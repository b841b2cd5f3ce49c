"""Features: the frame features and utterance functionals a model reads, and the Parquet store they live in.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['encoder', 'extraction', 'frames', 'functionals', 'spec', 'store'],
    submod_attrs={
        'encoder': ['BUNDLED', 'EncoderSource', 'resolve_encoder', 'assemble_bundle', 'encoder_spec', 'located_spec', 'encode_window', 'embed'],
        'extraction': ['PLAIN_SOURCE', 'Failure', 'ExtractionSummary', 'relative_path', 'item_record', 'featurise'],
        'frames': ['extract_features', 'one_blas_thread', 'extract_features_naive'],
        'functionals': ['functional_names', 'pitch_track', 'speech_mask', 'summarise'],
        'spec': ['FAMILIES', 'FUNCTIONALS', 'EMBEDDING', 'FeatureSpec', 'window_starts', 'fix_length', 'clip_windows'],
        'store': ['KEY_COLUMNS', 'SHAPES_KEY', 'SPEC_KEY', 'partition_name', 'spec_dir', 'feature_files', 'stored_hashes', 'write_features', 'read_features'],
    },
)
