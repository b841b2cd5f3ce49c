"""Generated emotional speech: training clips and whole focus-group archives, from a seed.

Tests and ``make demo`` need learnable emotional speech without any licensed corpus. The
signal is a source-filter model of speech: a glottal pulse train (with jitter, shimmer and
aspiration noise) through cascaded formant resonators that move through a sequence of
vowel-like syllables, separated by consonant-like noise bursts. Each emotion sets the
prosody (pitch level, range and contour slope, speaking rate, loudness) and voice quality
(jitter, shimmer, breathiness, spectral tilt via the glottal open quotient); every speaker
has its own voice (f0 by gender, vocal-tract length as a formant scale, individual offsets),
and every utterance varies randomly around its emotion's prototype, so the emotions are
separable by MFCC statistics but not trivially.

Everything is deterministic from ``seed``: the same call writes byte-identical files.

File names written by :func:`generate_corpus` (parsed by :func:`ser_pipeline.training.corpora.read_synth`)::

    <url>/SYN_<speaker>_<gender>_<emotion>_<nn>.wav      e.g. SYN_s03_male_angry_04.wav

:func:`generate_archive` writes the layout of docs/ARCHITECTURE.md ("The archive layout").

A second voice speaks real words (``speech="espeak"`` of :func:`generate_corpus` and
:func:`generate_archive`; ``spoken``): espeak-ng from the ``espeakng-loader`` wheel, a script
of short market-research sentences, the same prosody prototypes acted through its rate,
pitch, pauses and voice quality. The Whisper encoder the model hears through represents the
source-filter buzz poorly and real words well, so ``make demo`` uses it.

The modules, one idea each: ``voices`` (speakers' voices and the emotions' prosody
prototypes), ``speech`` (the synthesiser: one utterance's samples), ``spoken`` (espeak-ng:
one utterance's samples and its words), ``encoding`` (audio and
CSV bytes, written reproducibly), ``corpus`` (:func:`generate_corpus`) and ``archives``
(:func:`generate_archive`). Their public names are importable from here; each module is
imported on first use (lazy_loader).
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['voices', 'speech', 'encoding', 'corpus', 'archives'],
    submod_attrs={
        'voices': ['DEFAULT_SAMPLE_RATE', 'Voice', 'make_voice', 'Prosody', 'PROSODY'],
        'speech': ['synthesize_utterance'],
        # _encode, _csv_bytes, _room_tone: ser_pipeline.evaluation.sessions builds its archives with them.
        'encoding': ['_encode', '_csv_bytes'],
        'corpus': ['generate_corpus'],
        'archives': ['TRUTH_COLUMNS', 'generate_archive', '_room_tone'],
    },
)
