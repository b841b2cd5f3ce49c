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


def _evaluate_rows(trained: Any, data: Any, rows: Any, spec: Any) -> tuple[dict, Any, Any, Any]:
    """Utterance-level metrics on the windows at ``rows``: (metrics, y, proba, utterances)."""
    from ..crossval import evaluation_groups, predict_held_out
    from ..evaluation import evaluate

    held = predict_held_out(trained, data, rows, spec)
    return evaluate(held.y, held.proba, trained.labels.labels, evaluation_groups(held.utterances)), held.y, held.proba, held.utterances


def _context_effect(trained: Any, data: Any, y: Any, proba: Any, utterances: Any, seed: int = 0) -> dict[str, Any]:
    """Accuracy/UAR before and after forward filtering on pseudo-sessions of the evaluated speakers."""
    import numpy as np
    from sklearn.metrics import recall_score

    from ..context import assemble_sessions, filter_sessions, fit_transitions, sticky_transitions

    n_classes = len(trained.labels)
    train_speakers = set(trained.split_speakers.get("train", []))
    train_utts = data.utterances[data.utterances.speaker.isin(train_speakers)]
    if len(train_utts):
        order, sessions = assemble_sessions(train_utts.emotion, train_utts.speaker, seed=seed + 1)
        codes = np.asarray(trained.labels.indices(train_utts.emotion.iloc[order]))
        sequences = [codes[sessions == s] for s in dict.fromkeys(sessions)]
        transition, source = fit_transitions(sequences, n_classes), "fitted on pseudo-sessions of the training speakers"
    else:
        transition, source = sticky_transitions(n_classes, 0.8), "sticky default (stay 0.8)"
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


def _augmented_features(data: Any, train_rows: Any, copies: int, spec: Any, seed: int) -> tuple[dict, list, list]:
    """Features of ``copies`` augmented versions of each training utterance's audio."""
    import numpy as np

    from ..audio import load_audio
    from ..augment import augment_training_split
    from ..features import clip_windows, extract_features

    train_utts = data.windows.iloc[train_rows].drop_duplicates("utterance_id").reset_index(drop=True)
    clips = [load_audio(path, spec.sample_rate).samples for path in train_utts.path]
    new, source = augment_training_split(clips, np.arange(len(clips)), spec.sample_rate, copies, seed)
    windows, emotions, speakers = [], [], []
    for clip, src in zip(new, source):
        for window in clip_windows(clip, spec):
            windows.append(window)
            emotions.append(train_utts.emotion.iloc[src])
            speakers.append(train_utts.speaker.iloc[src])
    return extract_features(windows, spec), emotions, speakers


