"""A labelled training corpus: one clip per speaker, emotion and take, named as
:func:`ser_pipeline.training.corpora.read_synth` parses (``SYN_<speaker>_<gender>_<emotion>_<nn>.wav``),
made by the formant synthesiser or spoken by espeak-ng (:mod:`.spoken`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.settings import Settings
from ser_pipeline.storage import join, write_bytes_atomic
from ser_pipeline.synthetic.encoding import _encode
from ser_pipeline.synthetic.speech import synthesize_utterance
from ser_pipeline.synthetic.spoken import SCRIPT, speak
from ser_pipeline.synthetic.voices import DEFAULT_SAMPLE_RATE, PROSODY, make_voice
from ser_pipeline.training.corpora import CorpusItem, items_frame, parse_synth, synth_file_name


def generate_corpus(
    url: str,
    n_speakers: int = 8,
    utterances_per_emotion: int = 6,
    seed: int = 0,
    emotions: Sequence[str] = EMOTIONS,
    duration_s: tuple[float, float] = (1.5, 3.5),
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    progress: Callable[[int, int], None] | None = None,
    settings: Settings | None = None,
    speech: str = "formant",
) -> pd.DataFrame:
    """Write a labelled training corpus under ``url``; return its :func:`corpora.items_frame`.

    ``progress(done, total)`` is called after each file (the CLI hangs a progress bar on it).

    Speakers ``s01``..``sNN`` alternate male (odd) and female (even). Each file is drawn
    from its own random stream, so a file's content depends only on the seed and its name.

    ``speech="formant"`` (the default) synthesises wordless speech-like clips of ``duration_s``;
    ``speech="espeak"`` has espeak-ng speak lines of :data:`.spoken.SCRIPT` (``duration_s`` is
    then unused: the line sets the length). As in acted corpora, a speaker's take ``k`` is the
    same line in every emotion, so within a speaker the words never hint at the emotion; the
    returned frame's ``sentence`` column holds the words spoken.
    """
    unknown = set(emotions) - set(PROSODY)
    if unknown:
        raise ValueError(f"unknown emotions {sorted(unknown)}; known: {EMOTIONS}")
    if speech not in ("formant", "espeak"):
        raise ValueError(f"speech must be 'formant' or 'espeak', not {speech!r}")
    items: list[CorpusItem] = []
    for s in range(1, n_speakers + 1):
        speaker, gender = f"s{s:02d}", ("male" if s % 2 else "female")
        voice = make_voice(speaker, gender, np.random.default_rng([seed, 1, s]))
        lines = _speaker_lines(seed, s, utterances_per_emotion)
        for emotion in emotions:
            for k in range(1, utterances_per_emotion + 1):
                rng = np.random.default_rng([seed, 2, s, EMOTIONS.index(emotion), k])
                if speech == "espeak":
                    spoken = speak(emotion, voice, rng, sample_rate, text=lines[k - 1])
                    samples, sentence = spoken.samples, spoken.text
                else:
                    samples = synthesize_utterance(emotion, voice, rng.uniform(*duration_s), rng, sample_rate)
                    sentence = None
                name = synth_file_name(speaker, gender, emotion, k)
                path = join(url, name)
                write_bytes_atomic(path, _encode(samples, sample_rate, "wav"), settings)
                if progress is not None:
                    progress(len(items) + 1, n_speakers * len(emotions) * utterances_per_emotion)
                item = parse_synth(path)
                items.append(replace(item, sentence=sentence) if sentence is not None else item)
    return items_frame(items)


def _speaker_lines(seed: int, speaker_number: int, takes: int) -> list[str]:
    """The script lines of one speaker's takes 1..``takes``: distinct while the script lasts."""
    rng = np.random.default_rng([seed, 3, speaker_number])
    order = rng.permutation(len(SCRIPT))
    return [SCRIPT[order[k % len(SCRIPT)]] for k in range(takes)]
