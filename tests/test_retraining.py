"""The one training path: what ``ser train``, the weekly flow and the fixtures all call."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser_pipeline.training import registry

from ser_pipeline.runs import retrain as retraining

from ser_pipeline import synthetic as synth

from ser_pipeline import warehouse
from ser_pipeline.settings import Settings
from ser_pipeline.training.fit import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path) -> Settings:
    return Settings(registry_url=(tmp_path / "registry").as_uri(), feature_store_url=(tmp_path / "features").as_uri(),
                    warehouse_path=tmp_path / "warehouse.duckdb", archive_url=(tmp_path / "archive").as_uri())


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two versions trained by ``train_and_register``: the first promoted, the second not."""
    tmp_path = tmp_path_factory.mktemp("two-models")
    settings = _settings(tmp_path)
    corpus = (tmp_path / "corpus").as_uri()
    synth.generate_corpus(corpus, n_speakers=4, utterances_per_emotion=2, seed=0, duration_s=(1.0, 1.5))
    config = TrainConfig(epochs=2, batch_size=16, corrupted_copies=1, early_stopping_patience=2)
    first = retraining.train_and_register(settings, {"synth": corpus}, config)
    second = retraining.train_and_register(settings, {"synth": corpus}, config, promote_if_better=False)
    return settings, first, second


@pytest.mark.slow
def test_a_registered_model_carries_its_recipe_and_full_feature_spec(two_models):
    settings, first, _ = two_models
    assert first.registration.promoted and first.registration.reason == "no champion yet"
    loaded = registry.load_model(settings.registry_url, first.registration.version, settings=settings)
    assert loaded.feature_spec == first.training_set.spec.to_dict() and loaded.feature_spec["output"] == "embeddings"
    assert loaded.feature_spec["encoder"] == "whisper-base" and "encoder_dir" not in loaded.feature_spec
    assert (loaded.architecture, loaded.input_kind, loaded.normalizer.mode) == ("linear", "encoder", "speaker")
    assert loaded.config.corrupted_copies == 1
    assert loaded.temperature == first.trained.temperature and loaded.temperature != 1.0  # calibrated on training speakers
    assert not set(first.split.test_speakers) & set(loaded.split_speakers["train"])


@pytest.mark.slow
def test_registering_records_the_version_in_the_warehouse_and_promotion_updates_both(two_models):
    settings, first, second = two_models
    con = warehouse.connect(settings.warehouse_path, read_only=True, settings=settings)
    try:
        recorded = {r[0] for r in con.execute("SELECT model_version FROM model_versions").fetchall()}
        assert recorded == {first.registration.version, second.registration.version}
        assert warehouse.current_model(con)[0] == first.registration.version
    finally:
        con.close()


@pytest.mark.slow
def test_a_cli_promotion_is_the_model_the_nightly_run_uses_and_the_views_report(two_models):
    settings, _, second = two_models
    version = second.registration.version
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SER_REGISTRY_URL": settings.registry_url,
           "SER_WAREHOUSE_PATH": str(settings.warehouse_path)}
    done = subprocess.run([sys.executable, "-m", "ser_pipeline", "models", "promote", version], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert registry.champion_version(settings.registry_url, settings=settings) == version  # what the nightly run loads
    con = warehouse.connect(settings.warehouse_path, read_only=True, settings=settings)
    try:
        assert warehouse.current_model(con)[0] == version  # what the views report
    finally:
        con.close()
    listed = subprocess.run([sys.executable, "-m", "ser_pipeline", "models", "list", "--json"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=300)
    assert [m["version"] for m in json.loads(listed.stdout) if m["champion"]] == [version]


def test_promoting_an_unknown_version_changes_nothing(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(registry.ModelNotFound):
        retraining.promote(settings, "no-such-version")
    assert not settings.warehouse_path.exists()


def test_the_training_spec_follows_the_input_kind(encoder_home):
    settings = Settings(sample_rate=22_050, home=encoder_home)
    heard = retraining.training_spec(settings, TrainConfig())
    assert heard.output == "embeddings" and heard.sample_rate == 16_000  # the encoder's rate, whatever the pipeline's
    assert heard.encoder == settings.encoder and heard.encoder_dir
    settings = Settings(sample_rate=16_000)
    assert retraining.training_spec(settings, TrainConfig(input_kind="functionals")).output == "functionals"
    frames = retraining.training_spec(settings, TrainConfig(architecture="seed", input_kind="mfcc"))
    assert frames.output == "frames" and frames.sample_rate == 16_000
