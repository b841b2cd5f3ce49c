import numpy as np
import pytest

from _synthetic import tiny_trained
from ser_pipeline.inference.predict import predict_proba
from ser_pipeline.training.registry import (ModelNotFound, champion_version, list_models, load_model, promote,
                                   promote_if_better, save_model)


@pytest.fixture(scope="module")
def trained():
    return tiny_trained("pooled", "speaker", epochs=3)


def test_round_trip_keeps_model_normaliser_and_metadata(trained, tmp_path):
    model, feats, items, split = trained
    url = (tmp_path / "registry").as_uri()
    version = save_model(model, {"uar": 0.5, "accuracy": 0.6}, registry_url=url)
    loaded = load_model(url, version)
    assert loaded.version == version
    assert (loaded.labels, loaded.feature_spec_hash, loaded.fingerprint) == (model.labels, model.feature_spec_hash, model.fingerprint)
    assert loaded.split_speakers["test"] == list(split.test_speakers)
    assert loaded.normalizer.mode == "speaker"
    before = predict_proba(model, feats, items.speaker, "spec-a")
    after = predict_proba(loaded, feats, items.speaker, "spec-a")
    np.testing.assert_allclose(before, after, atol=1e-6)
    [info] = list_models(url)
    assert (info.version, info.uar, info.test_speakers, info.champion) == (version, 0.5, split.test_speakers, False)


def test_promotion_only_when_uar_beats_the_champion_on_the_same_test_speakers(trained, tmp_path):
    model = trained[0]
    url = (tmp_path / "registry").as_uri()
    with pytest.raises(ModelNotFound, match="no champion"):
        load_model(url, "champion")
    first = save_model(model, {"uar": 0.50}, registry_url=url, version="v1")
    assert promote_if_better(first, url) == (True, "no champion yet")
    worse = save_model(model, {"uar": 0.40}, registry_url=url, version="v2")
    promoted, reason = promote_if_better(worse, url)
    assert not promoted and "does not beat" in reason
    better = save_model(model, {"uar": 0.60}, registry_url=url, version="v3")
    assert promote_if_better(better, url)[0]
    assert champion_version(url) == "v3" and load_model(url, "champion").version == "v3"

    other = model.__class__(**{**model.__dict__, "split_speakers": {**model.split_speakers, "test": ["x:01"]}})
    elsewhere = save_model(other, {"uar": 0.99}, registry_url=url, version="v4")
    promoted, reason = promote_if_better(elsewhere, url)
    assert not promoted and "test speakers differ" in reason
    promote("v4", url)  # a person may still promote by hand
    assert [m.version for m in list_models(url) if m.champion] == ["v4"]
    with pytest.raises(ModelNotFound):
        promote("v9", url)


def test_random_split_models_are_never_promoted_automatically(trained, tmp_path):
    model = trained[0]
    url = (tmp_path / "registry").as_uri()
    leaky = model.__class__(**{**model.__dict__, "split_kind": "random"})
    version = save_model(leaky, {"uar": 0.9}, registry_url=url)
    promoted, reason = promote_if_better(version, url)
    assert not promoted and "random" in reason and champion_version(url) is None
