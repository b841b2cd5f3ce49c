"""Throughput of the nightly path: seconds of recorded audio labelled per wall second.

Runs ``ser_pipeline.runs.nightly.run_nightly`` (discover, hash + segment, decode + resample,
features, inference, context, validation, Parquet and DuckDB loads) over a generated archive
of at least ``--hours`` of focus-group audio, into a fresh feature store and warehouse, and
prints the rate end to end and per stage, and the CPU cost of each part of the feature
extraction per hour of audio. Generating the archive and training the champion (the
recommended recipe, a few epochs on generated speech) are not timed; both are cached under
``--workdir`` between runs.

In the same run it measures the reference on a sample of whole sessions: every utterance
decoded on its own, features by the naive librosa recipe (``extract_features_naive``) and the
model called once per utterance (unbatched). The machine is shared, so absolute rates are
noisy; the printed ratio (ours / reference, measured minutes apart) is what to compare.

Both paths of the nightly run, on the same archive in the same run: labels only
(``SER_TRANSCRIBE=false``, the table above the reference) and labels with transcripts
(``SER_TRANSCRIBE=true``, the default: each labelled utterance written down by the encoder's
Whisper model), each end to end into its own fresh store and warehouse, with the seconds the
transcription's stages took (``transcribe: audio``, ``encode``, ``decode`` of the report) and
the transcripts' coverage and word error rate against the archive's script. The archive is
spoken by espeak-ng (``--speech espeak``, the default): Whisper on the wordless formant turns
(``--speech formant``) would time the writing down of noise. ``--no-transcripts`` runs the
labels-only path alone.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/nightly.py [--hours 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

GOAL_X_REAL_TIME = 300.0
FLOOR_X_REAL_TIME = 100.0  # what the encoder champion must reach on 2 cores (issue #22)
TRANSCRIPTS_GOAL_X_REAL_TIME = 8.0  # labels with transcripts, end to end, whisper-base on 2 cores
TURNS_PER_SESSION = 45  # ~150 s of recording per session (2.5 s turns, 0.9 s pauses)
SESSION_S_ESTIMATE = 150.0
TRANSCRIBE_STAGES = ("transcribe: audio", "transcribe: encode", "transcribe: decode")


def _load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def make_archive(root: Path, hours: float, sample_rate: int, sidecar: str | None, seed: int,
                 speech: str = "formant") -> tuple[str, float]:
    """A generated archive of at least ``hours`` of audio (cached); its URL and total seconds.
    ``speech``: ``formant`` (wordless turns) or ``espeak`` (espeak-ng says a line of the
    script per turn; the truth holds the words)."""
    import soundfile as sf

    from ser_pipeline import synthetic as synth

    n_surveys = 4
    per_survey = max(1, math.ceil(hours * 3600 / SESSION_S_ESTIMATE / n_surveys))
    while True:
        name = f"archive-{n_surveys}x{per_survey}x{TURNS_PER_SESSION}-{sample_rate}-{sidecar}-{seed}" + (
            "" if speech == "formant" else f"-{speech}")
        path = root / name
        if not (path / ".complete").exists():
            shutil.rmtree(path, ignore_errors=True)
            print(f"generating {name} (not timed) ...", file=sys.stderr, flush=True)
            synth.generate_archive(path.as_uri(), n_surveys=n_surveys, sessions_per_survey=per_survey,
                                   participants_per_session=4, utterances_per_session=TURNS_PER_SESSION,
                                   sidecar=sidecar, sample_rate=sample_rate, seed=seed, speech=speech)
            (path / ".complete").touch()
        seconds = sum(sf.info(str(f)).duration for f in path.glob("SV*/*.wav"))
        if seconds >= hours * 3600:
            return path.as_uri(), seconds
        # Short by the sessions' measured length (spoken turns are as long as their line).
        per_survey = max(per_survey + 1, math.ceil(per_survey * hours * 3600 / seconds))


def make_champion(root: Path, architecture: str, input_kind: str, normalization: str, epochs: int, seed: int,
                  encoder: str) -> str:
    """A registry (cached) whose champion is that recipe trained on a small generated corpus,
    through the library's one training path (``retraining.train_and_register``)."""
    heard = f"-{Path(encoder).name}" if input_kind == "encoder" else ""
    registry = root / f"registry-v3-{architecture}-{input_kind}{heard}-{normalization}-{epochs}-{seed}"
    if (registry / ".complete").exists():
        return registry.as_uri()
    shutil.rmtree(registry, ignore_errors=True)
    print(f"training a {architecture}/{input_kind} champion (not timed) ...", file=sys.stderr, flush=True)
    from ser_pipeline.runs import retrain as retraining
    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import Settings
    from ser_pipeline.training.fit import recipe_for

    corpus = root / f"corpus-{seed}"
    shutil.rmtree(corpus, ignore_errors=True)
    synth.generate_corpus(corpus.as_uri(), n_speakers=8, utterances_per_emotion=4, seed=seed, duration_s=(1.5, 3.0))
    work = root / f"training-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    settings = Settings(registry_url=registry.as_uri(), feature_store_url=(work / "features").as_uri(),
                        warehouse_path=work / "warehouse.duckdb", encoder=encoder)
    config = recipe_for(input_kind, architecture=architecture, normalization=normalization, epochs=epochs,
                        seed=seed, early_stopping_patience=epochs)
    run = retraining.train_and_register(settings, {"synth": corpus.as_uri()}, config, promote_if_better=False)
    retraining.promote(settings, run.registration.version)
    (registry / ".complete").touch()
    return registry.as_uri()


