"""``ser features SOURCE_URL --out URL``: featurise a corpus or a folder of audio into the feature store."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import EXIT_FAILURE, EXIT_USAGE, fail, print_json, settings_from

CORPUS_CHOICES = ("auto", "ravdess", "tess", "crema-d", "savee", "synth", "plain")


def _items(source_url: str, corpus: str, settings) -> tuple[list, str, list]:
    """The inputs under ``source_url``, the corpus they were read as, and files left out as
    ``(path, reason)`` (names that do not follow the corpus's convention)."""
    from ser_pipeline import storage

    if corpus == "auto":
        from ser_pipeline.training.corpora import detect_corpus

        try:
            corpus = detect_corpus(source_url, settings)
        except ValueError as exc:
            typer.secho(f"note: reading as plain audio, no corpus recognised ({exc})", err=True)
            corpus = "plain"
    if corpus == "plain":
        from ser_pipeline.features.extraction import relative_path

        urls = [
            url for url in storage.list_files(source_url, storage.AUDIO_EXTENSIONS, settings)
            if not any(part.startswith(("_", ".")) for part in relative_path(url, source_url).split("/"))
        ]
        return urls, corpus, []
    from ser_pipeline.training.corpora import read_corpus

    skipped: list = []
    items = list(read_corpus(corpus, source_url, skipped, settings))
    return items, items[0].corpus if items else corpus, [(s.path, s.reason) for s in skipped]


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features(
        source_url: str = typer.Argument(..., help="Folder (path, file:// or s3:// URL) holding a corpus or plain audio files."),
        out: Optional[str] = typer.Option(None, "--out", help="Feature store URL (default: SER_FEATURE_STORE_URL)."),
        corpus: str = typer.Option("auto", "--corpus", help=f"How to read SOURCE_URL: {', '.join(CORPUS_CHOICES)}. "
                                   "'plain' takes every audio file with no labels; 'auto' recognises the corpus by its file names."),
        workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Worker processes (default: SER_WORKERS; 0 = all cores)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    ) -> None:
        """Extract MFCC, chroma, mel and contrast features of every file into the Parquet store.

        Already-stored audio (same content hash and feature spec) is skipped, so re-running is
        safe. Files that cannot be decoded are listed at the end and the command exits with 1;
        every other file is stored.
        """
        if corpus not in CORPUS_CHOICES:
            fail(f"--corpus must be one of {', '.join(CORPUS_CHOICES)}, not {corpus!r}", EXIT_USAGE)
        from ser_pipeline import storage
        from ser_pipeline.features.extraction import Failure, featurise
        from ser_pipeline.features.spec import FeatureSpec

        settings = settings_from(feature_store_url=out, workers=workers)
        fs, root = storage.filesystem(source_url, settings)
        if not fs.exists(root):
            fail(f"{source_url}: no such folder", EXIT_USAGE)
        items, used, unread = _items(source_url, corpus, settings)
        if not items:
            fail(f"{source_url}: no audio files found (read as {used})", EXIT_USAGE)
        spec = FeatureSpec.from_settings(settings)
        summary = featurise(items, settings.feature_store_url, spec, workers=settings.workers,
                            progress=progress and not as_json, source_url=source_url, settings=settings)
        summary.files_seen += len(unread)
        summary.failures.extend(Failure(path, reason) for path, reason in unread)
        if as_json:
            print_json({"corpus": used, "store": settings.feature_store_url, "spec_hash": spec.hash, **summary.as_dict()})
        else:
            typer.echo(
                f"{summary.files_seen} files read as {used}: {summary.files_written} stored ({summary.rows_written} windows), "
                f"{summary.skipped} already stored, {len(summary.failures)} failed "
                f"[{summary.elapsed_s:.1f} s, spec {spec.hash}, store {settings.feature_store_url}]"
            )
            for failure in summary.failures:
                typer.secho(f"failed: {failure.path}: {failure.reason}", err=True, fg=typer.colors.RED)
        if summary.failures:
            raise typer.Exit(EXIT_FAILURE)
