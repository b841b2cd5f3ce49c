"""A survey's emotion report: one self-contained HTML file (inline CSS, charts as base64 PNG).

It reads the warehouse views, so it shows the current model's labels (or the version asked
for) and says which version that is. Each emotion has one fixed colour everywhere
(:data:`EMOTION_COLORS`), so a chart can be read without hunting for its legend.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .labels import EMOTIONS, NEGATIVE_EMOTIONS

EMOTION_COLORS: dict[str, str] = {
    "neutral": "#9e9e9e",  # grey
    "calm": "#1aa39a",  # teal
    "happy": "#f5a623",  # yellow-orange
    "sad": "#2f6fd0",  # blue
    "angry": "#d62828",  # red
    "fearful": "#7b3fa8",  # purple
    "disgust": "#3a8f3a",  # green
    "surprised": "#e377c2",  # pink
}

MAX_SESSION_ARCS = 12

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #23395b; color: white; padding: 24px 40px; }
header h1 { margin: 0 0 6px 0; font-size: 26px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 40px 60px; }
section { background: white; border-radius: 8px; padding: 18px 24px; margin: 18px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 19px; margin: 0 0 6px 0; color: #23395b; }
p.note { color: #555; margin: 4px 0 12px 0; font-size: 14px; }
img { max-width: 100%; display: block; margin: 0 auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e6ea; }
th { background: #f0f2f5; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; }
.kpi { flex: 1; min-width: 150px; background: #f0f4fa; border-radius: 6px; padding: 10px 14px; }
.kpi b { display: block; font-size: 22px; color: #23395b; }
.legend span { display: inline-block; margin: 0 14px 4px 0; font-size: 14px; }
.legend i { display: inline-block; width: 14px; height: 14px; border-radius: 3px; margin-right: 5px; vertical-align: -2px; }
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)  # constrained layout: one draw pass, unlike bbox_inches="tight"
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _ordered(labels) -> list[str]:
    present = set(labels)
    return [e for e in EMOTIONS if e in present]


def _share_over_time(con) -> str | None:
    import matplotlib.pyplot as plt

    share = con.execute("SELECT week, label, share FROM v_emotion_share_weekly WHERE survey_id = $s ORDER BY week", {"s": con.survey}).df()
    trend = con.execute("SELECT week, negative_share FROM v_negative_trend WHERE survey_id = $s ORDER BY week", {"s": con.survey}).df()
    if share.empty:
        return None
    wide = share.pivot_table(index="week", columns="label", values="share", fill_value=0.0)
    wide = wide[_ordered(wide.columns)]
    weeks = [pd.Timestamp(w).strftime("%d %b %Y") for w in wide.index]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 6.5), height_ratios=[3, 1.3], sharex=True, layout="constrained")
    bottom = pd.Series(0.0, index=wide.index)
    for emotion in wide.columns:
        ax.bar(weeks, wide[emotion], bottom=bottom, color=EMOTION_COLORS[emotion], label=emotion, width=0.7)
        bottom += wide[emotion]
    ax.set_ylabel("share of utterances")
    ax.set_ylim(0, 1)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # top to bottom as stacked
    ax.set_title("Emotion share per week")
    ax2.plot(weeks, trend["negative_share"], marker="o", color=EMOTION_COLORS["angry"])
    ax2.set_ylabel("negative share")
    ax2.set_ylim(0, max(0.05, float(trend["negative_share"].max()) * 1.2))
    ax2.set_xlabel("week starting")
    ax2.grid(alpha=0.3)
    return _png(fig)


def _segments(con) -> str | None:
    import matplotlib.pyplot as plt

    seg = con.execute("SELECT attribute, value, label, share FROM v_emotion_share_by_segment WHERE survey_id = $s", {"s": con.survey}).df()
    if seg.empty:
        return None
    attributes = [a for a in ("age_band", "gender", "market", "segment") if a in set(seg["attribute"])]
    fig, axes = plt.subplots(1, len(attributes), figsize=(12, 3.8), squeeze=False, layout="constrained")
    for ax, attribute in zip(axes[0], attributes):
        wide = seg[seg["attribute"] == attribute].pivot_table(index="value", columns="label", values="share", fill_value=0.0)
        wide = wide[_ordered(wide.columns)].sort_index(ascending=False)
        left = pd.Series(0.0, index=wide.index)
        for emotion in wide.columns:
            ax.barh(wide.index.astype(str), wide[emotion], left=left, color=EMOTION_COLORS[emotion], height=0.7)
            left += wide[emotion]
        ax.set_xlim(0, 1)
        ax.set_title(attribute.replace("_", " "))
        ax.set_xlabel("share")
    fig.suptitle("Emotion share by participant segment")
    return _png(fig)


def _questions(con) -> str | None:
    import matplotlib.pyplot as plt

    share = con.execute("SELECT question, label, share FROM v_emotion_share_by_question WHERE survey_id = $s", {"s": con.survey}).df()
    if share.empty:
        return None
    wide = share.pivot_table(index="question", columns="label", values="share", fill_value=0.0)
    wide = wide[_ordered(wide.columns)].sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(wide) + 1.4), layout="constrained")
    left = pd.Series(0.0, index=wide.index)
    for emotion in wide.columns:
        ax.barh(wide.index.astype(str), wide[emotion], left=left, color=EMOTION_COLORS[emotion], height=0.7, label=emotion)
        left += wide[emotion]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the answers' utterances")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def _session_arcs(con) -> tuple[str | None, int]:
    import matplotlib.pyplot as plt

    arcs = con.execute(
        "SELECT a.session_id, s.recorded_at, a.utterance_index, a.start_s, a.label, a.negative_probability, a.running_negative_share "
        "FROM v_session_arc a JOIN sessions s USING (session_id) WHERE a.survey_id = $s ORDER BY s.recorded_at, a.session_id, a.utterance_index",
        {"s": con.survey},
    ).df()
    if arcs.empty:
        return None, 0
    sessions = list(dict.fromkeys(arcs["session_id"]))
    shown = sessions[:MAX_SESSION_ARCS]
    cols = 3 if len(shown) > 4 else 2 if len(shown) > 1 else 1
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.8 * rows), squeeze=False, sharey=True, layout="constrained")
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, session in zip(axes.flat, shown):
        one = arcs[arcs["session_id"] == session]
        minutes = one["start_s"] / 60.0
        ax.plot(minutes, one["running_negative_share"], color="#444", linewidth=1.4, label="running negative share")
        ax.scatter(minutes, one["negative_probability"], c=[EMOTION_COLORS[l] for l in one["label"]], s=26, zorder=3, edgecolors="white", linewidths=0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{session} ({pd.Timestamp(one['recorded_at'].iloc[0]).strftime('%d %b')})", fontsize=10)
        ax.set_xlabel("minutes into session", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("P(negative)", fontsize=9)
    return _png(fig), len(sessions)


def _confidence(con) -> str | None:
    import matplotlib.pyplot as plt
    import numpy as np

    conf = con.execute("SELECT label, confidence FROM v_labelled WHERE survey_id = $s", {"s": con.survey}).df()
    if conf.empty:
        return None
    bins = np.linspace(0, 1, 21)
    labels = _ordered(conf["label"])
    fig, ax = plt.subplots(figsize=(12, 3.8), layout="constrained")
    ax.hist([conf.loc[conf["label"] == l, "confidence"] for l in labels], bins=bins, stacked=True,
            color=[EMOTION_COLORS[l] for l in labels], label=labels)
    ax.axvline(0.5, color="#333", linestyle="--", linewidth=1)
    ax.text(0.505, ax.get_ylim()[1] * 0.92, "review threshold", fontsize=9)
    ax.set_xlabel("model confidence (probability of the predicted emotion)")
    ax.set_ylabel("utterances")
    ax.set_xlim(0, 1)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Confidence distribution")
    return _png(fig)


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else f'{v:.3f}' if isinstance(v, float) else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _SurveyConnection:
    """The connection plus the survey id, so the chart helpers take one argument."""

    def __init__(self, con: duckdb.DuckDBPyConnection, survey: str):
        self._con, self.survey = con, survey

    def execute(self, sql: str, params: Any = None):
        return self._con.execute(sql, params)


def write_report(con: duckdb.DuckDBPyConnection, survey_id: str, out_dir: str | Path, model_version: str | None = None) -> Path:
    """Write ``<out_dir>/<survey_id>.html`` and return its path.

    ``model_version`` reports that version's labels instead of the current model's.
    Raises KeyError when the survey is not in the warehouse.
    """
    import matplotlib

    matplotlib.use("Agg")
    if not con.execute("SELECT 1 FROM surveys WHERE survey_id = ?", [survey_id]).fetchall():
        known = [r[0] for r in con.execute("SELECT survey_id FROM surveys ORDER BY 1").fetchall()]
        raise KeyError(f"survey {survey_id!r} is not in the warehouse; surveys: {known}")
    if model_version is not None:
        con.execute("SET VARIABLE ser_model_version = ?", [model_version])
    try:
        sc = _SurveyConnection(con, survey_id)
        model = con.execute(
            "SELECT c.model_version, c.chosen_by, m.created_at, m.promoted_at, CAST(m.metrics AS VARCHAR) "
            "FROM v_current_model c LEFT JOIN model_versions m USING (model_version)"
        ).fetchone()
        kpi = con.execute(
            "SELECT count(DISTINCT s.session_id), min(s.recorded_at), max(s.recorded_at), "
            "(SELECT count(*) FROM v_utterances WHERE survey_id = $s), "
            "(SELECT count(*) FROM v_labelled WHERE survey_id = $s), "
            "(SELECT avg(CAST(is_negative AS DOUBLE)) FROM v_labelled WHERE survey_id = $s), "
            "(SELECT count(*) FROM v_labelled WHERE survey_id = $s AND confidence < 0.5) "
            "FROM sessions s WHERE s.survey_id = $s",
            {"s": survey_id},
        ).fetchone()
        n_sessions, first, last, n_utterances, n_labelled, negative_share, n_low = kpi
        charts = {
            "time": _share_over_time(sc),
            "segments": _segments(sc),
            "questions": _questions(sc),
            "confidence": _confidence(sc),
        }
        arcs, n_arc_sessions = _session_arcs(sc)
        moments = con.execute(
            "SELECT rank, session_id, utterance_index AS utterance, question, label, confidence, start_s, end_s "
            "FROM v_emotional_moments WHERE survey_id = $s AND rank <= 10 ORDER BY rank",
            {"s": survey_id},
        ).df()
        versions = con.execute(
            "SELECT model_version, created_at, promoted_at, count(p.utterance_id) AS predictions "
            "FROM model_versions m LEFT JOIN predictions p USING (model_version) GROUP BY ALL ORDER BY created_at"
        ).df()
    finally:
        if model_version is not None:
            con.execute("RESET VARIABLE ser_model_version")

    def section(title: str, note: str, body: str | None) -> str:
        content = body if body else '<p class="note"><em>No labelled utterances for this survey yet.</em></p>'
        return f"<section><h2>{html.escape(title)}</h2><p class=\"note\">{note}</p>{content}</section>"

    legend = "".join(f'<span><i style="background:{EMOTION_COLORS[e]}"></i>{e}</span>' for e in EMOTIONS)
    model_line = (
        f"Labels from model <b>{html.escape(model[0])}</b> ({html.escape(model[1])}"
        + (f", created {model[2]:%Y-%m-%d}" if model[2] else "")
        + (f", promoted {model[3]:%Y-%m-%d}" if model[3] else "")
        + ")"
        if model else "No model version recorded yet."
    )
    when = f"{first:%d %b %Y} – {last:%d %b %Y}" if first else "no sessions"
    negatives = ", ".join(sorted(NEGATIVE_EMOTIONS))
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Emotion report: {html.escape(survey_id)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Emotion report: survey {html.escape(survey_id)}</h1><p>{when} · {model_line}</p></header><main>",
        "<section><div class=\"kpis\">"
        f"<div class=\"kpi\"><b>{n_sessions}</b>sessions</div>"
        f"<div class=\"kpi\"><b>{n_utterances}</b>utterances</div>"
        f"<div class=\"kpi\"><b>{n_labelled}</b>labelled by this model</div>"
        f"<div class=\"kpi\"><b>{'–' if negative_share is None else f'{negative_share:.0%}'}</b>negative ({negatives})</div>"
        f"<div class=\"kpi\"><b>{n_low}</b>low-confidence (&lt; 0.5)</div>"
        f"</div><p class=\"legend\" style=\"margin-top:14px\">{legend}</p></section>",
        section("Emotion share over time", "Share of each emotion among the week's utterances; below, the share of negative emotions.",
                charts["time"] and _img(charts["time"], "emotion share per week")),
        section("Segments compared", "Share of each emotion among utterances by participants of each segment attribute.",
                charts["segments"] and _img(charts["segments"], "emotion share by segment")),
        section("Questions and topics", "Share of each emotion among the utterances answering each question (when the manifest names it).",
                charts["questions"] and _img(charts["questions"], "emotion share by question")),
        section("Session arcs",
                "Each dot is an utterance, coloured by its emotion, placed at the model's probability that it is negative; "
                "the line is the running share of negative utterances."
                + (f" First {MAX_SESSION_ARCS} of {n_arc_sessions} sessions." if n_arc_sessions > MAX_SESSION_ARCS else ""),
                arcs and _img(arcs, "session arcs")),
        section("Confidence", "How sure the model was; utterances left of the dashed line go to the review queue.",
                charts["confidence"] and _img(charts["confidence"], "confidence distribution")),
        section("Most emotional moments", "The clearest non-neutral utterances (for a clip reel).", _table(moments) if not moments.empty else None),
        section("Model versions", "Every version in the warehouse; the report uses the one named at the top.", _table(versions)),
        f"<p class=\"note\">Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by ser-pipeline. "
        "Participants appear only under keyed pseudonyms.</p>",
        "</main></body></html>",
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{survey_id}.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
