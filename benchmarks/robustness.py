"""Robustness benchmark: models side by side per recording condition and through sessions.

For each model recipe (the champion's: ``TrainConfig()``, a frozen Whisper encoder's
embeddings; ``functionals``, the champion of 2026-12-07; ``previous``, that of 2026-12-02:
the same MLP early-stopped on 10% of the speakers, prior 5; ``pooled``, the one before it, on
request; the seed CNN on MFCC),
K-fold cross-validation over speaker groups of the corpus (default ravdess-dev, 4 folds):

- every fold's model is evaluated on its held-out speakers' clips under each condition
  (``robustness.evaluate_conditions``), the folds pooled per condition;
- the same clean clips heard as one-sided participants (``robustness.one_sided_participants``:
  each speaker's clips sorted by emotion, dealt into participants of 15), row ``one-sided``;
- with ``--sessions`` every fold's model also labels focus-group sessions assembled from its
  held-out speakers (reverberant, a -54 dBFS noise floor, diarizer turns) through the real
  nightly path into a fresh DuckDB file, scored against the truth
  (``session_scoring.evaluate_sessions``), beside the clip-level figure under reverb;
- with ``--tess`` every fold's model also labels the TESS clips (another corpus, two unseen
  speakers; 7 emotions), pooled over the folds.

    python benchmarks/robustness.py --sessions --tess ../shared/data/tess-subset --out reports/robustness
    python benchmarks/robustness.py --models champion --conditions clean,snr20 --folds 2   # quicker
    python benchmarks/robustness.py --models champion --try no-copies:corrupted_copies=0   # a variant beside it

Prints one table per model and writes ``robustness.json`` and ``robustness.md`` to ``--out``.
Nothing is timed here: model figures only. Cost on 2 cores: ~10 min per recipe with
``--sessions`` (the seed CNN much more: ``--seed-epochs`` caps it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
DEFAULT_CONDITIONS = "clean,snr30,snr20,snr10,babble10,reverb,telephone,codec,mix"


def recipes(seed_epochs: int):
    from dataclasses import replace

    from ser_pipeline.training.fit import TrainConfig, recipe_for

    functionals = recipe_for("functionals", calibration_folds=0)
    return {
        "champion": TrainConfig(),
        # the champion of 2026-12-07: an MLP on prosodic and spectral functionals, uncalibrated
        "functionals": functionals,
        # the champion of 2026-12-02: the same MLP, early-stopped on 10% of the speakers, prior 5
        "previous": replace(functionals, validation_share=0.1, epochs=100, speaker_prior_utterances=5.0),
        # the one before it: a pooled network over frame features, no corruption
        "pooled": TrainConfig(architecture="pooled", input_kind="stacked", normalization="speaker", corrupted_copies=0,
                              speaker_prior_utterances=5.0, heard_group_max=0, clip_z=0.0, validation_share=0.1, epochs=100,
                              calibration_folds=0),
        "seed": TrainConfig(architecture="seed", input_kind="mfcc", normalization="global", corrupted_copies=0,
                            validation_share=0.1, epochs=seed_epochs, calibration_folds=0),
    }


def variant_of(config, changes: str):
    """``config`` with ``"field=value,field=value"`` applied, each value parsed as its field's type."""
    from dataclasses import replace

    values = {}
    for change in filter(None, changes.split(",")):
        key, value = change.split("=", 1)
        values[key] = type(getattr(config, key))(value)
    return replace(config, **values)


def run_recipe(name, config, settings, corpora, conditions, folds, seed, sessions, tess_items, workdir):
    from ser_pipeline.training import registry
    from ser_pipeline.training.corpora import read_corpus
    from ser_pipeline.runs.retrain import fit, load_training_set, make_split
    from dataclasses import replace

    from ser_pipeline.evaluation.robustness import condition_row, evaluate_conditions, one_sided_participants, pool_results
    from ser_pipeline.evaluation.sessions import evaluate_sessions
    from ser_pipeline.training.splits import speaker_kfold

    started = time.perf_counter()
    training_set = load_training_set(settings, corpora, config)
    utterances = training_set.data.utterances
    items = {i.utterance_id: i for n, u in corpora.items() for i in read_corpus(n, u)}
    per_fold, tess_parts, session_scores, fold_rows = [], [], [], []
    cache: dict[str, np.ndarray] = {}
    for index, (_, held_rows) in enumerate(speaker_kfold(utterances, k=folds, seed=seed)):
        held = sorted(set(utterances.speaker.iloc[held_rows].astype(str)))
        split = make_split(training_set, "speaker", seed, held, config.validation_share)
        print(f"[{name}] fold {index + 1}/{folds}: held out {', '.join(held)}", file=sys.stderr, flush=True)
        trained = fit(training_set, split, config, None, cache, settings)
        test_utts = training_set.data.windows.iloc[split.test].drop_duplicates("utterance_id").reset_index(drop=True)
        results = evaluate_conditions(trained, test_utts, training_set.spec, conditions, seed, cache, settings)
        one_sided = test_utts.assign(speaker=one_sided_participants(test_utts))
        results += [replace(r, condition="one-sided") for r in
                    evaluate_conditions(trained, one_sided, training_set.spec, ["clean"], seed, cache, settings)]
        per_fold.append(results)
        fold_rows.append({"fold": index + 1, "held_out": held, **{r.condition: r.metrics["uar"] for r in results}})
        if tess_items is not None:
            tess_parts.append(evaluate_conditions(trained, tess_items, training_set.spec, ["clean", "snr20", "reverb"],
                                                  seed, cache, settings))
        if sessions:
            version = registry.save_model(trained, {}, settings.registry_url, settings=settings)
            clips = [items[u] for u in test_utts.utterance_id]
            fold_dir = Path(workdir) / f"{name}-sessions-{index}"
            fold_dir.mkdir(parents=True)
            session_scores.append(evaluate_sessions(settings, clips, str(fold_dir), model=version, seed=seed))
    pooled = pool_results(per_fold)
    out = {"recipe": name, "config": config.__dict__, "folds": fold_rows, "conditions": [condition_row(r) for r in pooled],
           "elapsed_s": round(time.perf_counter() - started, 1)}
    if tess_parts:
        out["tess"] = [condition_row(r) for r in pool_results(tess_parts)]
    if session_scores:
        out["sessions"] = _pool_sessions(session_scores)
    return out


