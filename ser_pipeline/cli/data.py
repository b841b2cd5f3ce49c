"""``ser synth …`` (generated corpora and archives) and ``ser corpus list`` (what a corpus holds)."""

from __future__ import annotations

from datetime import date
from typing import Optional

import typer

from ._common import EXIT_USAGE, fail, print_json, settings_from

synth_app = typer.Typer(help="Generate labelled emotional speech and focus-group archives (deterministic from --seed).", no_args_is_help=True)
corpus_app = typer.Typer(help="Inspect training corpora (RAVDESS, CREMA-D, SAVEE, TESS, synth).", no_args_is_help=True)


def _bar(unit: str):
    """A tqdm bar and a ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(unit=unit, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


@synth_app.command("corpus")
def synth_corpus(
    url: str = typer.Argument(..., help="Where to write the clips (path or fsspec URL, e.g. s3://bucket/corpus)."),
    speakers: int = typer.Option(8, min=1, help="Number of speakers (odd male, even female)."),
    per_emotion: int = typer.Option(6, min=1, help="Clips per speaker and emotion."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes identical files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Write a labelled training corpus of SYN_<speaker>_<gender>_<emotion>_<nn>.wav clips."""
    from ser_pipeline.synthetic import generate_corpus

    bar, update = _bar("clip")
    with bar:
        frame = generate_corpus(url, n_speakers=speakers, utterances_per_emotion=per_emotion, seed=seed, progress=update)
    summary = {"url": url, "clips": len(frame), "speakers": int(frame["speaker"].nunique()), "emotions": sorted(frame["emotion"].unique())}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"wrote {summary['clips']} clips from {summary['speakers']} speakers to {url}")


@synth_app.command("archive")
def synth_archive(
    url: str = typer.Argument(..., help="Archive root to write (path or fsspec URL)."),
    surveys: int = typer.Option(2, min=1),
    sessions: int = typer.Option(3, min=1, help="Sessions per survey."),
    participants: int = typer.Option(4, min=1, help="Participants per session."),
    utterances: int = typer.Option(12, min=1, help="Turns per session."),
    seed: int = typer.Option(0),
    sidecar: str = typer.Option("csv", help="Turn sidecars: csv, rttm, mixed or none."),
    start: Optional[str] = typer.Option(None, help="First recording week, YYYY-MM-DD (default 2026-01-05)."),
    fmt: str = typer.Option("wav", "--format", help="Recording format: wav, flac or aiff."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Write a focus-group archive (manifest.csv, participants.csv, recordings, sidecars, _truth.csv)."""
    from ser_pipeline.synthetic import generate_archive

    try:
        first = date.fromisoformat(start) if start else date(2026, 1, 5)
    except ValueError:
        fail(f"--start {start!r} is not a YYYY-MM-DD date", EXIT_USAGE)
    bar, update = _bar("session")
    try:
        with bar:
            truth = generate_archive(
                url, n_surveys=surveys, sessions_per_survey=sessions, participants_per_session=participants,
                utterances_per_session=utterances, seed=seed, sidecar=None if sidecar == "none" else sidecar,
                start=first, fmt=fmt, progress=update,
            )  # fmt: skip
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    summary = {
        "url": url,
        "surveys": sorted(truth["survey_id"].unique()),
        "sessions": int(truth["session_id"].nunique()),
        "turns": len(truth),
        "emotions": {k: int(v) for k, v in truth["emotion"].value_counts().sort_index().items()},
    }
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"wrote {summary['sessions']} sessions ({summary['turns']} turns) in {len(summary['surveys'])} surveys to {url}")


@corpus_app.command("list")
def corpus_list(
    url: str = typer.Argument(..., help="Corpus folder (path or fsspec URL)."),
    corpus: str = typer.Option("auto", help="ravdess, crema_d, savee, tess, synth, or auto to detect."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Count a corpus's clips per emotion and speaker; list files that do not follow its naming (exit 1 if any)."""
    from ser_pipeline.training.corpora import detect_corpus, items_frame, read_corpus

    settings = settings_from()
    skipped: list = []
    try:
        name = detect_corpus(url, settings) if corpus == "auto" else corpus
        frame = items_frame(read_corpus(name, url, skipped, settings))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE if "unknown corpus" in str(exc) else 1)
    summary = {
        "corpus": name,
        "clips": len(frame),
        "speakers": int(frame["speaker"].nunique()),
        "emotions": {k: int(v) for k, v in frame["emotion"].value_counts().sort_index().items()},
        "genders": {str(k): int(v) for k, v in frame["gender"].value_counts(dropna=False).items()},
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
    }
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"{name}: {summary['clips']} clips, {summary['speakers']} speakers")
        for emotion, count in summary["emotions"].items():
            typer.echo(f"  {emotion:<10} {count}")
        for s in skipped:
            typer.echo(f"  skipped {s.path}: {s.reason}")
    if skipped:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
    app.add_typer(corpus_app, name="corpus")
