import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _synthetic import tiny_trained
from ser_pipeline.training.registry import save_model

ROOT = Path(__file__).resolve().parents[1]


def ser(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ser_pipeline", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)


@pytest.mark.parametrize("command", [["train"], ["evaluate"], ["predict"], ["models", "list"], ["models", "promote"]])
def test_every_command_has_help(command):
    done = ser(*command, "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


def test_usage_errors_exit_2():
    assert ser("train", "--corpus", "no-equals-sign").returncode == 2
    assert ser("train", "--corpus", "ravdess=/x", "--split", "sideways").returncode == 2
    assert ser("predict").returncode == 2
    assert ser("train", "--corpus", "ravdess=/x", "--kfold", "4", "--split", "random").returncode == 2


def test_models_list_and_promote(tmp_path):
    trained = tiny_trained("pooled", "global", epochs=1)[0]
    url = (tmp_path / "reg").as_uri()
    save_model(trained, {"uar": 0.4, "accuracy": 0.5}, registry_url=url, version="v1")
    save_model(trained, {"uar": 0.3, "accuracy": 0.4}, registry_url=url, version="v2")
    listed = ser("models", "list", "--registry", url, "--json")
    assert listed.returncode == 0
    assert [m["version"] for m in json.loads(listed.stdout)] == ["v1", "v2"]
    assert ser("models", "promote", "v2", "--registry", url).returncode == 0
    text = ser("models", "list", "--registry", url).stdout
    assert "* v2" in text and "  v1" in text
    missing = ser("models", "promote", "v7", "--registry", url)
    assert missing.returncode == 1 and "v7" in missing.stderr


def test_train_on_a_folder_without_audio_fails_cleanly(tmp_path):
    done = ser("train", "--corpus", f"ravdess={tmp_path}", "--architecture", "pooled")
    assert done.returncode == 1 and "no usable labelled audio" in done.stderr


def test_predict_without_a_champion_fails_cleanly(tmp_path):
    done = ser("predict", "x.wav", "--registry", (tmp_path / "empty").as_uri())
    assert done.returncode == 1 and "no champion" in done.stderr


@pytest.mark.slow
def test_predict_with_another_encoder_than_the_model_s_fails_cleanly(tiny_champion, tmp_path):
    import numpy as np
    import soundfile as sf

    registry_url, version = tiny_champion
    clip = tmp_path / "clip.wav"
    sf.write(clip, (0.1 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)).astype(np.float32), 16000)
    done = ser("predict", str(clip), "--registry", registry_url, env={"SER_ENCODER": "whisper-tiny.en"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "trained on the encoder whisper-base" in done.stderr and "SER_ENCODER=whisper-tiny.en" in done.stderr
    assert ser("predict", str(clip), "--registry", registry_url, "--json").returncode == 0


@pytest.mark.slow
@pytest.mark.realdata
def test_train_evaluate_predict_on_real_speech(ravdess_dir, tmp_path):
    # four actors (two male, two female) through the whole path: corpus, store, training, registry, report
    subset = tmp_path / "ravdess"
    subset.mkdir()
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04"):
        (subset / actor).mkdir()
        for flac in (ravdess_dir / actor).glob("*.flac"):
            (subset / actor / flac.name).symlink_to(flac)
    env = {"SER_FEATURE_STORE_URL": (tmp_path / "store").as_uri(), "SER_REGISTRY_URL": (tmp_path / "reg").as_uri(), "SER_WORKERS": "2"}
    trained = ser("train", "--corpus", f"ravdess={subset}", "--features", "stacked", "--architecture", "pooled",
                  "--normalization", "speaker", "--augment", "0", "--epochs", "5", "--json", "--out", str(tmp_path / "report"), env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout)
    assert len(result["test_speakers"]) == 1 and result["test_speakers"][0].startswith("ravdess:")
    assert not set(result["test_speakers"]) & set(result["train_speakers"])
    assert result["promoted"] and 0.0 <= result["uar"] <= 1.0
    assert not result["val_speakers"]  # the recipe's default: every non-test speaker trains
    assert (tmp_path / "report" / "confusion_matrix.png").exists()
    assert "epoch   1/5" in trained.stderr

    crossval = ser("train", "--corpus", f"ravdess={subset}", "--features", "stacked", "--architecture", "pooled",
                   "--normalization", "speaker", "--augment", "0", "--epochs", "1", "--kfold", "2", "--validation-share", "0.3",
                   "--json", "--out", str(tmp_path / "cv"), env=env)
    assert crossval.returncode == 0, crossval.stderr[-3000:]
    cv = json.loads(crossval.stdout)
    held = [s for fold in cv["folds"] for s in fold["test_speakers"]]
    assert sorted(held) == [f"ravdess:0{a}" for a in range(1, 5)] and cv["n"] == 240
    assert all(len(fold["val_speakers"]) == 1 for fold in cv["folds"])  # --validation-share keeps a speaker apart
    assert "fold 2/2: held out" in crossval.stderr and (tmp_path / "cv" / "report.md").exists()

    evaluated = ser("evaluate", "--corpus", f"ravdess={subset}", "--context", "--condition", "clean,snr10,telephone",
                    "--json", "--out", str(tmp_path / "eval"), env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads(evaluated.stdout)
    assert summary["uar"] == pytest.approx(result["uar"]) and summary["context"]["utterances"] == 60
    rows = {r["condition"]: r for r in summary["conditions"]}
    assert list(rows) == ["clean", "snr10", "telephone"] and all(r["n"] == 60 for r in rows.values())
    assert rows["clean"]["uar"] == pytest.approx(summary["uar"], abs=1e-6)  # clean is the plain evaluation
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["conditions"] == summary["conditions"]
    assert "| snr10 | 60 |" in (tmp_path / "eval" / "report.md").read_text()
    assert ser("evaluate", "--corpus", f"ravdess={subset}", "--condition", "snr10,foggy", env=env).returncode == 2

    files = sorted((ravdess_dir / "Actor_01").glob("*.flac"))[:6]
    predicted = ser("predict", *map(str, files), "--speaker", "ravdess:01", "--json", env=env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    rows = json.loads(predicted.stdout)["predictions"]
    assert len(rows) == 6 and all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    failed = ser("predict", str(files[0]), str(broken), env=env)
    assert failed.returncode == 1 and "broken.wav" in failed.stderr