def _pool_sessions(scores):
    """Session figures over folds, weighted by the clips each fold labelled."""
    n = np.array([s["n_labelled"] for s in scores], dtype=float)
    pooled = {key: float(np.average([s[key] for s in scores], weights=n)) if n.sum() else float("nan")
              for key in ("accuracy", "uar", "context_accuracy", "context_uar", "utterance_accuracy")}
    pooled.update({key: int(sum(s[key] for s in scores)) for key in ("n_truth_clips", "n_labelled", "n_unlabelled", "n_utterances")})
    pooled["note"] = "UAR: clip-weighted mean of the folds' UARs"
    return pooled


def markdown(results, conditions) -> str:
    lines = ["| recipe | " + " | ".join(conditions) + " | gender gap (clean) | sessions acc. (context) | TESS clean |",
             "|---|" + "---:|" * (len(conditions) + 3)]
    for r in results:
        by = {c["condition"]: c for c in r["conditions"]}
        cells = [f"{100 * by[c]['uar']:.1f}" for c in conditions]
        gap = by.get("clean", {}).get("gender_gap")
        s = r.get("sessions")
        sess = f"{100 * s['accuracy']:.1f} ({100 * s['context_accuracy']:.1f})" if s else "-"
        tess = f"{100 * r['tess'][0]['uar']:.1f}" if r.get("tess") else "-"
        lines.append(f"| {r['recipe']} | " + " | ".join(cells) + f" | {'-' if gap is None else f'{100 * gap:.1f}'} | {sess} | {tess} |")
    lines += ["", "Expected calibration error per condition (15 bins):", "",
              "| recipe | " + " | ".join(conditions) + " |", "|---|" + "---:|" * len(conditions)]
    for r in results:
        by = {c["condition"]: c for c in r["conditions"]}
        lines.append(f"| {r['recipe']} | " + " | ".join(f"{by[c]['ece']:.3f}" for c in conditions) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", default=None, help="NAME=PATH (default ravdess=../shared/data/ravdess-dev)")
    parser.add_argument("--models", default="champion,functionals", help="recipes to compare: champion, functionals, previous, pooled, seed")
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-epochs", type=int, default=15, help="epoch cap of the seed CNN (~20 s per epoch on 2 cores)")
    parser.add_argument("--sessions", action="store_true", help="also label assembled sessions through the nightly path")
    parser.add_argument("--tess", default=None, help="TESS folder for the cross-corpus row")
    parser.add_argument("--store", default=None, help="feature store URL to reuse between runs (default: a temporary one)")
    parser.add_argument("--out", default=None, help="folder for robustness.json and robustness.md")
    parser.add_argument("--try", dest="variants", action="append", default=[], metavar="NAME:FIELD=VALUE,...",
                        help="also run the champion's recipe with TrainConfig fields changed (repeatable)")
    args = parser.parse_args(argv)

    from ser_pipeline.audio.conditions import parse_conditions
    from ser_pipeline.training.corpora import items_frame, read_corpus
    from ser_pipeline.settings import Settings

    corpora = dict(c.split("=", 1) for c in (args.corpus or [f"ravdess={SHARED / 'ravdess-dev'}"]))
    missing = [u for u in corpora.values() if "://" not in u and not Path(u).exists()]
    if missing:
        print(f"skipped: corpus folder(s) {missing} not found (see ../shared/data/README.md)")
        return 0
    conditions = parse_conditions(args.conditions)
    chosen = recipes(args.seed_epochs)
    names = [n for n in args.models.split(",") if n]
    for variant in args.variants:
        name, changes = variant.split(":", 1)
        chosen[name] = variant_of(chosen["champion"], changes)
        names.append(name)
    results = []
    with tempfile.TemporaryDirectory(prefix="ser-robustness-") as tmp:
        settings = Settings(feature_store_url=args.store or (Path(tmp) / "features").as_uri(),
                            registry_url=(Path(tmp) / "registry").as_uri(), warehouse_path=Path(tmp) / "warehouse.duckdb",
                            archive_url=(Path(tmp) / "archive").as_uri())
        tess_items = items_frame(read_corpus("tess", args.tess)) if args.tess else None
        for name in names:
            result = run_recipe(name, chosen[name], settings, corpora, conditions, args.folds, args.seed, args.sessions,
                                tess_items, tmp)
            results.append(result)
            print(f"\n{name}: {json.dumps(result['folds'])}", flush=True)
            print(markdown([result], [*conditions, "one-sided"]), flush=True)
    table = markdown(results, [*conditions, "one-sided"])
    print(f"\n{args.folds}-fold speaker-independent UAR (%) per condition, {', '.join(corpora)}; seed {args.seed}\n")
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "robustness.json").write_text(json.dumps({"conditions": conditions, "folds": args.folds, "results": results},
                                                         indent=2, default=str))
        (out / "robustness.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
