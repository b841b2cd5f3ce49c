"""``ser train``, ``ser evaluate``, ``ser predict`` and ``ser models list|promote``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._common import EXIT_FAILURE, EXIT_USAGE, fail, print_json, settings_from

CORPUS_HELP = "A training corpus as NAME=PATH (ravdess, tess, crema_d, savee, synth); repeat for several."


def _parse_corpora(values: list[str]) -> dict[str, str]:
    corpora: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url:
            raise typer.BadParameter(f"{value!r} is not NAME=PATH", param_hint="--corpus")
        corpora[name.strip()] = url.strip()
    if not corpora:
        raise typer.BadParameter("give at least one --corpus NAME=PATH", param_hint="--corpus")
    return corpora


def _context_effect(trained: Any, data: Any, y: Any, proba: Any, utterances: Any, stay: float, seed: int = 0) -> dict[str, Any]:
    """Accuracy/UAR before and after forward filtering on pseudo-sessions of the evaluated speakers."""
    import numpy as np
    from sklearn.metrics import recall_score

    from ser_pipeline.inference.context import assemble_sessions, filter_sessions, fit_transitions, sticky_transitions

    n_classes = len(trained.labels)
    train_speakers = set(trained.split_speakers.get("train", []))
    train_utts = data.utterances[data.utterances.speaker.isin(train_speakers)]
    if len(train_utts):
        order, sessions = assemble_sessions(train_utts.emotion, train_utts.speaker, seed=seed + 1)
        codes = np.asarray(trained.labels.indices(train_utts.emotion.iloc[order]))
        sequences = [codes[sessions == s] for s in dict.fromkeys(sessions)]
        transition, source = fit_transitions(sequences, n_classes), "fitted on pseudo-sessions of the training speakers"
    else:
        transition, source = sticky_transitions(n_classes, stay), f"sticky default (stay {stay})"
    order, sessions = assemble_sessions(utterances.emotion, utterances.speaker, seed=seed)
    filtered = filter_sessions(proba[order], sessions, transition)
    y_ord = y[order]
    before, after = proba[order].argmax(axis=1), filtered.argmax(axis=1)
    return {
        "transition": source,
        "stay_probability_mean": float(np.mean(np.diag(transition))),
        "sessions": int(len(set(sessions))),
        "utterances": int(len(order)),
        "accuracy_before": float((before == y_ord).mean()),
        "accuracy_after": float((after == y_ord).mean()),
        "uar_before": float(recall_score(y_ord, before, average="macro")),
        "uar_after": float(recall_score(y_ord, after, average="macro")),
        "changed": int((before != after).sum()),
    }


def _train_config(**flags: Any) -> Any:
    """The recipe of the input kind given (none: the recommended one) with the other flags that were given."""
    from ser_pipeline.training.fit import recipe_for

    given = {k: v for k, v in flags.items() if v is not None}
    return recipe_for(given.pop("input_kind", None), **given)


def _cross_validate(settings: Any, training_set: Any, config: Any, k: int, out: Path | None, as_json: bool) -> None:
    """``ser train --kfold K``: pooled held-out metrics and one line per fold."""
    from ser_pipeline.runs.crossval import cross_validate
    from ser_pipeline.evaluation.metrics import write_evaluation_report

    cv = cross_validate(training_set, config, k=k, seed=config.seed, progress=lambda line: typer.echo(line, err=True),
                        settings=settings)
    metrics = cv.metrics
    folds = [{"fold": f.index + 1, "test_speakers": list(f.test_speakers), "val_speakers": list(f.val_speakers),
              "uar": f.uar, "accuracy": f.accuracy, "epochs run": f.epochs} for f in cv.folds]
    details = {"architecture": config.architecture, "input": config.input_kind, "normalization": config.normalization,
               "corrupted copies": config.corrupted_copies, "split": f"{k}-fold over speakers, held-out predictions pooled",
               "fold UARs": ", ".join(f"{f['uar']:.1%} ({'+'.join(f['test_speakers'])})" for f in folds)}
    if out is not None:
        write_evaluation_report(out, {**metrics, "folds": folds}, cv.held_out.y, cv.held_out.proba, title=f"{k}-fold cross-validation", details=details)
    if as_json:
        print_json({**details, "folds": folds, "n": metrics["n"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
                    "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                    "largest_gap": {g: v["largest_gap"] for g, v in metrics["groups"].items()},
                    "skipped_inputs": [list(s) for s in training_set.data.skipped]})
        return
    for f in folds:
        typer.echo(f"fold {f['fold']}: UAR {f['uar']:.1%}, accuracy {f['accuracy']:.1%} on {', '.join(f['test_speakers'])}")
    typer.echo(f"{k}-fold over {metrics['n']} utterances: UAR {metrics['uar']:.1%}, accuracy {metrics['accuracy']:.1%}, "
               f"macro F1 {metrics['macro']['f1']:.1%}")


def _sessions_line(score: dict[str, Any]) -> str:
    return (f"accuracy {score['accuracy']:.1%} (context {score['context_accuracy']:.1%}), UAR {score['uar']:.1%} "
            f"(context {score['context_uar']:.1%}) on {score['n_labelled']} of {score['n_truth_clips']} clips "
            f"({score['n_unlabelled']} not labelled), {score.get('sessions', '?')} sessions, condition {score['condition']}")


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="List and promote models in the registry.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @app.command("train")
    def train_cmd(
        corpus: list[str] = typer.Option(..., "--corpus", help=CORPUS_HELP),
        features: str = typer.Option(None, "--features", help="Model input: encoder (default: a frozen Whisper encoder's "
                                     "embeddings, SER_ENCODER), functionals (statistics over speech frames, the 2026-12-07 "
                                     "recipe), stacked (all four frame families) or mfcc (the seed's CNN)."),
        architecture: str = typer.Option(None, "--architecture", help="linear (the encoder's default), mlp (functionals' "
                                         "default), pooled (stacked's) or seed (mfcc's: the reference CNN)."),
        encoder: str = typer.Option(None, "--encoder", help="The encoder of --features encoder: whisper-base (default), "
                                    "whisper-tiny.en, or a CTranslate2 Whisper directory (SER_ENCODER)."),
        normalization: str = typer.Option(None, "--normalization", help="speaker (default: per-speaker statistics; "
                                          "prediction needs speaker ids) or global."),
        split: str = typer.Option("speaker", "--split", help="speaker (no speaker in two parts) or random (the seed's leaky split, comparison only)."),
        epochs: int = typer.Option(None, "--epochs", min=1, help="Training epochs (default 40; with --validation-share, the most: early stopping usually ends sooner)."),
        validation_share: float = typer.Option(None, "--validation-share", min=0.0, max=0.5, help="Share of the utterances "
                                               "whose speakers are kept to early-stop on (default 0: every non-test speaker trains)."),
        batch_size: int = typer.Option(None, "--batch-size", min=1),
        augment: int = typer.Option(None, "--augment", min=0, help="Corrupted copies per training clip (noise 0-40 dB SNR, "
                                    "reverb, gain, band limits, codecs; default 2; 0: none)."),
        seed: int = typer.Option(None, "--seed", help="Seed for the split, corruption, initialisation and shuffling."),
        kfold: int = typer.Option(0, "--kfold", min=0, help="Cross-validate instead: K models, each speaker held out once, "
                                  "predictions pooled into one evaluation (for choosing models; nothing is stored)."),
        test_speakers: str = typer.Option(None, "--test-speakers", help="Pin the test speakers (comma-separated ids, or 'champion' for the champion's) so figures are comparable."),
        label_merge: str = typer.Option(None, "--label-merge", help="Merge labels before training, e.g. calm=neutral."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        out: Path = typer.Option(None, "--out", help="Also write the evaluation report (metrics.json, report.md, PNGs) here."),
        promote: bool = typer.Option(True, "--promote/--no-promote", help="Promote if it beats the champion's UAR on the same test speakers."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Train on labelled corpora, evaluate on held-out speakers, store in the registry.

        With no options this trains the recommended recipe (docs/MODEL.md)."""
        from ser_pipeline.training.networks import ARCHITECTURES, INPUT_FAMILIES

        if kfold and (split != "speaker" or test_speakers):
            fail("--kfold makes its own speaker folds: drop --split random and --test-speakers", EXIT_USAGE)
        for name, value, allowed in (("--features", features, (*INPUT_FAMILIES, None)), ("--architecture", architecture, (*ARCHITECTURES, None)),
                                     ("--normalization", normalization, ("global", "speaker", None)), ("--split", split, ("speaker", "random"))):
            if value not in allowed:
                fail(f"{name} must be one of {[a for a in allowed if a]}, not {value!r}", EXIT_USAGE)
        corpora = _parse_corpora(corpus)
        from ser_pipeline.errors import SerError
        from ser_pipeline.evaluation.metrics import write_evaluation_report
        from ser_pipeline.labels import parse_merge
        from ser_pipeline.runs.retrain import load_training_set, train_and_register

        settings = settings_from(registry_url=registry, encoder=encoder)
        config = _train_config(architecture=architecture, input_kind=features, normalization=normalization, epochs=epochs,
                               validation_share=validation_share, batch_size=batch_size, corrupted_copies=augment, seed=seed, label_merge=label_merge)
        try:
            parse_merge(config.label_merge)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        try:
            if kfold:
                _cross_validate(settings, load_training_set(settings, corpora, config, progress=not as_json), config, kfold, out, as_json)
                return
            pinned = None
            if test_speakers == "champion":
                from ser_pipeline.training.registry import load_model as _load

                pinned = _load(settings.registry_url, "champion", settings).split_speakers["test"]
            elif test_speakers:
                pinned = [s.strip() for s in test_speakers.split(",") if s.strip()]
            run = train_and_register(settings, corpora, config, split=split, test_speakers=pinned, promote_if_better=promote,
                                     progress=lambda line: typer.echo(line, err=True))
        except (SerError, ValueError) as exc:
            fail(str(exc))
        metrics, split_w, version = run.metrics, run.split, run.registration.version
        details = {"version": version, "architecture": config.architecture, "input": config.input_kind,
                   "normalization": config.normalization, "corrupted copies": config.corrupted_copies, "split": split,
                   "test speakers": ", ".join(split_w.test_speakers) if split == "speaker" else "random utterances",
                   "epochs run": len(run.trained.history.get("loss", []))}
        if out is not None:
            write_evaluation_report(out, metrics, run.held_out.y, run.held_out.proba, title=f"Model {version}", details=details)
        result = {**details, "test_speakers": list(split_w.test_speakers) if split == "speaker" else [],
                  "val_speakers": list(split_w.val_speakers), "train_speakers": list(split_w.train_speakers),
                  "uar": metrics["uar"], "accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                  "promoted": run.registration.promoted, "promotion": run.registration.reason,
                  "skipped_inputs": [list(s) for s in run.training_set.data.skipped]}
        if as_json:
            print_json(result)
        else:
            typer.echo(f"model {version}: test UAR {metrics['uar']:.1%}, accuracy {metrics['accuracy']:.1%} "
                       f"on {metrics['n']} utterances ({details['test speakers']})")
            typer.echo(f"promotion: {'yes' if run.registration.promoted else 'no'} ({run.registration.reason})")
            if run.training_set.data.skipped:
                typer.echo(f"{len(run.training_set.data.skipped)} inputs skipped (see --json)")

    @app.command("evaluate")
    def evaluate_cmd(
        corpus: list[str] = typer.Option(..., "--corpus", help=CORPUS_HELP),
        model: str = typer.Option("champion", "--model", help="A version from `ser models list`, or champion."),
        speakers: str = typer.Option("test", "--speakers", help="test: only the model's held-out test speakers; all: every speaker given."),
        condition: str = typer.Option(None, "--condition", help="Also degrade the clips: comma-separated recording "
                                      "conditions (clean, snr30, snr20, snr10, reverb, telephone, codec, gain, mix, "
                                      "whiteN/pinkN/brownN/babbleN), one result row each."),
        sessions: bool = typer.Option(False, "--sessions", help="Also assemble focus-group sessions from these clips "
                                      "(4 speakers each, pauses, a -54 dBFS noise floor, reverberation, diarizer turns), "
                                      "label them through the nightly path into a fresh DuckDB file and score its labels."),
        context: bool = typer.Option(False, "--context", help="Also measure session-context filtering on pseudo-sessions of these speakers."),
        seed: int = typer.Option(0, "--seed", help="Seed of the conditions and sessions."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        out: Path = typer.Option(None, "--out", help="Write metrics.json, report.md and PNGs here."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics summary as JSON."),
    ) -> None:
        """Evaluate a registry model on corpora (by default on its own test speakers)."""
        import tempfile

        import numpy as np

        if speakers not in ("test", "all"):
            fail("--speakers must be test or all", EXIT_USAGE)
        from ser_pipeline.audio.conditions import parse_conditions

        try:
            conditions = parse_conditions(condition) if condition else []
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        corpora = _parse_corpora(corpus)
        from ser_pipeline.training.dataset import load_labelled
        from ser_pipeline.errors import SerError
        from ser_pipeline.evaluation.metrics import write_evaluation_report
        from ser_pipeline.inference.predict import spec_of
        from ser_pipeline.training.networks import INPUT_FAMILIES
        from ser_pipeline.training.registry import load_model
        from ser_pipeline.runs.retrain import TrainingSet, evaluate_held_out

        settings = settings_from(registry_url=registry)
        rows_by_condition, session_score = [], None
        try:
            trained = load_model(settings.registry_url, model, settings)
            if speakers == "test" and trained.split_kind != "speaker":
                fail(f"model {trained.version} was trained on a random split: its test speakers were also trained on; "
                     "evaluate it with --speakers all on corpora it has not seen")
            spec = spec_of(trained, settings)
            data = load_labelled(corpora, spec, INPUT_FAMILIES[trained.input_kind], settings=settings, progress=not as_json)
            chosen = data.windows.speaker.isin(set(trained.split_speakers.get("test", []))) if speakers == "test" else data.windows.speaker.notna()
            rows = np.flatnonzero(chosen.to_numpy())
            if not len(rows):
                fail(f"none of the model's test speakers {trained.split_speakers.get('test')} are in the given corpora; use --speakers all")
            metrics, held = evaluate_held_out(trained, TrainingSet(data, spec, 0.0), rows)
            y, proba, utterances = held.y, held.proba, held.utterances
            ctx = _context_effect(trained, data, y, proba, utterances, settings.context_stay) if context else None
            if conditions:
                from ser_pipeline.evaluation.robustness import condition_row, evaluate_conditions

                rows_by_condition = [condition_row(r) for r in evaluate_conditions(trained, utterances, spec, conditions, seed, settings=settings)]
            if sessions:
                from ser_pipeline.training.corpora import read_corpus
                from ser_pipeline.evaluation.sessions import evaluate_sessions

                wanted = set(utterances.utterance_id)
                clips = [i for name, url in corpora.items() for i in read_corpus(name, url, settings=settings) if i.utterance_id in wanted]
                with tempfile.TemporaryDirectory(prefix="ser-sessions-") as workdir:
                    session_score = evaluate_sessions(settings, clips, workdir, model=str(trained.version), seed=seed)
                session_score = {k: v for k, v in session_score.items() if k not in ("run", "archive_url", "warehouse_path")}
        except (SerError, ValueError) as exc:
            fail(str(exc))
        details = {"model": trained.version, "speakers": ", ".join(sorted(set(utterances.speaker)))}
        if ctx:
            details["context (forward filter)"] = (
                f"accuracy {ctx['accuracy_before']:.1%} -> {ctx['accuracy_after']:.1%}, UAR {ctx['uar_before']:.1%} -> "
                f"{ctx['uar_after']:.1%} on {ctx['sessions']} pseudo-sessions; transitions {ctx['transition']}")
        if session_score:
            details["sessions (nightly path)"] = _sessions_line(session_score)
        extra_md = None
        if rows_by_condition:
            from ser_pipeline.evaluation.robustness import conditions_markdown

            extra_md = conditions_markdown(rows_by_condition)
        if out is not None:
            write_evaluation_report(out, {**metrics, "context": ctx, "conditions": rows_by_condition, "sessions": session_score}, y, proba,
                         title=f"Model {trained.version}", details=details, extra_markdown=extra_md)
        summary = {**details, "n": metrics["n"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
                   "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                   "largest_gap": {k: g["largest_gap"] for k, g in metrics["groups"].items()}, "context": ctx,
                   "conditions": rows_by_condition, "sessions": session_score}
        if as_json:
            print_json(summary)
            return
        typer.echo(f"model {trained.version} on {metrics['n']} utterances: UAR {metrics['uar']:.1%}, "
                   f"accuracy {metrics['accuracy']:.1%}, macro F1 {metrics['macro']['f1']:.1%}, ECE {metrics['ece']:.3f}")
        for name, group in metrics["groups"].items():
            gap = group["largest_gap"]["uar"]
            typer.echo(f"  by {name}: UAR gap {gap['gap']:.1%} ({gap['best']} best, {gap['worst']} worst)")
        if ctx:
            typer.echo(f"  context: {details['context (forward filter)']}")
        for r in rows_by_condition:
            gap = "" if r["gender_gap"] is None else f", gender gap {r['gender_gap']:.1%}"
            typer.echo(f"  {r['condition']:<10} UAR {r['uar']:.1%}, accuracy {r['accuracy']:.1%}, ECE {r['ece']:.3f}{gap}")
        if session_score:
            typer.echo(f"  sessions: {details['sessions (nightly path)']}")

    @app.command("predict")
    def predict_cmd(
        files: list[str] = typer.Argument(..., metavar="FILE...", help="Audio files or URLs, one utterance each."),
        speaker: str = typer.Option(None, "--speaker", help="The participant who speaks in all FILES (for per-speaker normalisation)."),
        model: str = typer.Option("champion", "--model", help="A version from `ser models list`, or champion."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON: the top label and every probability per file."),
    ) -> None:
        """Predict the emotion of each audio file."""
        import numpy as np

        from ser_pipeline.audio.decode import load_audio
        from ser_pipeline.errors import AudioDecodeError, SerError
        from ser_pipeline.features.spec import clip_windows
        from ser_pipeline.features.frames import extract_features
        from ser_pipeline.inference.predict import predict_proba, spec_of
        from ser_pipeline.training.registry import load_model

        settings = settings_from(registry_url=registry)
        try:
            trained = load_model(settings.registry_url, model, settings)
            spec = spec_of(trained, settings)  # an encoder model refuses another SER_ENCODER here
        except SerError as exc:
            fail(str(exc))
        norm = trained.normalizer
        if norm.mode == "speaker" and (speaker is None or len(files) < norm.min_speaker_utterances):
            typer.secho(f"warning: model {trained.version} normalises per speaker; with "
                        f"{'no --speaker' if speaker is None else f'fewer than {norm.min_speaker_utterances} files'} "
                        "it falls back to the training statistics and is less accurate", err=True, fg=typer.colors.YELLOW)
        windows, owners, failures = [], [], []
        for path in files:
            try:
                clips = clip_windows(load_audio(path, spec.sample_rate, settings=settings).samples, spec)
            except AudioDecodeError as exc:
                failures.append({"file": path, "error": exc.reason})
                continue
            windows.extend(clips)
            owners.extend([path] * len(clips))
        results = []
        if windows:
            try:
                proba = predict_proba(trained, extract_features(windows, spec), [speaker] * len(owners), spec, utterance_ids=owners)
            except SerError as exc:
                fail(str(exc))
            for path, p in zip(dict.fromkeys(owners), proba):
                top = int(np.argmax(p))
                results.append({"file": path, "label": trained.labels.labels[top], "confidence": float(p[top]),
                                "probabilities": {l: float(v) for l, v in zip(trained.labels.labels, p)}})
        if as_json:
            print_json({"model": trained.version, "speaker": speaker, "predictions": results, "failures": failures})
        else:
            labels = trained.labels.labels
            width = max([len(r["file"]) for r in results] + [4])
            typer.echo(f"{'file':<{width}}  {'label':<9} {'conf':>5}  " + " ".join(f"{l[:7]:>7}" for l in labels))
            for r in results:
                typer.echo(f"{r['file']:<{width}}  {r['label']:<9} {r['confidence']:5.2f}  "
                           + " ".join(f"{r['probabilities'][l]:7.3f}" for l in labels))
            for f in failures:
                typer.secho(f"{f['file']}: {f['error']}", err=True, fg=typer.colors.RED)
        if failures:
            raise typer.Exit(EXIT_FAILURE)

    @models_app.command("list")
    def models_list(
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """List the registry's models, oldest first; * marks the champion."""
        from dataclasses import asdict

        from ser_pipeline.training.registry import list_models

        settings = settings_from(registry_url=registry)
        infos = list_models(settings.registry_url, settings)
        if as_json:
            print_json([asdict(i) for i in infos])
            return
        if not infos:
            typer.echo(f"no models in {settings.registry_url}")
            return
        for i in infos:
            uar = f"{i.uar:.1%}" if i.uar is not None else "-"
            typer.echo(f"{'*' if i.champion else ' '} {i.version}  {i.architecture:<6} {i.input_kind:<7} UAR {uar:>6}  "
                       f"test {','.join(i.test_speakers) or '-'}")

    @models_app.command("promote")
    def models_promote(
        version: str = typer.Argument(..., help="The version to make champion."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
    ) -> None:
        """Make VERSION the champion: the model the nightly run labels with and the one the warehouse's views report."""
        from ser_pipeline.errors import SerError
        from ser_pipeline.runs.retrain import promote

        settings = settings_from(registry_url=registry)
        try:
            promote(settings, version)
        except SerError as exc:
            fail(str(exc))
        typer.echo(f"champion: {version} (registry and warehouse {settings.warehouse_path})")