def encoder_costs(archive_url: str, spec, n_windows: int = 96, window_s: float = 2.5) -> dict[str, float]:
    """Seconds per hour of audio of the encoder's parts (Whisper log-mel, the encoder pass,
    pooling) on ``n_windows`` utterance-long windows cut from the archive's first recording,
    one window at a time on one replica (one core), and of ``encoder.embed`` on them (every
    core: one replica each)."""
    import ctranslate2
    import numpy as np

    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.archive.manifest import list_surveys, read_survey
    from ser_pipeline.features import encoder

    session = read_survey(list_surveys(archive_url)[0]).sessions[0]
    samples = load_audio(session.audio_url, spec.sample_rate).samples
    size = int(window_s * spec.sample_rate)
    windows = [samples[i : i + size] for i in range(0, len(samples) - size, size)][:n_windows]
    audio_h = len(windows) * window_s / 3600
    device, compute_type = encoder.compute_plan()
    model = encoder.load_whisper(spec.encoder_dir, device, compute_type, os.cpu_count() or 1)
    costs: dict[str, float] = defaultdict(float)
    for window in windows:
        t = time.perf_counter()
        mel = encoder.log_mel(encoder.unpadded(window), model.n_mels)
        costs["Whisper log-mel"] += time.perf_counter() - t
        t = time.perf_counter()
        hidden = np.asarray(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=True))[0]
        costs[f"encoder ({spec.encoder}, {device} {compute_type})"] += time.perf_counter() - t
        t = time.perf_counter()
        np.concatenate([hidden.mean(axis=0), hidden.std(axis=0)])
        costs["pooling"] += time.perf_counter() - t
    t = time.perf_counter()
    encoder.embed(windows, spec.encoder_dir)
    costs[f"embed(), {os.cpu_count()} replicas (wall)"] = time.perf_counter() - t
    return {name: seconds / audio_h for name, seconds in costs.items()}


