"""``ser label`` (the nightly labeling run, without Prefect) and ``ser segment`` (utterance spans)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import EXIT_FAILURE, fail, print_json, settings_from


def register(app: typer.Typer) -> None:
    @app.command("label")
    def label(
        archive_url: Optional[str] = typer.Option(None, help="Archive root (default SER_ARCHIVE_URL)."),
        warehouse: Optional[str] = typer.Option(None, help="DuckDB file (default SER_WAREHOUSE_PATH)."),
        model: str = typer.Option("champion", help='Registry version to label with, or "champion".'),
        batch_size: Optional[int] = typer.Option(None, min=1, help="Utterances per warehouse transaction (default SER_BATCH_SIZE)."),
        report: Optional[str] = typer.Option(None, help="Also write the markdown report to this file."),
        transcribe: Optional[bool] = typer.Option(None, "--transcribe/--no-transcribe", help="Write down what each utterance says, redacted, beside its label (default SER_TRANSCRIBE, on); off: no text anywhere."),
        as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    ) -> None:
        """Label new utterances of the archive and load the warehouse (what the nightly flow runs).

        Exit code 1 when a validation suite failed or the run stopped on an error.
        """
        from tqdm import tqdm

        from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
        from ser_pipeline.runs.steps import step_name

        bar = tqdm(unit="step", leave=False, desc="label")

        def step(fn):
            name = step_name(fn)

            def run(*args, **kwargs):
                bar.set_description(name)
                result = fn(*args, **kwargs)
                bar.update(1)
                return result

            return run

        try:
            with bar:
                result = run_nightly(archive_url, warehouse, model, batch_size, settings=settings_from(transcribe=transcribe), step=step)
        except Exception as exc:  # noqa: BLE001 - the CLI reports any failure as exit 1
            fail(f"{type(exc).__name__}: {exc}")
        markdown = nightly_markdown(result)
        if report:
            from pathlib import Path

            Path(report).write_text(markdown)
        if as_json:
            print_json(result.summary())
        else:
            typer.echo(markdown)
        if result.failed:
            raise typer.Exit(EXIT_FAILURE)

    @app.command("segment")
    def segment(
        audio: str = typer.Argument(..., help="A recording (path or fsspec URL)."),
        min_s: float = typer.Option(0.5, help="Shortest utterance kept (seconds)."),
        max_s: float = typer.Option(8.0, help="Longest utterance; longer ones are split at their quietest point."),
        as_json: bool = typer.Option(False, "--json", help="Print the spans as JSON."),
    ) -> None:
        """Find utterances in a recording by energy voice-activity detection (streamed)."""
        from ser_pipeline.errors import AudioDecodeError
        from ser_pipeline.archive.segmentation import VadConfig, segment_file

        if min_s >= max_s:
            fail("--min-s must be shorter than --max-s", code=2)
        try:
            spans = segment_file(audio, config=VadConfig(min_s=min_s, max_s=max_s), settings=settings_from())
        except AudioDecodeError as exc:
            fail(str(exc))
        if as_json:
            print_json([{"start_s": a, "end_s": b} for a, b in spans])
        else:
            for a, b in spans:
                typer.echo(f"{a:9.3f} {b:9.3f}")
            typer.echo(f"{len(spans)} utterances", err=True)
