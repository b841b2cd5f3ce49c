import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _synthetic import tiny_trained
from ser_pipeline.registry import save_model

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


def test_predict_without_a_champion_fails_cleanly(tmp_path):
    done = ser("predict", "x.wav", "--registry", (tmp_path / "empty").as_uri())
    assert done.returncode == 1 and "no champion" in done.stderr