def family_costs(archive_url: str, spec, n_windows: int = 256) -> dict[str, float]:
    """CPU seconds per hour of audio of each part of feature extraction, on ``n_windows``
    windows cut from the archive's first recording, one thread (the nightly run spreads
    windows over threads). Parts: the STFT, mel + MFCC, chroma, spectral contrast, and for
    a functionals spec the pitch track and the statistics over speech frames; for an
    embeddings spec, :func:`encoder_costs` (wall seconds: the encoder uses every core)."""
    import numpy as np

    if spec.output == "embeddings":
        return encoder_costs(archive_url, spec)

    from ser_pipeline.features import frames as F
    from ser_pipeline.features import functionals
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.archive.manifest import list_surveys, read_survey

    cut: list[np.ndarray] = []
    for session in read_survey(list_surveys(archive_url)[0]).sessions:
        samples = load_audio(session.audio_url, spec.sample_rate).samples
        cut += [samples[i : i + spec.n_samples] for i in range(0, len(samples) - spec.n_samples, spec.n_samples)]
        if len(cut) >= n_windows:
            break
    windows = np.stack(cut[:n_windows])  # back-to-back 4 s windows of recorded sessions
    audio_h = len(windows) * spec.n_samples / spec.sample_rate / 3600
    banks = F._banks(spec)
    costs: dict[str, float] = defaultdict(float)
    buf = np.empty((4, spec.n_frames, spec.n_fft))
    with F.one_blas_thread():
        for start in range(0, len(windows), 4):
            batch = windows[start : start + 4]
            active = F._active_frames(batch, spec)
            t = time.process_time()
            power = F._stft_power(batch, spec, banks.window, buf, active)
            costs["STFT"] += time.process_time() - t
            t = time.process_time()
            frames = F._frame_families(power, spec, banks, active)
            costs["mel, MFCC, chroma, contrast"] += time.process_time() - t
            if spec.output == "functionals":
                t = time.process_time()
                functionals.pitch_track(power, spec, active)
                costs["pitch track"] += time.process_time() - t
                t = time.process_time()
                functionals.summarise(frames, power, spec, active)
                costs["functionals (incl. pitch)"] += time.process_time() - t
    return {name: seconds / audio_h for name, seconds in costs.items()}


def timed_steps(seconds: dict[str, float]):
    """A ``step(fn)`` hook for ``run_nightly`` adding each step's wall time to ``seconds``
    (keyed by ``step_name``)."""
    from ser_pipeline.runs.steps import step_name

    def step(fn):
        name = step_name(fn)

        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        return run

    return step


def run_settings(archive_url: str, registry_url: str, work: Path, encoder: str, transcribe: bool):
    from ser_pipeline.settings import Settings

    return Settings(archive_url=archive_url, registry_url=registry_url, feature_store_url=(work / "features").as_uri(),
                    warehouse_path=work / "warehouse.duckdb", encoder=encoder, transcribe=transcribe)


def run_ours(archive_url: str, registry_url: str, work: Path, encoder: str,
             transcribe: bool = False) -> tuple[float, dict[str, float], dict]:
    """``run_nightly`` end to end into a fresh store and warehouse under ``work``; with
    ``transcribe`` (``SER_TRANSCRIBE``) it writes transcripts too."""
    from ser_pipeline.runs.nightly import run_nightly

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = run_settings(archive_url, registry_url, work, encoder, transcribe)
    seconds: dict[str, float] = defaultdict(float)
    start, cpu = time.perf_counter(), time.process_time()
    report = run_nightly(settings=settings, step=timed_steps(seconds))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if report.failed:
        from ser_pipeline.runs.nightly import nightly_markdown

        raise SystemExit(f"the nightly run failed:\n{nightly_markdown(report)}")
    return wall, dict(seconds), {**report.summary(), "stage_seconds": report.stage_seconds, "cpu_s": cpu, "peak_rss_mb": peak_mb}


def transcript_scores(archive_url: str, registry_url: str, work: Path, encoder: str) -> dict:
    """Coverage and WER of the transcripts run's transcripts against the archive's script
    (``evaluation.transcripts.score_transcripts``); no WER for wordless (formant) turns."""
    from ser_pipeline.evaluation.transcripts import score_transcripts
    from ser_pipeline.evaluation.truth import load_truth

    settings = run_settings(archive_url, registry_url, work, encoder, True)
    truth = load_truth(archive_url, settings=settings)
    if "text" not in truth:
        truth = truth.assign(text=None)
    return score_transcripts(settings.warehouse_path, truth, settings=settings)


