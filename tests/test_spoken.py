"""Spoken sentences (espeak-ng): determinism, the words, sample rates, emotions heard in the
signal, and the corpus and archive that speak them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.synthetic import generate_archive, generate_corpus, make_voice
from ser_pipeline.synthetic.archives import SPOKEN_TRUTH_COLUMNS
from ser_pipeline.synthetic.spoken import SCRIPT, speak

LINE = "the price is too high for what it does"


def _voice(gender: str = "male"):
    return make_voice("v1" if gender == "male" else "v2", gender, np.random.default_rng(11))


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    hop = sample_rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop).astype(np.float64)
    energy = (frames**2).mean(axis=1)
    return float(np.sqrt(energy[energy > energy.max() * 1e-3].mean()))


def _median_f0(x: np.ndarray, sample_rate: int) -> float:
    import librosa

    f0 = librosa.yin(x.astype(np.float64), fmin=60, fmax=600, sr=sample_rate, frame_length=1024)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0][: len(f0)]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


def test_a_seed_gives_the_same_samples_whatever_was_spoken_before():
    voice = _voice()
    first = speak("angry", voice, np.random.default_rng(5))
    speak("sad", _voice("female"), np.random.default_rng(6))
    again = speak("angry", voice, np.random.default_rng(5))
    other = speak("angry", voice, np.random.default_rng(7))
    assert np.array_equal(first.samples, again.samples) and first.text == again.text
    assert not (len(first.samples) == len(other.samples) and np.array_equal(first.samples, other.samples))


def test_it_returns_the_words_it_spoke():
    drawn = speak("neutral", _voice(), np.random.default_rng(1))
    assert drawn.text in SCRIPT and drawn.words == tuple(drawn.text.split())
    given = speak("happy", _voice(), np.random.default_rng(1), text="The price, too HIGH!")
    assert given.text == "the price too high" and given.words == ("the", "price", "too", "high")


@pytest.mark.parametrize("sample_rate", [16_000, 22_050])
def test_it_speaks_at_the_requested_rate(sample_rate):
    spoken = speak("surprised", _voice("female"), np.random.default_rng(3), sample_rate, text=LINE)
    reference = speak("surprised", _voice("female"), np.random.default_rng(3), 22_050, text=LINE)
    y = spoken.samples
    assert spoken.sample_rate == sample_rate and y.dtype == np.float32 and y.ndim == 1
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert len(y) / sample_rate == pytest.approx(len(reference.samples) / 22_050, abs=0.01)
    assert 10 ** (-45 / 20) < _active_rms(y, sample_rate) < 10 ** (-8 / 20)
    assert np.abs(y[: int(0.02 * sample_rate)]).max() < 1e-6  # the silence before the first word


def test_anger_is_louder_faster_and_higher_than_sadness():
    """Same voice, same sentence, several takes: the emotion shows in level, tempo and pitch."""
    voice = _voice()

    def measure(emotion):
        takes = [speak(emotion, voice, np.random.default_rng(k), 16_000, text=LINE) for k in range(4)]
        return (
            np.median([_active_rms(t.samples, 16_000) for t in takes]),
            np.median([len(t.samples) / 16_000 for t in takes]),
            np.median([_median_f0(t.samples, 16_000) for t in takes]),
        )

    angry_rms, angry_s, angry_f0 = measure("angry")
    sad_rms, sad_s, sad_f0 = measure("sad")
    neutral_rms, neutral_s, neutral_f0 = measure("neutral")
    assert angry_rms > 2 * neutral_rms > 2 * sad_rms  # +8 dB and -7 dB around neutral
    assert angry_s < 0.9 * neutral_s and sad_s > 1.3 * neutral_s
    assert angry_f0 > 1.2 * neutral_f0 and sad_f0 < neutral_f0


def test_an_unknown_emotion_is_refused():
    with pytest.raises(ValueError, match="unknown emotion"):
        speak("bored", _voice(), np.random.default_rng(0))


def test_a_spoken_corpus_says_one_line_per_take_in_every_emotion(tmp_path):
    frame = generate_corpus(tmp_path.as_uri(), n_speakers=1, utterances_per_emotion=2, seed=4,
                            emotions=("neutral", "angry"), speech="espeak")
    assert len(frame) == 4 and set(frame["sentence"]) <= set(SCRIPT)
    by_take = frame.assign(take=frame["path"].str[-6:-4]).groupby("take")["sentence"].nunique()
    assert (by_take == 1).all() and frame["sentence"].nunique() == 2
    again = tmp_path / "again"
    generate_corpus(again.as_uri(), n_speakers=1, utterances_per_emotion=2, seed=4,
                    emotions=("neutral", "angry"), speech="espeak")
    assert all((tmp_path / p.name).read_bytes() == p.read_bytes() for p in again.glob("*.wav"))


def test_a_spoken_archive_s_truth_carries_the_words(tmp_path):
    truth = generate_archive(tmp_path.as_uri(), n_surveys=1, sessions_per_survey=1, participants_per_session=2,
                             utterances_per_session=4, seed=2, speech="espeak")
    assert list(truth.columns) == list(SPOKEN_TRUTH_COLUMNS) and len(truth) == 4
    assert set(truth["text"]) <= set(SCRIPT) and set(truth["emotion"]) <= set(EMOTIONS)
    written = pd.read_csv(tmp_path / "SV01" / "_truth.csv")
    assert written["text"].tolist() == truth["text"].tolist()


def test_speech_must_be_formant_or_espeak(tmp_path):
    with pytest.raises(ValueError, match="speech"):
        generate_corpus(tmp_path.as_uri(), n_speakers=1, utterances_per_emotion=1, speech="tts")
    with pytest.raises(ValueError, match="speech"):
        generate_archive(tmp_path.as_uri(), n_surveys=1, speech="tts")


@pytest.mark.slow
def test_whisper_hears_the_words(encoder_home):
    """The bundled Whisper transcribes a neutral and an angry take of the line to the line."""
    from faster_whisper import WhisperModel

    from ser_pipeline.features import encoder

    source = encoder.resolve_encoder("whisper-base", encoder_home)
    model = WhisperModel(str(source.path), device="cpu", compute_type="int8", cpu_threads=2)
    for emotion in ("neutral", "angry"):
        clip = speak(emotion, _voice(), np.random.default_rng(1), encoder.SAMPLE_RATE, text=LINE).samples
        segments, _ = model.transcribe(clip, language="en", beam_size=1)
        heard = " ".join(s.text for s in segments).strip().lower().strip(".!?")
        assert heard == LINE


def test_espeak_never_runs_in_the_calling_process():
    """Regression: libespeak-ng was loaded and dlclose'd in the caller for every utterance, and a
    full-suite process (threads, TensorFlow, torch, CTranslate2, numba) died of a segmentation
    fault in these tests. Now a helper's forked children run it: the caller, with threads of its
    own, never loads it (an audit hook sees every ctypes.dlopen) and its samples do not depend on
    what was spoken before or on which thread asked."""
    script = textwrap.dedent(
        """
        import sys, threading
        loaded = []
        sys.addaudithook(lambda event, args: event == "ctypes.dlopen" and loaded.append(str(args[0])))
        import numpy as np
        from ser_pipeline.synthetic import make_voice
        from ser_pipeline.synthetic.spoken import speak

        voices = [make_voice(f"s{k}", ("male", "female")[k % 2], np.random.default_rng(k)) for k in range(4)]
        def say(k):
            return speak(("angry", "sad", "happy", "fearful")[k % 4], voices[k % 4], np.random.default_rng(k), 16_000)
        serial = [say(k).samples for k in range(8)]
        threaded = [None] * 8
        def worker(first):
            for k in range(first, 8, 4):
                threaded[k] = say(k).samples
        threads = [threading.Thread(target=worker, args=(first,)) for first in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(np.array_equal(a, b) for a, b in zip(serial, threaded)), "threads changed the samples"
        assert not [name for name in loaded if "espeak" in name], loaded
        assert "espeak" not in open("/proc/self/maps").read()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_dead_helper_is_reported_and_replaced(monkeypatch, tmp_path):
    """The helper dying mid-utterance raises naming the speaker and the words; the next call
    starts a new helper."""
    from ser_pipeline.synthetic import spoken

    dies = tmp_path / "dies.py"
    dies.write_text("import os, struct, sys\n"
                    "os.write(1, b'O' + struct.pack('<Q', 0))\n"
                    "sys.stdin.buffer.read(8)\n"
                    "os._exit(3)\n")
    expected = speak("neutral", _voice(), np.random.default_rng(2), text=LINE).samples
    spoken._shutdown()
    monkeypatch.setattr(spoken, "_HELPER_SCRIPT", dies)
    with pytest.raises(RuntimeError, match=r"speaker 'v1'.*neutral.*the price is too high for what it does.*died"):
        speak("neutral", _voice(), np.random.default_rng(2), text=LINE)
    monkeypatch.undo()
    assert np.array_equal(speak("neutral", _voice(), np.random.default_rng(2), text=LINE).samples, expected)
