import numpy as np
import pytest

from ser_pipeline.evaluation.robustness import condition_row, conditions_markdown, evaluate_conditions, pool_results
from support.tiny_model import shared_champion


@pytest.fixture(scope="module")
def model_and_clips(tmp_path_factory):
    from ser_pipeline.training import registry
    from ser_pipeline import synthetic as synth
    from ser_pipeline.training.corpora import items_frame, read_synth
    from ser_pipeline.inference.predict import spec_of
    from ser_pipeline.settings import Settings

    registry_url, version = shared_champion(tmp_path_factory)
    settings = Settings(registry_url=registry_url)
    trained = registry.load_model(registry_url, version, settings=settings)
    corpus = tmp_path_factory.mktemp("robustness-corpus").as_uri()
    synth.generate_corpus(corpus, n_speakers=2, utterances_per_emotion=1, seed=5, duration_s=(1.0, 1.5))
    return trained, items_frame(read_synth(corpus)), spec_of(trained, settings)


@pytest.mark.slow
def test_one_result_per_condition_on_the_same_clips_and_clean_is_the_plain_prediction(model_and_clips):
    from ser_pipeline.training.dataset import load_clips
    from ser_pipeline.features.spec import clip_windows
    from ser_pipeline.features.frames import extract_features
    from ser_pipeline.inference.predict import predict_proba

    trained, clips, spec = model_and_clips
    results = evaluate_conditions(trained, clips, spec, ["clean", "snr10", "reverb"], seed=3)
    assert [r.condition for r in results] == ["clean", "snr10", "reverb"]
    assert all(r.metrics["n"] == len(clips) and r.proba.shape == (len(clips), len(trained.labels)) for r in results)
    windows, owners = [], []
    for uid, samples in zip(clips.utterance_id, load_clips(list(clips.path), spec.sample_rate)):
        for w in clip_windows(samples, spec):
            windows.append(w)
            owners.append(uid)
    speakers = list(clips.set_index("utterance_id").loc[owners, "speaker"])
    plain = predict_proba(trained, extract_features(windows, spec), speakers, spec, utterance_ids=owners)
    np.testing.assert_allclose(results[0].proba, plain, atol=1e-5)
    assert not np.allclose(results[1].proba, results[0].proba)  # the noise reached the model
    again = evaluate_conditions(trained, clips, spec, ["snr10"], seed=3)[0]
    np.testing.assert_array_equal(again.proba, results[1].proba)  # seeded per utterance


@pytest.mark.slow
def test_folds_pool_into_one_row_per_condition(model_and_clips):
    trained, clips, spec = model_and_clips
    speakers = sorted(clips.speaker.unique())
    parts = [evaluate_conditions(trained, clips[clips.speaker == s], spec, ["clean", "telephone"]) for s in speakers]
    pooled = pool_results(parts)
    assert [r.condition for r in pooled] == ["clean", "telephone"] and pooled[0].metrics["n"] == len(clips)
    correct = sum((p[0].proba.argmax(1) == p[0].y).sum() for p in parts)
    assert pooled[0].metrics["accuracy"] == pytest.approx(correct / len(clips))
    rows = [condition_row(r) for r in pooled]
    assert set(rows[0]) >= {"condition", "n", "uar", "accuracy", "ece", "gender_gap"}
    table = conditions_markdown(rows)
    assert "| clean |" in table and "| telephone |" in table


def test_one_sided_participants_split_each_speaker_into_groups_of_few_moods():
    import pandas as pd

    from ser_pipeline.evaluation.robustness import one_sided_participants

    emotions = ["angry", "calm", "happy", "sad"] * 5  # 20 clips per speaker, 5 of each emotion, interleaved
    utterances = pd.DataFrame({"speaker": ["a"] * 20 + ["b"] * 20, "emotion": emotions * 2,
                               "utterance_id": [f"u{i:02d}" for i in range(40)]}).sample(frac=1, random_state=0)
    participants = one_sided_participants(utterances, turns=5)
    assert list(participants.index) == list(utterances.index)  # one entry per row, in the rows' order
    groups = utterances.assign(participant=participants).groupby("participant")
    assert groups.size().to_dict() == {f"{s}~{k}": 5 for s in "ab" for k in range(4)}
    assert (groups.speaker.nunique() == 1).all()  # a participant is one speaker's
    assert (groups.emotion.nunique() == 1).all()  # five clips of one emotion: one mood each
    with pytest.raises(ValueError, match="turns"):
        one_sided_participants(utterances, turns=0)