def warm_up() -> float:
    """Import what the run imports lazily (TensorFlow/Keras, Great Expectations, librosa, DuckDB):
    a worker pays this once, not per run of audio. Seconds taken."""
    start = time.perf_counter()
    import ctranslate2  # noqa: F401
    import duckdb  # noqa: F401
    import faster_whisper.tokenizer  # noqa: F401
    import great_expectations  # noqa: F401
    import jiwer  # noqa: F401
    import keras  # noqa: F401
    import librosa  # noqa: F401

    return time.perf_counter() - start


def run_reference(archive_url: str, registry_url: str, n_sessions: int, encoder: str) -> tuple[float, float, dict[str, float]]:
    """The naive path on the first ``n_sessions`` sessions: per-utterance decode, naive librosa
    features, one model call per utterance. Audio seconds covered, wall seconds, per stage."""
    import soundfile as sf

    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.features.spec import FeatureSpec, clip_windows
    from ser_pipeline.features.frames import extract_features_naive
    from ser_pipeline.inference.predict import predict_proba
    from ser_pipeline.archive.manifest import list_surveys, read_survey
    from ser_pipeline.training.registry import load_model
    from ser_pipeline.archive.segmentation import segment_recording

    from ser_pipeline.features.frames import extract_features
    from ser_pipeline.inference.predict import spec_of
    from ser_pipeline.settings import Settings

    trained = load_model(registry_url, "champion")
    spec = spec_of(trained, Settings(encoder=encoder))
    # The naive librosa recipe exists for frame features; a functionals champion's reference
    # is the same features computed one utterance at a time (no batching, no threads).
    naive = extract_features_naive if spec.output == "frames" else extract_features
    naive_name = "features (naive librosa)" if spec.output == "frames" else "features (one utterance at a time)"
    sessions = [s for url in list_surveys(archive_url) for s in read_survey(url).sessions][:n_sessions]
    seconds: dict[str, float] = defaultdict(float)
    audio_s = 0.0
    # Warm-up outside the timing (imports, the model's first call).
    warm = clip_windows(load_audio(sessions[0].audio_url, spec.sample_rate, duration_s=2.0).samples, spec)
    predict_proba(trained, naive(warm, spec), None, spec)
    for session in sessions:
        audio_s += sf.info(session.audio_url.removeprefix("file://")).duration
        t = time.perf_counter()
        utterances = segment_recording(session.audio_url, session.session_id, session.turns or None)
        seconds["segment"] += time.perf_counter() - t
        for u in utterances:
            t = time.perf_counter()
            audio = load_audio(session.audio_url, spec.sample_rate, offset_s=u.start_s, duration_s=u.end_s - u.start_s)
            clips = clip_windows(audio.samples, spec)
            seconds["decode + resample"] += time.perf_counter() - t
            t = time.perf_counter()
            feats = naive(clips, spec)
            seconds[naive_name] += time.perf_counter() - t
            t = time.perf_counter()
            predict_proba(trained, feats, None, spec, utterance_ids=[u.session_id] * len(clips))
            seconds["inference (per utterance)"] += time.perf_counter() - t
    return audio_s, sum(seconds.values()), dict(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="at least this much audio in the archive")
    parser.add_argument("--sample-rate", type=int, default=44_100, help="recordings' rate (the pipeline resamples to 22 050)")
    parser.add_argument("--sidecar", default="mixed", help="csv, rttm, mixed or none (none: every session segmented by VAD)")
    # The default champion is the recipe the weekly retraining trains (TrainConfig's defaults);
    # --architecture seed --input mfcc --normalization global is the seed's CNN.
    from ser_pipeline.settings import Settings
    from ser_pipeline.training.fit import RECIPES, TrainConfig

    recipe = TrainConfig()
    parser.add_argument("--input", default=recipe.input_kind, help="the champion's input: encoder, functionals, stacked or mfcc")
    parser.add_argument("--architecture", default=None, help="the champion's architecture (default: the input's recipe): linear, mlp, pooled or seed")
    parser.add_argument("--normalization", default=recipe.normalization, help="the champion's normalisation: speaker or global")
    parser.add_argument("--encoder", default=Settings().encoder, help="the encoder of --input encoder: whisper-base, whisper-tiny.en or a directory")
    parser.add_argument("--reference-sessions", type=int, default=2, help="sessions the naive reference runs on")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ser-bench-nightly")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=12, help="the champion's training epochs (enough not to predict one class)")
    parser.add_argument("--speech", default="espeak", choices=["espeak", "formant"],
                        help="the archive's turns: espeak (words, for the transcripts path) or formant (wordless buzz)")
    parser.add_argument("--transcripts", default=True, action=argparse.BooleanOptionalAction,
                        help="also run the path with transcripts (SER_TRANSCRIBE=true) on the same archive")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    args.architecture = args.architecture or RECIPES[args.input].get("architecture", recipe.architecture)

    args.workdir.mkdir(parents=True, exist_ok=True)
    sidecar = None if args.sidecar == "none" else args.sidecar
    archive_url, audio_s = make_archive(args.workdir, args.hours, args.sample_rate, sidecar, args.seed, args.speech)
    registry_url = make_champion(args.workdir, args.architecture, args.input, args.normalization, epochs=args.epochs, seed=args.seed,
                                 encoder=args.encoder)

    startup_s = warm_up()
    load_before = _load_average()
    wall, steps, summary = run_ours(archive_url, registry_url, args.workdir / "run", args.encoder, transcribe=False)
    with_transcripts = None
    if args.transcripts:
        work = args.workdir / "run-transcripts"
        t_wall, t_steps, t_summary = run_ours(archive_url, registry_url, work, args.encoder, transcribe=True)
        with_transcripts = transcripts_result(audio_s, wall, t_wall, t_summary,
                                              transcript_scores(archive_url, registry_url, work, args.encoder))
    ref_audio_s, ref_wall, ref_steps = run_reference(archive_url, registry_url, args.reference_sessions, args.encoder)
    from ser_pipeline.inference.predict import spec_of
    from ser_pipeline.training.registry import load_model

    spec = spec_of(load_model(registry_url, "champion"), Settings(encoder=args.encoder))
    costs = family_costs(archive_url, spec)
    # The naive path end to end: our run with its decode, features and inference replaced by
    # the reference's cost per second of audio (the other steps are the same code in both).
    stages = summary["stage_seconds"]
    ours_replaced = sum(stages.get(k, 0.0) for k in ("decode + resample", "features", "predict"))
    naive_wall = wall - ours_replaced + ref_wall * audio_s / ref_audio_s
    ours_x, ref_x = audio_s / wall, audio_s / naive_wall

    result = {
        "audio_s": round(audio_s, 1), "wall_s": round(wall, 2), "x_real_time": round(ours_x, 1),
        "steps_s": {k: round(v, 3) for k, v in steps.items()},
        "stage_s": {k: round(v, 3) for k, v in summary["stage_seconds"].items()},
        "cpu_s": round(summary["cpu_s"], 2), "peak_rss_mb": round(summary["peak_rss_mb"]), "startup_imports_s": round(startup_s, 2),
        "utterances": summary["predictions_loaded"],
        "champion": {"architecture": args.architecture, "input": args.input, "normalization": args.normalization,
                     "encoder": args.encoder if args.input == "encoder" else None},
        "features_share": round(summary["stage_seconds"].get("features", 0.0) / (wall * (os.cpu_count() or 1)), 3),
        "reference": {"audio_s": round(ref_audio_s, 1), "wall_s": round(ref_wall, 2), "naive_end_to_end_s": round(naive_wall, 1),
                      "x_real_time": round(ref_x, 1),
                      "steps_s": {k: round(v, 3) for k, v in ref_steps.items()}},
        "feature_cpu_s_per_audio_hour": {k: round(v, 2) for k, v in costs.items()},
        "ratio": round(ours_x / ref_x, 1), "cores": os.cpu_count(), "load_average": [load_before, _load_average()],
        "speech": args.speech, "transcripts": with_transcripts,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"archive: {audio_s / 3600:.2f} h of {args.sample_rate} Hz audio, {summary['sessions']} sessions, "
          f"{summary['predictions_loaded']} utterances; champion: {args.architecture}/{args.input}/{args.normalization}"
          f"{' on ' + args.encoder if args.input == 'encoder' else ''}; "
          f"{os.cpu_count()} cores, load average {load_before} -> {_load_average()}")
    print(f"\n{'nightly step':<28}{'seconds':>9}{'x real time':>13}")
    for name, s in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"{name:<28}{s:>9.2f}{audio_s / s if s else float('inf'):>13.0f}")
    for name, s in summary["stage_seconds"].items():
        print(f"  {'stage: ' + name:<26}{s:>9.2f}{audio_s / s if s else float('inf'):>13.0f}")
    print(f"{'end to end':<28}{wall:>9.2f}{ours_x:>13.0f}")
    print(f"{'  (process CPU time)':<28}{summary['cpu_s']:>9.2f}{audio_s / summary['cpu_s']:>13.0f}   per CPU second")
    print(f"  peak memory (RSS) of the process after the run: {summary['peak_rss_mb']:.0f} MB")
    print(f"  start-up imports, once per worker, not in the rate: {startup_s:.1f} s")
    print(f"  features' share of the run: {summary['stage_seconds'].get('features', 0.0) / (wall * (os.cpu_count() or 1)):.0%}"
          f" of {os.cpu_count()} cores x {wall:.1f} s (the stage's seconds are summed over its threads)"
          + (f" (the encoder, {args.encoder}, and its log-mel)" if spec.output == "embeddings" else ""))
    print("\nfeature extraction, " + ("seconds per hour of audio, one window at a time on one core, then embed() on all:" if spec.output == "embeddings"
                                     else "CPU seconds per hour of audio (one thread):"))
    for name, cost in costs.items():
        print(f"  {name:<30}{cost:>8.2f}")
    print(f"\nreference on {args.reference_sessions} sessions ({ref_audio_s:.0f} s of audio):")
    for name, s in ref_steps.items():
        print(f"  {name:<26}{s:>9.2f}{ref_audio_s / s if s else float('inf'):>13.0f}")
    print(f"  {'decode+features+inference':<26}{ref_wall:>9.2f}{ref_audio_s / ref_wall:>13.1f}"
          f"   (ours: {audio_s / ours_replaced:.0f}x, {ref_audio_s / ref_wall and (audio_s / ours_replaced) / (ref_audio_s / ref_wall):.1f} times faster)")
    print(f"{'naive path end to end':<28}{naive_wall:>9.2f}{ref_x:>13.1f}   (our run with those three stages at the reference's rate)")
    print(f"\nours {ours_x:.0f}x real time, naive path {ref_x:.1f}x: ratio {ours_x / ref_x:.1f}x; "
          f"floor >= {FLOOR_X_REAL_TIME:.0f}x: {'MET' if ours_x >= FLOOR_X_REAL_TIME else 'NOT MET'}; "
          f"goal >= {GOAL_X_REAL_TIME:.0f}x real time: {'MET' if ours_x >= GOAL_X_REAL_TIME else 'NOT MET'}")
    if with_transcripts is not None:
        print_transcripts(with_transcripts, audio_s, wall, args.encoder, args.speech)
    return 0


