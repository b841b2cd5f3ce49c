"""``ser manifest init``: a first manifest.csv and participants.csv for a folder of recordings."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import EXIT_FAILURE, EXIT_USAGE, fail, print_json, settings_from

manifest_app = typer.Typer(help="Survey manifests (docs/WAREHOUSE.md, Manifest schema).", no_args_is_help=True)


@manifest_app.command("init")
def manifest_init(
    url: str = typer.Argument(..., help="The survey folder holding the recordings (path or fsspec URL, e.g. s3://bucket/archive/SV01); its name becomes survey_id."),
    utc_offset: str = typer.Option(
        "local", "--utc-offset",
        help="Time zone of the written recorded_at values and of BWF origination times: an offset (+01:00, -05:30, Z), "
             "a zone name (Europe/Berlin) or 'local' = this machine's time zone (the default; pass Z for UTC).",
    ),
    per_recording: int = typer.Option(1, "--participants-per-recording", min=1, help="Participants per session, named <session_id>-p1 … -pN."),
    participant: Optional[list[str]] = typer.Option(None, "--participant", help="A participant id every session lists (instead of one per recording); repeatable."),
    session_prefix: str = typer.Option("", "--session-prefix", help="Put before every session id (ids must be unique across the archive)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print both files instead of writing them."),
    force: bool = typer.Option(False, "--force", help="Replace an existing manifest.csv / participants.csv (or shadow a .json)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary, with both files' text."),
) -> None:
    """Write manifest.csv and participants.csv skeletons from the recordings in URL, to be edited.

    One session per recording directly in the folder (wav, flac, ogg, mp3, aiff, opus…); session_id from the file name.

    recorded_at: a WAV's BWF origination date/time, else the file's modification time (check those).

    One participant per recording unless told otherwise; moderator, market, location, metadata left blank.

    Refuses to replace an existing manifest or participants file without --force. Exit 1: no recordings in the folder, or it already has a manifest; 2: bad options.
    """
    from ser_pipeline.errors import ManifestError
    from ser_pipeline.archive.skeleton import manifest_skeleton, parse_utc_offset, skeleton_text, write_manifest_skeleton

    if participant and per_recording != 1:
        fail("give either --participant or --participants-per-recording, not both", EXIT_USAGE)
    try:
        tz = parse_utc_offset(utc_offset)
    except ValueError as exc:
        fail(f"--utc-offset: {exc}", EXIT_USAGE)
    settings = settings_from()
    try:
        skeleton = manifest_skeleton(url, tz=tz, participants_per_recording=per_recording, participant_ids=participant or None,
                                     session_prefix=session_prefix, settings=settings)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    except ManifestError as exc:
        fail(str(exc), EXIT_FAILURE)
    written = False
    if not dry_run:
        try:
            write_manifest_skeleton(skeleton, force=force, settings=settings)
        except FileExistsError as exc:
            fail(f"{exc} (use --force to replace, or --dry-run to see the skeleton)", EXIT_FAILURE)
        written = True
    sources = {s: skeleton.recorded_at_sources.count(s) for s in ("bext", "mtime") if s in skeleton.recorded_at_sources}
    if as_json:
        print_json({
            "survey_url": skeleton.survey_url, "survey_id": skeleton.survey_id, "written": written,
            "manifest_url": skeleton.manifest_url, "participants_url": skeleton.participants_url,
            "sessions": len(skeleton.manifest), "participants": len(skeleton.participants),
            "recorded_at_sources": sources, "skipped": list(skeleton.skipped),
            "manifest_csv": skeleton.manifest_csv(), "participants_csv": skeleton.participants_csv(),
        })  # fmt: skip
        return
    if dry_run:
        typer.echo(skeleton_text(skeleton), nl=False)
    else:
        typer.echo(f"wrote {skeleton.manifest_url} ({len(skeleton.manifest)} sessions) and {skeleton.participants_url} "
                   f"({len(skeleton.participants)} participants)")
    notes = []
    if sources.get("mtime"):
        notes.append(f"{sources['mtime']} recorded_at from file modification times: check them")
    notes += [f"skipped {s}" for s in skeleton.skipped]
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