def _cross_validate(data: Any, labels: Any, spec: Any, config: Any, k: int, seed: int, out: Path | None, as_json: bool,
                    augment: Any) -> None:
    """``ser train --kfold K``: pooled held-out metrics and one line per fold."""
    from ..crossval import cross_validate
    from ..evaluation import write_report

    cv = cross_validate(data, labels, spec, config, k=k, seed=seed, augment=augment,
                        progress=lambda line: typer.echo(line, err=True))
    metrics = cv.metrics
    folds = [{"fold": f.index + 1, "test_speakers": list(f.test_speakers), "val_speakers": list(f.val_speakers),
              "uar": f.uar, "accuracy": f.accuracy, "epochs run": f.epochs} for f in cv.folds]
    details = {"architecture": config.architecture, "input": config.input_kind, "normalization": config.normalization,
               "split": f"{k}-fold over speakers, held-out predictions pooled",
               "fold UARs": ", ".join(f"{f['uar']:.1%} ({'+'.join(f['test_speakers'])})" for f in folds)}
    if out is not None:
        write_report(out, {**metrics, "folds": folds}, cv.held_out.y, cv.held_out.proba, title=f"{k}-fold cross-validation", details=details)
    if as_json:
        print_json({**details, "folds": folds, "n": metrics["n"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
                    "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                    "largest_gap": {g: v["largest_gap"] for g, v in metrics["groups"].items()},
                    "skipped_inputs": [list(s) for s in data.skipped]})
        return
    for f in folds:
        typer.echo(f"fold {f['fold']}: UAR {f['uar']:.1%}, accuracy {f['accuracy']:.1%} on {', '.join(f['test_speakers'])}")
    typer.echo(f"{k}-fold over {metrics['n']} utterances: UAR {metrics['uar']:.1%}, accuracy {metrics['accuracy']:.1%}, "
               f"macro F1 {metrics['macro']['f1']:.1%}")


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="List and promote models in the registry.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @app.command("train")
    def train_cmd(
        corpus: list[str] = typer.Option(..., "--corpus", help=CORPUS_HELP),
        features: str = typer.Option(None, "--features", help="Model input: mfcc (the seed's) or stacked (all four families). Default: SER_MODEL_INPUT."),
        architecture: str = typer.Option("seed", "--architecture", help="seed (the reference CNN) or pooled (time statistics + dense; see docs/MODEL.md)."),
        normalization: str = typer.Option("global", "--normalization", help="global, or speaker (per-speaker statistics; prediction needs speaker ids)."),
        split: str = typer.Option("speaker", "--split", help="speaker (no speaker in two parts) or random (the seed's leaky split, comparison only)."),
        epochs: int = typer.Option(100, "--epochs", min=1, help="Most epochs; early stopping usually ends sooner."),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        augment: int = typer.Option(0, "--augment", min=0, help="Augmented copies per training utterance (noise, pitch, stretch)."),
        seed: int = typer.Option(0, "--seed", help="Seed for the split, initialisation and shuffling."),
        kfold: int = typer.Option(0, "--kfold", min=0, help="Cross-validate instead: K models, each speaker held out once, "
                                  "predictions pooled into one evaluation (for choosing models; nothing is stored)."),
        test_speakers: str = typer.Option(None, "--test-speakers", help="Pin the test speakers (comma-separated ids, or 'champion' for the champion's) so figures are comparable."),
        label_merge: str = typer.Option(None, "--label-merge", help="Merge labels before training, e.g. calm=neutral."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        out: Path = typer.Option(None, "--out", help="Also write the evaluation report (metrics.json, report.md, PNGs) here."),
        promote: bool = typer.Option(True, "--promote/--no-promote", help="Promote if it beats the champion's UAR on the same test speakers."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Train on labelled corpora, evaluate on held-out speakers, store in the registry."""
        if kfold and (split != "speaker" or test_speakers):
            fail("--kfold makes its own speaker folds: drop --split random and --test-speakers", EXIT_USAGE)
        for name, value, allowed in (("--features", features, ("mfcc", "stacked", None)), ("--architecture", architecture, ("seed", "pooled")),
                                     ("--normalization", normalization, ("global", "speaker")), ("--split", split, ("speaker", "random"))):
            if value not in allowed:
                fail(f"{name} must be one of {[a for a in allowed if a]}, not {value!r}", EXIT_USAGE)
        corpora = _parse_corpora(corpus)
        from ..dataset import expand_split, load_labelled
        from ..errors import SerError
        from ..evaluation import write_report
        from ..features import FeatureSpec
        from ..labels import LabelSet, parse_merge
        from ..model import FAMILIES
        from ..registry import promote_if_better, save_model
        from ..splits import random_split, speaker_split
        from ..training import TrainConfig, train

        settings = settings_from(registry_url=registry, model_input=features, label_merge=label_merge)
        try:
            labels = LabelSet.from_merge(parse_merge(settings.label_merge))
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        spec = FeatureSpec.from_settings(settings)
        input_kind = settings.model_input
        try:
            data = load_labelled(corpora, spec, FAMILIES[input_kind], settings=settings, progress=not as_json)
            if data.windows.empty:
                fail("no usable labelled audio in the given corpora")
            utterances = data.utterances
            config = TrainConfig(architecture=architecture, input_kind=input_kind, normalization=normalization,
                                 epochs=epochs, batch_size=batch_size, seed=seed)
            if kfold:
                _cross_validate(data, labels, spec, config, kfold, seed, out, as_json,
                                (lambda rows: _augmented_features(data, rows, augment, spec, seed)) if augment else None)
                return
            if split == "random":
                split_u = random_split(utterances, seed=seed)
            else:
                pinned = None
                if test_speakers == "champion":
                    from ..registry import load_model as _load

                    pinned = _load(settings.registry_url, "champion", settings).split_speakers["test"]
                elif test_speakers:
                    pinned = [s.strip() for s in test_speakers.split(",") if s.strip()]
                split_u = speaker_split(utterances, seed=seed, test_speakers=pinned)
            split_w = expand_split(split_u, utterances, data.windows)
            extra = _augmented_features(data, split_w.train, augment, spec, seed) if augment else None
            trained = train(data.features, data.windows.emotion, data.windows.speaker, split_w, labels, spec.hash, config,
                            utterance_ids=list(data.windows.utterance_id), augmented=extra, feature_spec=spec.to_dict())
            metrics, y, proba, _ = _evaluate_rows(trained, data, split_w.test, spec)
            version = save_model(trained, metrics, registry_url=settings.registry_url, settings=settings)
            promoted, reason = promote_if_better(version, settings.registry_url, settings) if promote else (False, "--no-promote")
        except (SerError, ValueError) as exc:
            fail(str(exc))
        details = {"version": version, "architecture": architecture, "input": input_kind, "normalization": normalization,
                   "split": split, "test speakers": ", ".join(split_w.test_speakers) if split == "speaker" else "random utterances",
                   "epochs run": len(trained.history.get("loss", []))}
        if out is not None:
            write_report(out, metrics, y, proba, title=f"Model {version}", details=details)
        result = {**details, "test_speakers": list(split_w.test_speakers) if split == "speaker" else [],
                  "val_speakers": list(split_w.val_speakers), "train_speakers": list(split_w.train_speakers),
                  "uar": metrics["uar"], "accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                  "promoted": promoted, "promotion": reason, "skipped_inputs": [list(s) for s in data.skipped]}
        if as_json:
            print_json(result)
        else:
            typer.echo(f"model {version}: test UAR {metrics['uar']:.1%}, accuracy {metrics['accuracy']:.1%} "
                       f"on {metrics['n']} utterances ({details['test speakers']})")
            typer.echo(f"promotion: {'yes' if promoted else 'no'} ({reason})")
            if data.skipped:
                typer.echo(f"{len(data.skipped)} inputs skipped (see --json)")

    @app.command("evaluate")
    def evaluate_cmd(
        corpus: list[str] = typer.Option(..., "--corpus", help=CORPUS_HELP),
        model: str = typer.Option("champion", "--model", help="A version from `ser models list`, or champion."),
        speakers: str = typer.Option("test", "--speakers", help="test: only the model's held-out test speakers; all: every speaker given."),
        context: bool = typer.Option(False, "--context", help="Also measure session-context filtering on pseudo-sessions of these speakers."),
        registry: str = typer.Option(None, "--registry", help="Registry URL (default SER_REGISTRY_URL)."),
        out: Path = typer.Option(None, "--out", help="Write metrics.json, report.md and PNGs here."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics summary as JSON."),
    ) -> None:
        """Evaluate a registry model on corpora (by default on its own test speakers)."""
        import numpy as np

        if speakers not in ("test", "all"):
            fail("--speakers must be test or all", EXIT_USAGE)
        corpora = _parse_corpora(corpus)
        from ..dataset import load_labelled
        from ..errors import SerError
        from ..evaluation import write_report
        from ..features import FeatureSpec
        from ..model import FAMILIES
        from ..registry import load_model

        settings = settings_from(registry_url=registry)
        try:
            trained = load_model(settings.registry_url, model, settings)
            if speakers == "test" and trained.split_kind != "speaker":
                fail(f"model {trained.version} was trained on a random split: its test speakers were also trained on; "
                     "evaluate it with --speakers all on corpora it has not seen")
            spec = FeatureSpec.from_dict(trained.feature_spec) if trained.feature_spec else FeatureSpec.from_settings(settings)
            data = load_labelled(corpora, spec, FAMILIES[trained.input_kind], settings=settings, progress=not as_json)
            chosen = data.windows.speaker.isin(set(trained.split_speakers.get("test", []))) if speakers == "test" else data.windows.speaker.notna()
            rows = np.flatnonzero(chosen.to_numpy())
            if not len(rows):
                fail(f"none of the model's test speakers {trained.split_speakers.get('test')} are in the given corpora; use --speakers all")
            metrics, y, proba, utterances = _evaluate_rows(trained, data, rows, spec)
            ctx = _context_effect(trained, data, y, proba, utterances) if context else None
        except (SerError, ValueError) as exc:
            fail(str(exc))
        details = {"model": trained.version, "speakers": ", ".join(sorted(set(utterances.speaker)))}
        if ctx:
            details["context (forward filter)"] = (
                f"accuracy {ctx['accuracy_before']:.1%} -> {ctx['accuracy_after']:.1%}, UAR {ctx['uar_before']:.1%} -> "
                f"{ctx['uar_after']:.1%} on {ctx['sessions']} pseudo-sessions; transitions {ctx['transition']}")
        if out is not None:
            write_report(out, {**metrics, "context": ctx}, y, proba, title=f"Model {trained.version}", details=details)
        summary = {**details, "n": metrics["n"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
                   "macro_f1": metrics["macro"]["f1"], "ece": metrics["ece"],
                   "largest_gap": {k: g["largest_gap"] for k, g in metrics["groups"].items()}, "context": ctx}
        if as_json:
            print_json(summary)
        else:
            typer.echo(f"model {trained.version} on {metrics['n']} utterances: UAR {metrics['uar']:.1%}, "
                       f"accuracy {metrics['accuracy']:.1%}, macro F1 {metrics['macro']['f1']:.1%}, ECE {metrics['ece']:.3f}")
            for name, group in metrics["groups"].items():
                gap = group["largest_gap"]["uar"]
                typer.echo(f"  by {name}: UAR gap {gap['gap']:.1%} ({gap['best']} best, {gap['worst']} worst)")
            if ctx:
                typer.echo(f"  context: {details['context (forward filter)']}")

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

        from ..audio import load_audio
        from ..errors import AudioDecodeError, SerError
        from ..features import FeatureSpec, clip_windows, extract_features
        from ..inference import predict_proba
        from ..registry import load_model

        settings = settings_from(registry_url=registry)
        try:
            trained = load_model(settings.registry_url, model, settings)
        except SerError as exc:
            fail(str(exc))
        spec = FeatureSpec.from_dict(trained.feature_spec) if trained.feature_spec else FeatureSpec.from_settings(settings)
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

        from ..registry import list_models

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
        """Make VERSION the champion used by prediction."""
        from ..registry import ModelNotFound, promote

        settings = settings_from(registry_url=registry)
        try:
            promote(version, settings.registry_url, settings)
        except ModelNotFound as exc:
            fail(str(exc))
        typer.echo(f"champion: {version}")
