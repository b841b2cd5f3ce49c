"""How fast synth.synthesize_utterance makes speech, against two references timed in the same run.

Goal: a 3 s utterance in well under 50 ms. References: the audio's own duration (real-time
factor) and the time soundfile takes to encode the same clip as 16-bit WAV in memory, a
fixed unit of numpy/C work that scales with the machine.

    PYTHONPATH=. python benchmarks/synth.py
"""

from __future__ import annotations

import io
import timeit

import numpy as np
import soundfile as sf

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.synthetic import make_voice, synthesize_utterance

SR = 22_050
DURATION_S = 3.0


def main() -> None:
    voices = [make_voice(f"v{i}", ("male", "female")[i % 2], np.random.default_rng(i)) for i in range(4)]
    rng = np.random.default_rng(0)
    calls = [(e, v) for e in EMOTIONS for v in voices]

    def synth_all() -> None:
        for emotion, voice in calls:
            synthesize_utterance(emotion, voice, DURATION_S, rng, SR)

    clip = synthesize_utterance("neutral", voices[0], DURATION_S, rng, SR)

    def encode_all() -> None:
        for _ in calls:
            sf.write(io.BytesIO(), clip, SR, format="WAV", subtype="PCM_16")

    synth_all()  # warm caches (filter designs, page faults)
    synth_s = min(timeit.repeat(synth_all, number=1, repeat=5)) / len(calls)
    encode_s = min(timeit.repeat(encode_all, number=1, repeat=5)) / len(calls)
    print(f"synthesize_utterance, {DURATION_S:.0f} s at {SR} Hz: {1000 * synth_s:.1f} ms per utterance (goal < 50 ms)")
    print(f"real-time factor: {DURATION_S / synth_s:.0f}x faster than real time")
    print(f"ratio to encoding the same clip as WAV: {synth_s / encode_s:.1f}x ({1000 * encode_s:.2f} ms)")


if __name__ == "__main__":
    main()
