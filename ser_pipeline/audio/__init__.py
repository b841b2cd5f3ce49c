"""Audio in: decoding any supported file, and the recording conditions and augmentations applied to waveforms.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['augment', 'conditions', 'decode'],
    submod_attrs={
        'augment': ['AugmentConfig', 'augment_clips', 'augment_training_split'],
        'conditions': ['CONDITIONS', 'CODECS', 'GAIN_RANGE_DB', 'TRAINING_GAIN_RANGE_DB', 'parse_conditions', 'condition_rng', 'active_speech_level_db', 'coloured_noise', 'babble_noise', 'add_noise', 'measured_snr_db', 'room_impulse_response', 'estimate_rt60_s', 'codec_round_trip', 'apply_condition', 'corrupt_for_training'],
        'decode': ['DEFAULT_SAMPLE_RATE', 'ContainerDefect', 'AudioInfo', 'Audio', 'probe_audio', 'load_audio', 'iter_audio_blocks'],
    },
)