def transcripts_result(audio_s: float, labels_wall: float, wall: float, summary: dict, scores: dict) -> dict:
    """The transcripts path's figures: end to end, its transcription stages (seconds, summed
    over threads for encode and decode, and their share of the run's cores x wall), the wall
    time it adds to the labels-only run, the transcripts loaded and their scores."""
    cores = os.cpu_count() or 1
    stages = {k: summary["stage_seconds"].get(k, 0.0) for k in TRANSCRIBE_STAGES}
    total = sum(stages.values())
    return {
        "wall_s": round(wall, 2), "x_real_time": round(audio_s / wall, 1),
        "labels_only": {"wall_s": round(labels_wall, 2), "x_real_time": round(audio_s / labels_wall, 1)},
        "added_wall_s": round(wall - labels_wall, 2),
        "transcribe_s": {k.removeprefix("transcribe: "): round(v, 2) for k, v in stages.items()},
        "transcribe_total_s": round(total, 2),
        "transcribe_share": {**{k.removeprefix("transcribe: "): round(v / (wall * cores), 3) for k, v in stages.items()},
                             "total": round(total / (wall * cores), 3)},
        "stage_s": {k: round(v, 3) for k, v in summary["stage_seconds"].items()},
        "cpu_s": round(summary["cpu_s"], 2), "peak_rss_mb": round(summary["peak_rss_mb"]),
        "predictions_loaded": summary["predictions_loaded"],
        "transcripts_loaded": summary.get("transcripts_loaded", 0), "transcripts_empty": summary.get("transcripts_empty", {}),
        "coverage": round(scores["coverage"], 4), "wer": None if math.isnan(scores["wer"]) else round(scores["wer"], 4),
        "clips_scored": scores["n_clips_scored"], "model": scores["model"],
        "goal_x_real_time": TRANSCRIPTS_GOAL_X_REAL_TIME, "goal_met": audio_s / wall >= TRANSCRIPTS_GOAL_X_REAL_TIME,
    }


