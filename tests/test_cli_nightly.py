"""``ser segment`` and ``ser label`` through the real CLI entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_pipeline.cli import app


def test_segment_prints_spans_as_json(tmp_path):
    sr = 16_000
    t = np.arange(sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 200 * t)
    y = np.concatenate([np.zeros(sr // 2), tone, np.zeros(sr), tone, np.zeros(sr // 2)]).astype(np.float32)
    sf.write(tmp_path / "s.wav", y, sr)
    result = CliRunner().invoke(app, ["segment", str(tmp_path / "s.wav"), "--json"])
    assert result.exit_code == 0, result.output
    spans = json.loads(result.stdout)
    assert [(round(s["start_s"], 1), round(s["end_s"], 1)) for s in spans] == [(0.5, 1.5), (2.5, 3.5)]


def test_segment_bad_input_and_bad_usage_exit_codes(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"nope")
    assert CliRunner().invoke(app, ["segment", str(tmp_path / "bad.wav")]).exit_code == 1
    assert CliRunner().invoke(app, ["segment", str(tmp_path / "bad.wav"), "--min-s", "3", "--max-s", "2"]).exit_code == 2


def test_label_help_lists_its_options():
    result = CliRunner().invoke(app, ["label", "--help"])
    assert result.exit_code == 0 and "--archive-url" in result.output and "--json" in result.output


@pytest.fixture
def logging_restored():
    import logging

    from ser_pipeline.log_levels import THIRD_PARTY_LOGGERS

    root = logging.getLogger()
    prefixes = tuple(f"{n}." for n in THIRD_PARTY_LOGGERS)
    names = [*THIRD_PARTY_LOGGERS, *(n for n in logging.root.manager.loggerDict if n.startswith(prefixes))]
    saved = root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("flags, level", [([], "WARNING"), (["-v"], "INFO"), (["-vv"], "DEBUG")])
def test_library_logs_stay_at_warning_unless_verbose(tmp_path, logging_restored, flags, level):
    import logging

    # A library that already set a level on a child logger of its own (Prefect does) follows too.
    logging.getLogger("prefect.server.services.telemetry").setLevel(logging.INFO)
    sf.write(tmp_path / "s.wav", np.zeros(16_000, np.float32), 16_000)
    result = CliRunner().invoke(app, [*flags, "segment", str(tmp_path / "s.wav"), "--json"])
    assert result.exit_code == 0, result.output
    for name in ("distributed.scheduler", "prefect.server.services.telemetry", "botocore.retryhandler",
                 "great_expectations", "ser_pipeline.training.corpora"):
        assert logging.getLevelName(logging.getLogger(name).getEffectiveLevel()) == level, name
