"""Transcripts: the decoder stopped where the speech ends, what is stored empty and why, the
session's language and the English-only refusal, on real Whisper weights and real speech."""

from __future__ import annotations

import numpy as np
import pytest

from ser_pipeline.transcripts.language import session_language
from ser_pipeline.transcripts.quality import empty_reason
from ser_pipeline.transcripts.whisper import Heard, Transcriber, cut_restart, transcriber_for


@pytest.fixture(scope="module")
def base(encoder_home) -> Transcriber:
    return transcriber_for("whisper-base", encoder_home)


@pytest.fixture(scope="module")
def tiny_en(encoder_home) -> Transcriber:
    return transcriber_for("whisper-tiny.en", encoder_home)


def _model(transcriber: Transcriber):
    from ser_pipeline.features.encoder import compute_plan, load_whisper

    return load_whisper(str(transcriber.path), *compute_plan(), 2)


def test_text_is_cut_where_it_starts_over():
    assert cut_restart("Kids are talking by the door. Kids are talking by", capped=True) == ("Kids are talking by the door.", True)
    assert cut_restart("Kids are talking by the door. Kids", capped=True) == ("Kids are talking by the door.", True)
    # it ended by itself: a last word that happens to be the first is a word
    assert cut_restart("Kids are talking by the door. Kids", capped=False) == ("Kids are talking by the door. Kids", False)
    # the second pass dropped a leading word, and the decoder ended on its own after it
    assert cut_restart("The dogs are sitting by the door. Dogs are sitting by the door. Dogs are sitting",
                       capped=False) == ("The dogs are sitting by the door.", True)
    assert cut_restart("No, no, no, that is not what I meant.", capped=False) == ("No, no, no, that is not what I meant.", False)


@pytest.mark.parametrize("heard, reason", [
    (Heard("Thank you.", -1.8, 0.91, True, 3), "no speech"),
    (Heard("...", -0.2, 0.1, True, 1), "no words heard"),
    (Heard("I think so. I think so. I think so. I think so.", -0.2, 0.1, True, 20), "repeated phrase"),
    (Heard("the price is the price is the price is the price is high", -0.2, 0.1, True, 20), "repeated phrase"),
    (Heard("and then and then we went to the shop and", -0.2, 0.1, False, 60), "did not come to an end"),
])
def test_what_cannot_be_trusted_is_stored_empty_with_its_reason(heard, reason):
    assert empty_reason(heard).startswith(reason) or reason in empty_reason(heard)


def test_what_people_do_say_is_kept():
    for text in ("No, no, no, that is not what I meant.", "Kids are talking by the door.", "you"):
        assert empty_reason(Heard(text, -0.2, 0.3, True, 8)) is None


def test_the_manifest_s_language_wins_and_an_english_only_model_refuses_another(base, tiny_en):
    never = lambda: pytest.fail("a manifest language needs no detection")  # noqa: E731
    assert session_language(base, "de", never) == session_language(base, "de", never)
    german = session_language(base, "de", never)
    assert (german.language, german.source, german.refusal) == ("de", "manifest", None)
    refused = session_language(tiny_en, "de", never)
    assert refused.refusal and "English only" in refused.refusal and "'de'" in refused.refusal
    assert session_language(tiny_en, None, never) == session_language(tiny_en, "en", never).__class__("en", "english-only model")
    unknown = session_language(base, "xx", never)
    assert unknown.refusal and "cannot write language 'xx'" in unknown.refusal


def test_detection_sums_the_session_s_first_utterances(base):
    probes = [{"en": 0.5, "de": 0.4}, {"en": 0.2, "de": 0.7}, {"en": 0.3, "de": 0.6}]
    detected = session_language(base, None, lambda: iter(probes))
    assert (detected.language, detected.source, detected.refusal) == ("de", "detected", None)
    assert detected.probability == pytest.approx((0.4 + 0.7 + 0.6) / 3)
    assert session_language(base, None, lambda: iter(())).refusal.startswith("no utterance long enough")


def test_silence_and_noise_are_stored_empty_not_invented(base):
    from ser_pipeline.transcripts.batch import transcribe_utterance
    from ser_pipeline.transcripts.language import SessionLanguage

    model = _model(base)
    rng = np.random.default_rng(0)
    english = SessionLanguage("en", "manifest")
    for samples in (np.zeros(48_000, np.float32), (0.02 * rng.standard_normal(48_000)).astype(np.float32)):
        row, _, _ = transcribe_utterance(model, base, "u1", samples, english)
        assert row["text"] == "" and row["empty_reason"], row


@pytest.mark.realdata
def test_a_real_clip_is_written_down_and_a_refused_session_is_not(base, tiny_en, ravdess_dir):
    import soundfile as sf
    import soxr

    from ser_pipeline.transcripts.batch import transcribe_utterance
    from ser_pipeline.transcripts.language import SessionLanguage

    y, sr = sf.read(ravdess_dir / "Actor_01" / "03-01-05-02-02-01-01.flac", dtype="float32")  # angry, "Dogs are sitting ..."
    y = soxr.resample(y, sr, 16_000).astype(np.float32)
    row, encode_s, decode_s = transcribe_utterance(_model(base), base, "u1", y, SessionLanguage("en", "manifest"))
    assert row["text"].lower().rstrip(".") == "dogs are sitting by the door" and row["empty_reason"] is None
    assert row["model"] == base.model_id and row["avg_logprob"] > -0.5 and encode_s > 0 and decode_s > 0
    refused = session_language(tiny_en, "fr", lambda: iter(()))
    row, _, _ = transcribe_utterance(_model(tiny_en), tiny_en, "u1", y, refused)
    assert row["text"] == "" and "English only" in row["empty_reason"] and row["language"] == "fr"


@pytest.mark.realdata
def test_a_batch_takes_its_sessions_language_from_the_manifest_and_is_refused_by_an_english_only_model(
        tiny_en, ravdess_dir, settings):
    from ser_pipeline.runs.nightly.records import Batch, PlannedUtterance
    from ser_pipeline.transcripts.batch import transcribe_batch

    clip = (ravdess_dir / "Actor_02" / "03-01-01-01-01-01-02.flac").as_uri()  # neutral, "Kids are talking by the door"
    utterances = tuple(PlannedUtterance(f"u{i}", "SV", session, None, 0.0, 3.0, None, clip, language)
                       for i, (session, language) in enumerate([("S-fr", "fr"), ("S-fr", "fr"), ("S-en", "en")]))
    written = transcribe_batch(settings, Batch(0, utterances), tiny_en).frame.set_index("utterance_id")
    assert sorted(written.index) == ["u0", "u1", "u2"]  # one recording, two sessions: each its own language
    french = written.loc[["u0", "u1"]]
    assert (french["text"] == "").all() and french["empty_reason"].str.contains("English only").all()
    assert (french["language"] == "fr").all() and (french["language_source"] == "manifest").all()
    english = written.loc["u2"]
    assert english["text"].lower().rstrip(".") == "kids are talking by the door" and english["empty_reason"] is None
    assert english["model"] == tiny_en.model_id and english["n_redacted"] == 0
