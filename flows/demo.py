"""``make demo``: the nightly job end to end on embedded defaults, then its results.

Everything lives under ``./demo-data`` (a local folder as the object store, a local DuckDB
file) and Prefect runs without a server (its ephemeral mode). Wiring only: each step is a
library function or one of the real flows.

1. generate a small focus-group archive and a labelled training corpus (``synth``);
2. train a small model on the generated speech with the retraining flow (skipped when a
   champion is already registered, so a second ``make demo`` is quick and shows idempotency);
3. run the nightly labelling flow over the archive;
4. print trend queries from the warehouse and write the HTML report.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="demo-data", help="folder for the archive, stores and warehouse")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's, TrainConfig.epochs)")
    parser.add_argument("--voices", type=int, default=96, help="generated training voices (each says 2 clips per emotion)")
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

    try:
        summary = nightly_flow(settings)(settings=settings)
    except NightlyRunFailed as exc:
        print(f"nightly run failed: {exc}", file=sys.stderr)
        return 1
    print({k: summary[k] for k in ("status", "sessions", "utterances_loaded", "predictions_loaded", "quarantined")})

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

    con = warehouse.connect(db, read_only=True, settings=settings)
    try:
        html = report.write_survey_report(con, survey, root / "reports")
        score = truth.agreement(con, truth.load_truth(settings.archive_url, settings=settings))
    finally:
        con.close()
    print(f"\nAgreement with the generator's truth ({score.matched} utterances, model {score.model_version}): "
          f"{score.accuracy:.1%} for the model's own labels, {score.context_accuracy:.1%} with session context "
          f"(8 emotions; chance is 12.5%)")
    _stage(f"Done in {time.perf_counter() - started:.0f} s")
    print(f"HTML report: {html}")
    print(f"Warehouse:   {db}   (try: ser sql \"SELECT label, count(*) FROM predictions GROUP BY 1\")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
