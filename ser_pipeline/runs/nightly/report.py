"""The nightly run's report as markdown (the flow publishes it as a Prefect artifact; ``ser
label`` prints it)."""

from __future__ import annotations

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.runs.nightly.records import NightlyReport


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def nightly_markdown(report: NightlyReport) -> str:
    """The run's report: counts, emotion mix, validations, quarantined inputs, time per stage."""
    s = report.summary()
    lines = [
        f"# Nightly labeling: {s['status'].upper()}",
        "",
        f"Run `{report.run_id}`, model `{report.model_version}`.",
        "",
        "| what | count |",
        "|---|---:|",
        *(f"| {k.replace('_', ' ')} | {s[k]} |" for k in ("surveys", "sessions", "recordings_seen", "recordings_skipped",
                                                          "utterances_pending", "utterances_loaded", "predictions_loaded",
                                                          "batches", "batches_failed", "quarantined", "warnings",
                                                          "abandoned_runs", "temp_files_removed")),
        "",
        "## Emotion mix (new predictions)",
        "",
    ]
    total = sum(report.emotion_counts.values())
    if total:
        lines += ["| emotion | utterances | share |", "|---|---:|---:|"]
        lines += [f"| {e} | {report.emotion_counts.get(e, 0)} | {report.emotion_counts.get(e, 0) / total:.1%} |" for e in EMOTIONS
                  if report.emotion_counts.get(e, 0)]
    else:
        lines.append("No new predictions.")
    lines += ["", "## Transcripts", ""]
    if not report.transcribe:
        lines.append("Transcription is off (`SER_TRANSCRIBE=false`): no text was written.")
    else:
        empty = sum(report.transcripts_empty.values())
        lines.append(f"{report.transcripts_loaded} new transcripts, {report.transcripts_loaded - empty} with words, "
                     f"{empty} stored empty" + (":" if empty else "."))
        if empty:
            lines += ["", "| why empty | utterances |", "|---|---:|"]
            lines += [f"| {_md_escape(reason)} | {n} |" for reason, n in report.transcripts_empty.most_common()]
    failed = [(t, r) for t, r in report.validations if not r.success]
    lines += ["", "## Validation", "", f"{len(report.validations)} suite runs, {len(failed)} failed."]
    for target, result in failed:
        lines += ["", f"**{result.suite}** on `{_md_escape(target)}`:", ""]
        lines += [f"- {_md_escape(f.describe())}" for f in result.failed]
    lines += ["", "## Quarantined", ""]
    if report.quarantined:
        lines += ["| stage | source | reason |", "|---|---|---|"]
        lines += [f"| {q.stage} | `{_md_escape(q.source)}` | {_md_escape(q.reason)[:300]} |" for q in report.quarantined]
    else:
        lines.append("Nothing quarantined.")
    lines += ["", "## Labelled with a warning", ""]
    if report.warnings:
        lines += ["| source | warning |", "|---|---|"]
        lines += [f"| `{_md_escape(w.source)}` | {_md_escape(w.message)[:300]} |" for w in report.warnings]
    else:
        lines.append("No warnings.")
    if report.abandoned_runs:
        lines += ["", "## Earlier runs found dead", "",
                  f"Marked abandoned: {', '.join(f'`{r}`' for r in report.abandoned_runs)}; "
                  f"{report.temp_files_removed} temporary files of dead processes removed."]
    elif report.temp_files_removed:
        lines += ["", f"{report.temp_files_removed} temporary files of dead processes removed."]
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {seconds:.2f} |" for stage, seconds in report.stage_seconds.items()]
    if report.error:
        lines += ["", "## Error", "", f"```\n{report.error}\n```"]
    return "\n".join(lines) + "\n"
