"""Training: corpora, labelled sets, speaker splits, normalisation, the networks, fitting and the model registry.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['corpora', 'dataset', 'fit', 'networks', 'normalization', 'registry', 'splits'],
    submod_attrs={
        'corpora': ['log', 'CORPORA', 'CorpusItem', 'SkippedFile', 'RAVDESS_EMOTIONS', 'RAVDESS_INTENSITY', 'RAVDESS_STATEMENTS', 'CREMA_D_EMOTIONS', 'CREMA_D_LEVELS', 'CREMA_D_SENTENCES', 'CREMA_D_DEMOGRAPHICS', 'SAVEE_SPEAKERS', 'SAVEE_EMOTIONS', 'TESS_SPEAKERS', 'TESS_EMOTIONS', 'synth_file_name', 'parse_synth', 'read_ravdess', 'read_crema_d', 'read_savee', 'read_tess', 'read_synth', 'READERS', 'detect_corpus', 'read_corpus', 'ITEM_COLUMNS', 'items_frame'],
        'dataset': ['LabelledSet', 'expand_split', 'load_labelled', 'load_clips', 'corrupted_copies'],
        'fit': ['TrainConfig', 'TrainedModel', 'model_inputs', 'training_fingerprint', 'seed_everything', 'train'],
        'networks': ['INPUT_FAMILIES', 'ARCHITECTURES', 'InputKind', 'feature_spec_for', 'input_shape_for', 'build_seed_cnn', 'custom_objects', 'build_pooled_mlp', 'build_functional_mlp', 'build_model'],
        'normalization': ['NormalizationMode', 'Normalizer', 'fit_normalizer'],
        'registry': ['CHAMPION', 'ModelNotFound', 'ModelInfo', 'new_version', 'save_model', 'champion_version', 'model_meta', 'list_models', 'promote', 'promote_if_better', 'load_model', 'load_metrics'],
        'splits': ['Split', 'speaker_split', 'random_split', 'speaker_kfold'],
    },
)