def print_transcripts(t: dict, audio_s: float, labels_wall: float, encoder: str, speech: str) -> None:
    cores = os.cpu_count() or 1
    print(f"\nboth paths on the same archive ({audio_s / 60:.1f} min of {speech} speech), end to end:")
    print(f"  {'labels only (SER_TRANSCRIBE=false)':<44}{labels_wall:>8.2f} s{audio_s / labels_wall:>9.1f}x real time")
    print(f"  {'labels + transcripts (SER_TRANSCRIBE=true)':<44}{t['wall_s']:>8.2f} s{t['x_real_time']:>9.1f}x real time"
          f"   (+{t['added_wall_s']:.1f} s; process CPU {t['cpu_s']:.0f} s, {audio_s / t['cpu_s']:.1f}x per CPU second;"
          f" peak RSS {t['peak_rss_mb']} MB)")
    print(f"  transcription's stages in the transcripts run (seconds; share of {cores} cores x {t['wall_s']:.1f} s):")
    for name, seconds in t["transcribe_s"].items():
        where = "one thread" if name == "audio" else f"summed over {cores} threads"
        print(f"    {name:<10}{seconds:>8.2f} s{t['transcribe_share'][name]:>7.0%}   ({where})")
    print(f"    {'total':<10}{t['transcribe_total_s']:>8.2f} s{t['transcribe_share']['total']:>7.0%}")
    empty = ", ".join(f"{k}: {v}" for k, v in t["transcripts_empty"].items()) or "none"
    wer = "n/a (wordless turns)" if t["wer"] is None else f"{t['wer']:.3f} over {t['clips_scored']} turns"
    print(f"  transcripts: {t['transcripts_loaded']} for {t['predictions_loaded']} labelled utterances (empty: {empty}); "
          f"coverage {t['coverage']:.1%}; WER against the script {wer}; model {t['model']}")
    print(f"\nlabels with transcripts {t['x_real_time']:.1f}x real time end to end ({encoder}, {cores} cores): "
          f"goal >= {TRANSCRIPTS_GOAL_X_REAL_TIME:.0f}x: {'MET' if t['goal_met'] else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())
