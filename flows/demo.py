"""``make demo``: the nightly job end to end on embedded defaults, then its results.

Everything lives under ``./demo-data`` (a local folder as the object store, a local DuckDB
file) and Prefect runs without a server (its ephemeral mode). Wiring only: each step is a
library function or one of the real flows.

1. generate a small focus-group archive and a labelled training corpus (``synth``);
2. train a small model on the generated speech with the retraining flow (skipped when a
   champion is already registered, so a second ``make demo`` is quick and shows idempotency);
3. run the nightly labelling flow over the archive;
4. print trend queries from the warehouse, a few quotes with their emotions, and write the
   HTML report; score the labels and (with ``SER_TRANSCRIBE``, the default) the transcripts
   against the generator's truth: coverage, and word error rate against the script espeak-ng spoke.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Dask's scheduler and workers log every start at INFO; a newcomer reads the demo's output
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
# Prefect's ephemeral API server starts in ~15 s on an idle laptop; allow for a busy one.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _stage(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _progress(bar):
    """Adapt a tqdm bar to the ``progress(done, total)`` callbacks of ``synth``."""
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    return update


def _table(frame, limit: int = 12) -> str:
    return frame.head(limit).to_string(index=False) if len(frame) else "(no rows)"


def _clip(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _print_quotes(warehouse, db, survey: str, settings, limit: int = 8) -> None:
    """What was said, with its emotion: the clearest quote of each label (the ``quotes`` query
    orders by confidence), the most confident first."""
    query = warehouse.named_queries()["quotes"]
    print(f"\n-- {query.question}\n   (ser query quotes --param survey={survey}; the clearest quote of each emotion shown)")
    quotes = warehouse.run_named_query(db, "quotes", {"survey": survey, "limit": 1000}, settings=settings)
    if quotes.empty:
        print("(no transcripts with words)")
        return
    best = quotes.drop_duplicates("label").head(limit)
    shown = best.assign(text=best["text"].map(_clip))[["label", "confidence", "question", "segment", "text"]]
    print(shown.to_string(index=False))


def _print_transcript_scores(db, truth_frame, settings) -> None:
    """Coverage (labelled utterances with words) and word error rate of the transcripts against
    the demo's own script (the generator's truth says each turn's words when espeak-ng spoke it)."""
    from ser_pipeline.evaluation.transcripts import score_transcripts
    from ser_pipeline.transcripts.quality import reason_kind

    if truth_frame.empty or "text" not in truth_frame or not truth_frame["text"].notna().any():
        print("Transcripts: the archive's turns have no words to compare with (formant speech); WER not scored")
        return
    scored = score_transcripts(db, truth_frame, settings=settings)
    kinds: dict[str, int] = {}
    for reason, n in scored["empty_reasons"].items():
        kinds[reason_kind(reason)] = kinds.get(reason_kind(reason), 0) + n
    empty = ", ".join(f"{kind} {n}" for kind, n in kinds.items())
    print(f"Transcripts ({scored['model']}): {scored['n_with_words']} of {scored['n_utterances']} labelled utterances "
          f"have words (coverage {scored['coverage']:.1%}{'; empty: ' + empty if empty else ''}); "
          f"word error rate against the demo's script {scored['wer']:.2f} over {scored['n_clips_scored']} turns")
    by_emotion = {emotion: score_transcripts(db, rows, settings=settings, model=scored["model"])["wer"]
                  for emotion, rows in truth_frame.groupby("emotion")}
    order = sorted(by_emotion, key=by_emotion.get)
    print("  WER by the emotion espeak-ng acted: " + ", ".join(f"{e} {by_emotion[e]:.2f}" for e in order))
    hard = [e for e in order if by_emotion[e] > 1.3 * scored["wer"] and by_emotion[e] > 0.3]
    if hard:
        print(f"  (every emotion says lines of the same script, so the spread is espeak-ng's acting: its "
              f"{', '.join(hard)} delivery (rate, pitch, voice quality) is the hardest to hear; "
              f"synthetic voices, not a measure of Whisper on real focus groups)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="demo-data", help="folder for the archive, stores and warehouse")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's, TrainConfig.epochs)")
    # 64 voices (1 024 clips, each heard three times by the encoder) rather than the 96 of earlier
    # demos: the transcripts added ~70 s to the nightly run, and the demo stays under 6 minutes on 2 cores.
    parser.add_argument("--voices", type=int, default=64, help="generated training voices (each says 2 clips per emotion)")
    parser.add_argument("--speech", default="espeak", choices=["espeak", "formant"],
                        help="espeak: words spoken by espeak-ng, acted per emotion; formant: the source-filter buzz of earlier demos")
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))

    from tqdm import tqdm

    from ser_pipeline.training import registry

    from ser_pipeline.warehouse import report

    from ser_pipeline import synthetic as synth

    from ser_pipeline.evaluation import truth

    from ser_pipeline import warehouse
    from ser_pipeline.settings import Settings

    settings = Settings(archive_url=(root / "archive").as_uri(), feature_store_url=(root / "features").as_uri(),
                        registry_url=(root / "registry").as_uri(), warehouse_path=root / "warehouse.duckdb")
    started = time.perf_counter()

    _stage(f"Generating a focus-group archive and a training corpus under {root}")
    with tqdm(desc="training corpus", unit="clip") as bar:
        synth.generate_corpus((root / "corpus").as_uri(), n_speakers=args.voices, utterances_per_emotion=2, seed=1,
                              progress=_progress(bar), speech=args.speech)
    with tqdm(desc="archive sessions", unit="session") as bar:
        turns = synth.generate_archive(settings.archive_url, n_surveys=2, sessions_per_survey=4,
                                       participants_per_session=4, utterances_per_session=14, seed=7,
                                       sidecar="mixed", speech=args.speech,
                                       progress=_progress(bar))
    speech_min = (turns["end_s"] - turns["start_s"]).sum() / 60
    print(f"{turns['survey_id'].nunique()} surveys, {turns['session_id'].nunique()} sessions, "
          f"{len(turns)} turns ({speech_min:.1f} min of speech)")

    from flows.nightly import nightly_flow
    from flows.retrain import retrain_model

    champion = registry.champion_version(settings.registry_url, settings=settings)
    if champion is None:
        _stage("Training the recommended model on the generated speech (retraining flow)")
        options = {} if args.epochs is None else {"epochs": args.epochs}
        result = retrain_model(corpus_urls={"synth": (root / "corpus").as_uri()}, settings=settings, **options)
        print(f"model {result['version']}: UAR {result['uar']:.3f}, accuracy {result['accuracy']:.3f} "
              f"on held-out generated speakers; {result['reason']}")
    else:
        _stage(f"Champion model {champion} already registered; skipping training (delete {root} to start over)")

    _stage("Running the nightly labelling flow over the archive")
    from ser_pipeline.errors import NightlyRunFailed

    labelling = time.perf_counter()
    try:
        summary = nightly_flow(settings)(settings=settings)
    except NightlyRunFailed as exc:
        print(f"nightly run failed: {exc}", file=sys.stderr)
        return 1
    print({k: summary[k] for k in ("status", "sessions", "utterances_loaded", "predictions_loaded", "quarantined",
                                   "transcripts_loaded") if k in summary})
    print(f"the nightly run took {time.perf_counter() - labelling:.0f} s" + (" (labels and transcripts)" if settings.transcribe else ""))

    _stage("What the analysts see")
    db = settings.warehouse_path
    survey = sorted(turns["survey_id"].unique())[0]
    for name, params in [
        ("emotion_share_by_week", {"survey": survey}),
        ("negative_trend", {"survey": survey}),
        ("emotion_by_question", {"survey": survey}),
        ("top_moments", {"survey": survey, "limit": 5}),
    ]:
        query = warehouse.named_queries()[name]
        print(f"\n-- {query.question}  (ser query {name} " + " ".join(f"--param {k}={v}" for k, v in params.items()) + ")")
        print(_table(warehouse.run_named_query(db, name, params, settings=settings)))

    if settings.transcribe:
        _print_quotes(warehouse, db, survey, settings)

    truth_frame = truth.load_truth(settings.archive_url, settings=settings)
    con = warehouse.connect(db, read_only=True, settings=settings)
    try:
        html = report.write_survey_report(con, survey, root / "reports")
        score = truth.agreement(con, truth_frame)
    finally:
        con.close()
    print(f"\nAgreement with the generator's truth ({score.matched} utterances, model {score.model_version}): "
          f"{score.accuracy:.1%} for the model's own labels, {score.context_accuracy:.1%} with session context "
          f"(8 emotions; chance is 12.5%)")
    if settings.transcribe:
        _print_transcript_scores(db, truth_frame, settings)
    _stage(f"Done in {time.perf_counter() - started:.0f} s")
    print(f"HTML report: {html}")
    print(f"Warehouse:   {db}   (try: ser sql \"SELECT label, count(*) FROM predictions GROUP BY 1\")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
