"""``ser synth corpus|archive`` and ``ser corpus list`` through the real CLI app."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from ser_pipeline.cli import app

runner = CliRunner()


def test_synth_corpus_then_list(tmp_path):
    url = str(tmp_path / "corpus")
    made = runner.invoke(app, ["synth", "corpus", url, "--speakers", "2", "--per-emotion", "1", "--json"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["corpus", "list", url, "--json"])
    assert listed.exit_code == 0, listed.output
    summary = json.loads(listed.stdout)
    assert summary["corpus"] == "synth" and summary["clips"] == 16 and summary["speakers"] == 2
    assert set(summary["emotions"].values()) == {2} and summary["skipped"] == []


def test_corpus_list_reports_skipped_files_with_exit_1(tmp_path):
    runner.invoke(app, ["synth", "corpus", str(tmp_path), "--speakers", "1", "--per-emotion", "1"])
    (tmp_path / "SYN_s01_male_bored_01.wav").write_bytes((tmp_path / "SYN_s01_male_sad_01.wav").read_bytes())
    result = runner.invoke(app, ["corpus", "list", str(tmp_path), "--corpus", "synth", "--json"])
    assert result.exit_code == 1
    skipped = json.loads(result.stdout)["skipped"]
    assert len(skipped) == 1 and "bored" in skipped[0]["path"] and "unknown emotion" in skipped[0]["reason"]
    assert runner.invoke(app, ["corpus", "list", str(tmp_path), "--corpus", "iemocap"]).exit_code == 2


def test_synth_archive_writes_layout_and_rejects_bad_options(tmp_path):
    url = str(tmp_path / "archive")
    result = runner.invoke(app, ["synth", "archive", url, "--surveys", "1", "--sessions", "2", "--utterances", "3", "--sidecar", "rttm", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sessions"] == 2 and summary["turns"] == 6
    manifest = pd.read_csv(tmp_path / "archive" / "SV01" / "manifest.csv")
    assert len(manifest) == 2 and all((tmp_path / "archive" / "SV01" / f"{s}.rttm").exists() for s in manifest["session_id"])
    assert runner.invoke(app, ["synth", "archive", url, "--sidecar", "xml"]).exit_code == 2
    assert runner.invoke(app, ["synth", "archive", url, "--start", "last week"]).exit_code == 2
